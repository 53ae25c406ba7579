-- Intakes that could not be matched to one chart safely, held until staff attach them to an existing
-- chart or open a new one; nothing reaches Canvas for them until then. The submission is sealed with
-- the records' keys (its id as the AEAD's record id, the submission id as context).
create table identity_reviews (
    id uuid primary key,
    submission_id text not null unique,
    reason text not null,
    -- Canvas patient ids the intake might belong to.
    candidates text[] not null,
    key_version integer not null,
    nonce bytea not null,
    ciphertext bytea not null,
    created_at timestamptz not null default now(),
    resolved_at timestamptz,
    resolved_by text,
    canvas_patient_id text
);
create index identity_reviews_open on identity_reviews (created_at) where resolved_at is null;

grant select, insert, update on identity_reviews to era_canvas_service;
