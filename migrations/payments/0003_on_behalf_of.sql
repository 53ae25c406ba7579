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
