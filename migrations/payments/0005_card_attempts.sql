-- Every server-side card confirmation, written before Stripe hears of it: a patient's attempts are
-- capped across all their SetupIntents, however many tokens or keys asked for them. The decline's
-- reason is kept here for support; the caller is told only that the card was not saved.
create table card_attempts (
    id bigserial primary key,
    canvas_patient_id text not null,
    setup_intent_id text not null,
    -- pending (sent), then Stripe's status (succeeded, requires_action) or declined,
    -- unknown_payment_method, failed
    outcome text not null default 'pending',
    failure_code text,
    created_at timestamptz not null default now()
);
create index card_attempts_by_patient on card_attempts (canvas_patient_id, created_at desc);

-- The key a SetupIntent was created under, so a replay is told from a new one when the cap counts.
alter table payment_holds add column setup_key text;
create index payment_holds_by_setup_key on payment_holds (setup_key);

grant select, insert, update on card_attempts to era_payments_service;
grant usage on sequence card_attempts_id_seq to era_payments_service;
