-- Charges authorised now and captured later (the approval pipeline holds the money before it asks
-- the pharmacy): how each charge captures, so a retry sends what the first attempt sent.
alter table charges add column capture_method text not null default 'automatic';
