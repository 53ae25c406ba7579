-- Admin JWTs are stateless for 24 h; logging out puts the token's jti here until it would have expired.
create table revoked_tokens (
    jti         text primary key,
    subject     text not null,
    expires_at  timestamptz not null,
    revoked_at  timestamptz not null default now()
);

create index revoked_tokens_by_expiry on revoked_tokens (expires_at);

-- Canvas plugin requests already accepted, kept for the signature window so an identical request
-- replayed inside it is refused.
create table hmac_replays (
    signature    text primary key,
    expires_at   timestamptz not null,
    received_at  timestamptz not null default now()
);

create index hmac_replays_by_expiry on hmac_replays (expires_at);
