-- One-time codes and magic links for the logins. Only keyed hashes of codes and links are stored
-- (LOGIN_CODE_KEY), so the table is of no use to whoever reads it; the email is kept as a keyed
-- hash too, except an admin's, which is their identity and not PHI.
create table login_codes (
    id uuid primary key,
    -- admin_otp | patient_otp | magic_link
    purpose text not null,
    -- HMAC of the lowercased email: what sends are counted and codes looked up by.
    email_hash text not null,
    -- The admin's email (admin purposes) or the Canvas patient (patient codes).
    admin_email text,
    canvas_patient_id text,
    -- HMAC of the code (bound to this row's id) or of the link's token.
    secret_hash text not null,
    expires_at timestamptz not null,
    failed_attempts integer not null default 0,
    consumed_at timestamptz,
    created_at timestamptz not null default now()
);

create index login_codes_by_email on login_codes (purpose, email_hash, created_at desc);
create unique index login_codes_by_secret on login_codes (secret_hash) where purpose = 'magic_link';

grant select, insert, update on login_codes to era_notifications_service;
