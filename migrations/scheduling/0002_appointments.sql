-- Telehealth appointments. The row is the booking's intent (who, with whom, when, and whether it
-- stands); the columns after it record what the vendors have, so the job that makes Zoom and Canvas
-- match the row can resume after a crash at any point.
create table appointments (
    id uuid primary key,
    canvas_patient_id text not null,
    practitioner_id text not null,
    practitioner_name text not null,
    -- The Canvas location of the practitioner's schedule.
    location_id text not null,
    -- The practitioner's Zoom user (their email): the meeting's host, and the meeting's topic.
    zoom_user text not null,
    zoom_topic text not null,
    start_time timestamptz not null,
    end_time timestamptz not null,
    -- IANA zones for display: the patient's, and the practitioners' schedule.
    time_zone text not null,
    practitioner_time_zone text not null,
    status text not null check (status in ('pending', 'booked', 'cancelled', 'completed', 'no_show', 'failed')),
    idempotency_key text unique,
    failure_reason text,
    cancellation_reason text,
    cancelled_at timestamptz,
    created_by_role text not null,
    created_by_subject text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),

    -- Zoom: the meeting, the start it has, and when a create was last sent without its answer being
    -- recorded (a later attempt looks the meeting up before creating another).
    zoom_meeting_id bigint,
    zoom_join_url text,
    zoom_password text,
    zoom_start timestamptz,
    zoom_create_sent_at timestamptz,
    zoom_deleted boolean not null default false,
    -- Canvas: the Appointment, the times it has, and whether it was cancelled there.
    canvas_appointment_id text,
    canvas_start timestamptz,
    canvas_end timestamptz,
    canvas_create_sent boolean not null default false,
    canvas_cancelled boolean not null default false,
    -- What the patient was told: the start of the last confirmation, the pending reminder's dedupe
    -- key, and whether the cancellation was announced.
    confirmed_start timestamptz,
    reminder_key text,
    reminder_at timestamptz,
    cancellation_notified boolean not null default false,

    check (end_time > start_time)
);

-- A practitioner's time is booked once: a second booking (or move) onto a held start fails.
create unique index appointments_held_slot on appointments (practitioner_id, start_time)
    where status in ('pending', 'booked');
create index appointments_by_start on appointments (start_time desc, id desc);
create index appointments_by_patient on appointments (canvas_patient_id, start_time desc, id desc);
-- The visit-status worker reads booked appointments that have begun.
create index appointments_to_settle on appointments (start_time) where status = 'booked';
