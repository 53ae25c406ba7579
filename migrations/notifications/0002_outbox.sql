-- Notifications: each event once per dedupe key, one outbox message per channel written before any
-- vendor hears of it, every delivery attempt kept, and the patient portal's notifications.
--
-- Addresses and message contents are PHI: they are stored sealed (AES-256-GCM, MESSAGE_KEYS; the
-- row id and clear columns bound in as associated data). What stays clear is what the worker and
-- admins filter on: type, channel, status, patient id, a masked address.
--
-- The service runs its queries as era_notifications_service (SET LOCAL ROLE in each transaction), a
-- role that owns nothing and may not change or remove delivery attempts.
do $$
begin
    create role era_notifications_service nologin;
exception when duplicate_object or unique_violation then
    null;
end
$$;

do $$
begin
    execute format('grant era_notifications_service to %I', current_user);
exception when duplicate_object or invalid_grant_operation then
    null;
end
$$;

grant usage on schema public to era_notifications_service;

create table notifications (
    id uuid primary key,
    notification_type text not null,
    -- Empty when the recipient is not a patient (an admin's login code).
    canvas_patient_id text not null default '',
    reference text not null default '',
    -- The same key never records (or sends) twice.
    dedupe_key text not null unique,
    -- The template variables and any explicit recipient, sealed.
    key_version integer not null,
    nonce bytea not null,
    sealed bytea not null,
    send_at timestamptz not null,
    created_by_subject text not null,
    created_by_role text not null,
    on_behalf_of_subject text,
    created_at timestamptz not null default now()
);

create index notifications_by_patient on notifications (canvas_patient_id, created_at desc);

-- One delivery of a notification on one channel: email (SendGrid), sms (Twilio) or portal.
create table outbox_messages (
    id uuid primary key,
    notification_id uuid not null references notifications (id),
    notification_type text not null,
    channel text not null,
    -- pending | sending | sent | dead_lettered | cancelled | skipped
    status text not null,
    canvas_patient_id text not null default '',
    -- Known once the address is resolved (from the request or the patient's chart).
    masked_to text not null default '',
    attempt_count integer not null default 0,
    -- When the next attempt is due (the send time first).
    next_attempt_at timestamptz not null,
    -- The worker holding the message, until when, and the generation that fences a holder whose
    -- lease ran out: every write after the vendor call names the generation it claimed.
    lease_owner text,
    lease_until timestamptz,
    lease_generation bigint not null default 0,
    -- An attempt whose outcome is unknown (the request went out, no answer came back): the next
    -- attempt first asks the vendor whether it was sent.
    uncertain_since timestamptz,
    vendor_message_id text,
    last_error text,
    sent_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (notification_id, channel)
);

create index outbox_due on outbox_messages (next_attempt_at) where status in ('pending', 'sending');
create index outbox_by_date on outbox_messages (created_at desc, id desc);
create index outbox_by_patient on outbox_messages (canvas_patient_id, created_at desc);

-- Every try at handing a message to its vendor: append-only.
create table delivery_attempts (
    id bigserial primary key,
    message_id uuid not null references outbox_messages (id),
    number integer not null,
    attempted_at timestamptz not null default now(),
    -- sent | retryable_error | permanent_error | timeout | found_sent
    outcome text not null,
    http_status integer not null default 0,
    -- The vendor's code and message, without PHI.
    error text not null default ''
);

create index delivery_attempts_by_message on delivery_attempts (message_id, id);

create trigger delivery_attempts_append_only
    before update or delete on delivery_attempts
    for each row execute function era_forbid_change();
create trigger delivery_attempts_no_truncate
    before truncate on delivery_attempts
    for each statement execute function era_forbid_change();
alter table delivery_attempts enable always trigger delivery_attempts_append_only;
alter table delivery_attempts enable always trigger delivery_attempts_no_truncate;

-- What the patient portal shows; written by the outbox's portal channel, once per message.
create table patient_notifications (
    id uuid primary key,
    message_id uuid not null unique references outbox_messages (id),
    canvas_patient_id text not null,
    notification_type text not null,
    reference text not null default '',
    -- Title, body and link, sealed.
    key_version integer not null,
    nonce bytea not null,
    sealed bytea not null,
    read_at timestamptz,
    created_at timestamptz not null default now()
);

create index patient_notifications_by_patient on patient_notifications (canvas_patient_id, created_at desc, id desc);

grant select, insert, update on notifications, outbox_messages, patient_notifications to era_notifications_service;
grant select, insert on delivery_attempts to era_notifications_service;
grant usage on sequence delivery_attempts_id_seq to era_notifications_service;
