-- The charts each email has signed in to. Entering a code sent to an address proves the address
-- belongs to that chart's person, so a newer chart naming the same email (someone else's intake)
-- never takes the sign-in over. The email is kept as its keyed hash only.
create table proven_logins (
    email_hash text not null,
    canvas_patient_id text not null,
    proven_at timestamptz not null default now(),
    primary key (email_hash, canvas_patient_id)
);

grant select, insert on proven_logins to era_notifications_service;
