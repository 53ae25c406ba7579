-- Payments: one Stripe customer per Canvas patient, the saved card (payment hold), charges made
-- exactly once per reference, refunds with an append-only audit, and Stripe's webhook events.
--
-- The service runs its queries as era_payments_service (SET LOCAL ROLE in each transaction), a role
-- that owns nothing and may not change or remove audit rows. Roles are cluster-wide, so concurrent
-- migrations of other databases may race to create it.
do $$
begin
    create role era_payments_service nologin;
exception when duplicate_object or unique_violation then
    null;
end
$$;

do $$
begin
    execute format('grant era_payments_service to %I', current_user);
exception when duplicate_object or invalid_grant_operation then
    null;
end
$$;

grant usage on schema public to era_payments_service;

create table customers (
    canvas_patient_id text primary key,
    stripe_customer_id text not null unique,
    created_at timestamptz not null default now()
);

-- The card saved at intake; the newest active hold is the one charged.
create table payment_holds (
    id uuid primary key,
    canvas_patient_id text not null,
    stripe_customer_id text not null,
    stripe_payment_method_id text,
    setup_intent_id text not null unique,
    -- pending | active | requires_action | failed | replaced
    status text not null,
    card_brand text,
    card_last4 text,
    card_exp_month integer,
    card_exp_year integer,
    card_funding text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index payment_holds_by_patient on payment_holds (canvas_patient_id, created_at desc);

-- One row per reference, written before Stripe is called; its id is the Stripe idempotency key, so
-- every attempt (after a crash, a lost answer, a concurrent caller) sends the same key.
create table charges (
    id uuid primary key,
    reference text not null unique,
    -- Stripe's Idempotency-Key for this charge ("charge-<id>").
    idempotency_key text not null unique,
    -- The caller's key, when it gave one.
    client_key text unique,
    canvas_patient_id text not null,
    hold_id uuid not null references payment_holds (id),
    amount_cents bigint not null check (amount_cents > 0),
    currency text not null,
    description text not null default '',
    -- pending | processing | succeeded | declined | authentication_required | failed | canceled
    status text not null,
    stripe_payment_intent_id text,
    stripe_charge_id text,
    failure_code text,
    decline_code text,
    failure_message text,
    amount_refunded_cents bigint not null default 0 check (amount_refunded_cents >= 0),
    created_by_subject text not null,
    created_by_role text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (amount_refunded_cents <= amount_cents)
);

create index charges_by_patient on charges (canvas_patient_id, created_at desc);
create index charges_by_date on charges (created_at desc);
create index charges_by_payment_intent on charges (stripe_payment_intent_id);

create table refunds (
    id uuid primary key,
    -- The caller's key (refunds always take one); Stripe's is "refund-<id>".
    client_key text not null unique,
    request_mac text not null,
    charge_id uuid not null references charges (id),
    amount_cents bigint not null check (amount_cents > 0),
    currency text not null,
    -- pending | requires_action | succeeded | failed | canceled
    status text not null,
    reason text not null,
    note text not null default '',
    stripe_refund_id text unique,
    failure_reason text,
    requested_by_subject text not null,
    requested_by_role text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index refunds_by_charge on refunds (charge_id, created_at);

-- Who refunded what and why: append-only.
create table refund_audit (
    id bigserial primary key,
    refund_id uuid not null references refunds (id),
    charge_id uuid not null,
    amount_cents bigint not null,
    reason text not null,
    note text not null,
    actor_subject text not null,
    actor_role text not null,
    recorded_at timestamptz not null default now()
);

create trigger refund_audit_append_only
    before update or delete on refund_audit
    for each row execute function era_forbid_change();
create trigger refund_audit_no_truncate
    before truncate on refund_audit
    for each statement execute function era_forbid_change();
alter table refund_audit enable always trigger refund_audit_append_only;
alter table refund_audit enable always trigger refund_audit_no_truncate;

-- Stripe's events as received (the raw body), each processed once.
create table stripe_events (
    id text primary key,
    event_type text not null,
    payload bytea not null,
    received_at timestamptz not null default now(),
    processed_at timestamptz
);

create trigger stripe_events_no_truncate
    before truncate on stripe_events
    for each statement execute function era_forbid_change();
alter table stripe_events enable always trigger stripe_events_no_truncate;

grant select, insert, update on customers, payment_holds, charges, refunds, stripe_events to era_payments_service;
grant select, insert on refund_audit to era_payments_service;
grant usage on sequence refund_audit_id_seq to era_payments_service;
