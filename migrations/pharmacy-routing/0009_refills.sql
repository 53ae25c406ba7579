-- Refills advance: a reminder before the due date, then on the due date a refill run charges the
-- saved card, re-decides the pharmacy, orders and tells the patient. A declined card is retried on
-- a schedule, then the refill is overdue. Admins skip, pause, resume, cancel, process now and
-- change the dose; every action is kept.
alter table refills drop constraint refills_status_check;
alter table refills add constraint refills_status_check check (status in
    ('scheduled', 'due', 'ordered', 'skipped', 'cancelled', 'paused', 'payment_failed', 'overdue', 'failed'));
-- When the refill_due reminder went out (once per refill).
alter table refills add column reminded_at timestamptz;
-- Refill runs started for it (each attempt after a decline is a new run).
alter table refills add column attempts integer not null default 0;
-- When a declined refill is tried again (null: at due_at).
alter table refills add column next_attempt_at timestamptz;
alter table refills add column updated_at timestamptz not null default now();
-- When the patient was told an overdue refill is on hold (once).
alter table refills add column overdue_notified_at timestamptz;

create index refills_to_remind on refills (due_at) where status = 'scheduled' and reminded_at is null;
create index refills_to_process on refills (coalesce(next_attempt_at, due_at))
    where status in ('scheduled', 'payment_failed');

alter table orchestration_runs drop constraint orchestration_runs_kind_check;
alter table orchestration_runs add constraint orchestration_runs_kind_check
    check (kind in ('approve', 'deny', 'prescription', 'stop', 'refill'));
alter table orchestration_runs add column refill_id uuid references refills (id);
-- The reference payments keys the charge by: run:<id>, or refill:<refill id> (plus :<attempt> after
-- a decline) for a refill.
alter table orchestration_runs add column payment_reference text;
create unique index orchestration_runs_one_live_per_refill on orchestration_runs (refill_id)
    where kind = 'refill' and status in ('pending', 'running', 'succeeded');

-- Every admin action on a refill, with who did it; a repeated Idempotency-Key finds the first.
create table refill_actions (
    id               uuid primary key,
    refill_id        uuid not null references refills (id),
    action           text not null check (action in ('skip', 'pause', 'resume', 'cancel', 'process_now', 'dose')),
    actor_subject    text not null,
    actor_role       text not null,
    idempotency_key  text not null default '',
    detail           text not null default '',
    run_id           uuid references orchestration_runs (id),
    created_at       timestamptz not null default now()
);
create unique index refill_actions_by_key on refill_actions (refill_id, action, idempotency_key)
    where idempotency_key <> '';
create index refill_actions_by_refill on refill_actions (refill_id, created_at);

create trigger refill_actions_append_only
    before update or delete on refill_actions
    for each row execute function era_forbid_change();
create trigger refill_actions_no_truncate
    before truncate on refill_actions
    for each statement execute function era_forbid_change();
alter table refill_actions enable always trigger refill_actions_append_only;
alter table refill_actions enable always trigger refill_actions_no_truncate;

grant select, insert on refill_actions to era_pharmacy_routing_service;
