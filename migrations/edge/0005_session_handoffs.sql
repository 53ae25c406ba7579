-- One-time codes that hand an admin session from the magic link's confirm page to the admin portal.
-- The portal exchanges a code once, within a minute, for the session token, so the token never
-- travels in a URL. Codes are stored as their SHA-256; the token is minted at the exchange.
create table session_handoffs (
    code_hash text primary key,
    subject text not null,
    expires_at timestamptz not null,
    used_at timestamptz
);
create index session_handoffs_by_expiry on session_handoffs (expires_at);
