-- The approval pipeline: one run per decision on an Rx Review task, its steps, the orders placed with
-- pharmacies, the audit trail of every exchange with them, the callbacks they sent, shipments and
-- the refill schedule.

-- A run is written before its first side effect; a worker resumes any run left pending or running
-- whose lease ran out. `phase` is the recovery point: the next step to do. `generation` fences
-- writes: a worker whose lease was taken over finds its generation gone and stops.
create table orchestration_runs (
    id                 uuid primary key,
    task_id            text not null,
    kind               text not null check (kind in ('approve', 'deny')),
    canvas_patient_id  text not null,
    medication         text not null default '',
    dose_label         text not null default '',
    status             text not null check (status in ('pending', 'running', 'succeeded', 'failed', 'denied')),
    phase              text not null,
    failure_reason     text not null default '',
    warnings           text[] not null default '{}',
    -- What the steps found, kept so a resumed run does not ask again.
    practitioner_id    text not null default '',
    patient_state      text not null default '',
    prescriber_id      text not null default '',
    pharmacy_id        text not null default '',
    amount_cents       bigint not null default 0 check (amount_cents >= 0),
    currency           text not null default 'usd',
    charge_id          text not null default '',
    hp_note_id         text not null default '',
    -- The approval's note or the denial's reason: clinical text, sealed (AES-256-GCM, PIPELINE_KEYS).
    note_ciphertext    bytea,
    note_nonce         bytea,
    note_key_version   integer,
    approved_by        text not null,
    idempotency_key    text not null default '',
    -- Work-claim state.
    lease_owner        uuid,
    lease_until        timestamptz,
    generation         bigint not null default 0,
    attempts           integer not null default 0,
    next_attempt_at    timestamptz not null default now(),
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

-- One live decision per task: a second approval (from another portal, a retry, fifty at once) finds
-- it. A failed run does not block a new approval once an admin has fixed the cause (a new card).
create unique index orchestration_runs_one_live_per_task on orchestration_runs (task_id)
    where status in ('pending', 'running', 'succeeded', 'denied');
create index orchestration_runs_by_task on orchestration_runs (task_id, created_at desc);
create index orchestration_runs_by_patient on orchestration_runs (canvas_patient_id, created_at desc, id desc);
create index orchestration_runs_by_time on orchestration_runs (created_at desc, id desc);
create index orchestration_runs_unfinished on orchestration_runs (next_attempt_at)
    where status in ('pending', 'running');

create table run_steps (
    run_id       uuid not null references orchestration_runs (id),
    position     integer not null,
    name         text not null,
    status       text not null check (status in ('pending', 'done', 'failed', 'warning', 'skipped')),
    detail       text not null default '',
    finished_at  timestamptz,
    primary key (run_id, position),
    unique (run_id, name)
);

-- At most one order per run. Written before the submission; `submit_started_at` set before each
-- call says "the pharmacy may have it": the next attempt asks the pharmacy by reference id before
-- it ever submits again (pharmacies take no idempotency key).
create table pharmacy_orders (
    id                 uuid primary key,
    run_id             uuid not null unique references orchestration_runs (id),
    canvas_patient_id  text not null,
    pharmacy_id        text not null,
    prescriber_id      text not null,
    medication         text not null,
    dose_label         text not null,
    status             text not null check (status in
                         ('pending', 'submitted', 'accepted', 'rejected', 'cancelled', 'shipped', 'delivered')),
    external_order_id  text not null default '',
    rejection_reason   text not null default '',
    submit_started_at  timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create unique index pharmacy_orders_by_external on pharmacy_orders (pharmacy_id, external_order_id)
    where external_order_id <> '';
create index pharmacy_orders_by_patient on pharmacy_orders (canvas_patient_id, created_at desc, id desc);
create index pharmacy_orders_by_time on pharmacy_orders (created_at desc, id desc);

-- Every exchange with a pharmacy, appended and never changed. No PHI: statuses, codes, ids.
create table sync_logs (
    id                 bigint generated always as identity primary key,
    pharmacy_id        text not null,
    canvas_patient_id  text not null default '',
    order_id           text not null default '',
    operation          text not null,
    status             text not null check (status in ('success', 'failure', 'retry')),
    http_status        integer not null default 0,
    detail             text not null default '',
    created_at         timestamptz not null default now()
);

create index sync_logs_by_time on sync_logs (created_at desc, id desc);
create index sync_logs_by_patient on sync_logs (canvas_patient_id, created_at desc);

create trigger sync_logs_append_only
    before update or delete on sync_logs
    for each row execute function era_forbid_change();
create trigger sync_logs_no_truncate
    before truncate on sync_logs
    for each statement execute function era_forbid_change();
alter table sync_logs enable always trigger sync_logs_append_only;
alter table sync_logs enable always trigger sync_logs_no_truncate;

-- Each pharmacy callback is processed once, by the pharmacy's event id.
create table pharmacy_callbacks (
    pharmacy_id   text not null,
    callback_id   text not null,
    order_id      uuid references pharmacy_orders (id),
    status        text not null,
    received_at   timestamptz not null default now(),
    primary key (pharmacy_id, callback_id)
);

create table shipments (
    id                 uuid primary key,
    order_id           uuid not null unique references pharmacy_orders (id),
    canvas_patient_id  text not null,
    pharmacy_id        text not null,
    carrier            text not null default '',
    tracking_number    text not null default '',
    status             text not null,
    shipped_at         timestamptz,
    delivered_at       timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create index shipments_by_patient on shipments (canvas_patient_id, created_at desc, id desc);

create table shipment_events (
    id           bigint generated always as identity primary key,
    shipment_id  uuid not null references shipments (id),
    status       text not null,
    description  text not null default '',
    occurred_at  timestamptz not null
);

create index shipment_events_by_shipment on shipment_events (shipment_id, occurred_at);

-- The refills an approved order allows, scheduled when the run succeeds.
create table refills (
    id                 uuid primary key,
    order_id           uuid not null references pharmacy_orders (id),
    canvas_patient_id  text not null,
    medication         text not null,
    sequence           integer not null check (sequence > 0),
    status             text not null check (status in ('scheduled', 'due', 'ordered', 'skipped', 'cancelled')),
    due_at             timestamptz not null,
    run_id             uuid references orchestration_runs (id),
    created_at         timestamptz not null default now(),
    unique (order_id, sequence)
);

create index refills_by_patient on refills (canvas_patient_id, due_at, id);
