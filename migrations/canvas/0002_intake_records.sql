-- The service runs its queries as era_canvas_service (SET LOCAL ROLE in each transaction), a role
-- that owns nothing: it may read and insert intake records but never change or remove one, whatever
-- the login role the pool connected with. Roles are cluster-wide, so concurrent migrations of other
-- databases on the same server may race to create it.
do $$
begin
    create role era_canvas_service nologin;
exception when duplicate_object or unique_violation then
    null;
end
$$;

-- The migrating role must be able to SET ROLE to it (a superuser always can).
do $$
begin
    execute format('grant era_canvas_service to %I', current_user);
exception when others then
    null;
end
$$;

grant usage on schema public to era_canvas_service;

-- Immutable, encrypted intake snapshots. The content (demographics, answers, raw submission) is one
-- AES-256-GCM ciphertext; what is searchable is searchable only through keyed blind indexes.
create table intake_records (
    id uuid primary key,
    submission_id text not null unique,
    canvas_patient_id text not null,
    -- HMAC-SHA256 (BLIND_INDEX_KEY) of the normalised email and date of birth.
    email_index text not null,
    birth_date_index text not null,
    -- HMAC of the canonical submission, so a repeated store can tell "same" from "different".
    content_mac text not null,
    submitted_at timestamptz not null,
    key_version integer not null check (key_version > 0),
    nonce bytea not null check (length(nonce) = 12),
    ciphertext bytea not null,
    created_at timestamptz not null default now()
);

create index intake_records_by_patient on intake_records (canvas_patient_id, submitted_at desc);
create index intake_records_by_email on intake_records (email_index, submitted_at desc);
create index intake_records_by_birth_date on intake_records (birth_date_index);
create index intake_records_by_date on intake_records (submitted_at desc);

create trigger intake_records_append_only
    before update or delete on intake_records
    for each row execute function era_forbid_change();
create trigger intake_records_no_truncate
    before truncate on intake_records
    for each statement execute function era_forbid_change();
alter table intake_records enable always trigger intake_records_append_only;
alter table intake_records enable always trigger intake_records_no_truncate;

grant select, insert on intake_records to era_canvas_service;

-- The intake flow's progress per client submission id: each Canvas write is recorded as soon as it
-- returns, so a retry (or a restart) resumes where the last attempt stopped instead of repeating it.
create table intake_submissions (
    submission_id text primary key,
    request_mac text not null,
    canvas_patient_id text,
    record_id uuid references intake_records (id),
    questionnaire_response_id text,
    task_id text,
    created_at timestamptz not null default now(),
    completed_at timestamptz
);

-- Other writes to Canvas that callers make idempotent with a key (patients, notes, messages,
-- appointments). `result` holds ids and timestamps only, never PHI.
create table canvas_writes (
    idempotency_key text primary key,
    kind text not null,
    request_mac text not null,
    resource_id text,
    result jsonb,
    created_at timestamptz not null default now(),
    completed_at timestamptz
);

grant select, insert, update on intake_submissions, canvas_writes to era_canvas_service;
