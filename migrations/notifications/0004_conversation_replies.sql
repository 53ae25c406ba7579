-- Replies and internal comments posted to HubSpot threads, one per idempotency key. HubSpot has no
-- idempotency key of its own, so the record is written before the post and marked possibly-posted
-- right before it; a repeat then looks on the thread instead of posting again. The text is not kept
-- (it is PHI and lives in HubSpot), only a keyed hash of the request to recognise a repeat.
create table conversation_replies (
    idempotency_key text primary key,
    conversation_id text not null,
    request_mac text not null,
    internal_comment boolean not null,
    hubspot_message_id text,
    uncertain_since timestamptz,
    requested_by_subject text not null,
    on_behalf_of_subject text,
    created_at timestamptz not null default now(),
    posted_at timestamptz
);

-- One HubSpot message answers one key: a lookup after a lost answer never claims another's.
create unique index conversation_replies_by_message on conversation_replies (hubspot_message_id)
    where hubspot_message_id is not null;

grant select, insert, update on conversation_replies to era_notifications_service;
