-- Prescriptions written in Canvas, announced by the clinic's Canvas plugin, are fulfilled by runs of
-- their own (no Rx Review task behind them), and a prescription stopped in Canvas is undone by a
-- stop run. Both are keyed by the Canvas MedicationRequest id.
alter table orchestration_runs alter column task_id drop not null;
alter table orchestration_runs drop constraint orchestration_runs_kind_check;
alter table orchestration_runs add constraint orchestration_runs_kind_check
    check (kind in ('approve', 'deny', 'prescription', 'stop'));
alter table orchestration_runs add constraint orchestration_runs_task_check
    check ((task_id is not null) = (kind in ('approve', 'deny')));
alter table orchestration_runs add column medication_request_id text;
-- A stop run's target: the fulfilment run whose effects it undoes.
alter table orchestration_runs add column target_run_id uuid references orchestration_runs (id);
-- Set by a stop run: the fulfilment run stops at its next step and undoes what it did.
alter table orchestration_runs add column stop_requested_at timestamptz;

-- One live fulfilment per prescription (a failed one does not block a later event), one stop.
create unique index orchestration_runs_one_live_per_prescription on orchestration_runs (medication_request_id)
    where kind in ('approve', 'prescription') and status in ('pending', 'running', 'succeeded');
create unique index orchestration_runs_one_stop_per_prescription on orchestration_runs (medication_request_id)
    where kind = 'stop';
-- An approval and a plugin prescription of the same patient and medication meet here.
create index orchestration_runs_by_medication on orchestration_runs (canvas_patient_id, medication, created_at desc);
create index orchestration_runs_by_kind on orchestration_runs (kind, created_at desc, id desc);

-- The catalogue names each medication's RxNorm code: a prescription written in Canvas is matched to
-- the catalogue by it.
alter table medications add column rxnorm_code text not null default '';
update medications set rxnorm_code = '1991302' where id = 'semaglutide';
update medications set rxnorm_code = '2601723' where id = 'tirzepatide';
update medications set rxnorm_code = '104894' where id = 'ondansetron';

-- The dose a refill is made with: the prescription's, changed when Canvas adjusts the dose (a run
-- still under way keeps the new dose for the refills it schedules when it succeeds).
alter table refills add column dose_label text not null default '';
update refills r set dose_label = o.dose_label from pharmacy_orders o where o.id = r.order_id;
alter table orchestration_runs add column refill_dose_label text;

-- Every plugin event routing was asked about, answered once per event id (a redelivery after an
-- answer was lost gets the same outcome and starts nothing).
create table prescription_events (
    event_id               text primary key,
    event_type             text not null check (event_type in ('PRESCRIPTION_CREATED', 'PRESCRIPTION_UPDATED')),
    medication_request_id  text not null,
    outcome                text not null,
    run_id                 uuid references orchestration_runs (id),
    created_at             timestamptz not null default now()
);

-- Captured charges of stopped prescriptions: refunds are an admin's decision.
create table refund_reviews (
    id                     uuid primary key,
    stop_run_id            uuid not null unique references orchestration_runs (id),
    fulfilment_run_id      uuid not null references orchestration_runs (id),
    canvas_patient_id      text not null,
    medication_request_id  text not null,
    charge_id              text not null,
    amount_cents           bigint not null check (amount_cents >= 0),
    currency               text not null,
    order_outcome          text not null,
    created_at             timestamptz not null default now()
);
create index refund_reviews_by_time on refund_reviews (created_at desc, id desc);
create index refund_reviews_by_patient on refund_reviews (canvas_patient_id, created_at desc, id desc);

grant select, insert on prescription_events, refund_reviews to era_pharmacy_routing_service;
