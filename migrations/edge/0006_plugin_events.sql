-- Every delivery to the Canvas plugin's routes, stored as it arrived before anything is checked
-- (what was sent, and what became of it, for forensics); and each event the plugin announced,
-- processed once whatever the number of deliveries.
create table plugin_deliveries (
    id bigserial primary key,
    received_at timestamptz not null default now(),
    route text not null,
    body bytea not null,
    -- received, bad_signature, malformed, unknown_patient, processed, repeat
    outcome text not null default 'received',
    event_id text
);
create index plugin_deliveries_by_time on plugin_deliveries (received_at);

create table plugin_events (
    event_id text primary key,
    event_type text not null,
    canvas_patient_id text not null,
    first_received_at timestamptz not null default now(),
    processed_at timestamptz
);
