-- A service caller (the approval pipeline) acts for someone: the authenticated caller stays in
-- created_by/requested_by and the person it acted for is kept beside it, so the audit names both.
alter table charges
    add column on_behalf_of_subject text,
    add column on_behalf_of_role text;
alter table refunds
    add column on_behalf_of_subject text,
    add column on_behalf_of_role text;
-- Adding columns fires no row trigger; the audit stays append-only.
alter table refund_audit
    add column on_behalf_of_subject text,
    add column on_behalf_of_role text;

-- The resume worker looks for unfinished work every pass; these keep that cheap as the tables grow.
create index charges_unfinished on charges (updated_at) where status in ('pending', 'processing');
create index refunds_unfinished on refunds (updated_at) where status in ('pending', 'requires_action');

-- Server-side confirmations of one SetupIntent (the public card route), bounded so the route cannot
-- be used to try card after card.
alter table payment_holds add column confirm_attempts integer not null default 0;
