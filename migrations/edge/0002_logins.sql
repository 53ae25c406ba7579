-- Who may sign in as an admin (by one-time code or magic link), managed with ADMIN_SECRET.
create table admin_users (
    -- Lowercased; the admin JWT's subject.
    email       text primary key,
    added_by    text not null,
    added_at    timestamptz not null default now()
);

-- Login sends per email, counted for known and unknown emails alike so the answer never tells
-- them apart. The email is kept only as a keyed hash.
create table login_sends (
    id          bigserial primary key,
    -- e.g. "admin_otp", "magic_link", "patient_otp"
    purpose     text not null,
    email_hash  text not null,
    sent_at     timestamptz not null default now()
);

create index login_sends_by_email on login_sends (purpose, email_hash, sent_at desc);
