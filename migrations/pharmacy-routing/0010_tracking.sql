-- FedEx's tracking of the shipments the pharmacies send by FedEx, kept for at most the cache window
-- (30 minutes) and shared by every replica: a read within it is served from here, and when FedEx is
-- down the last answer is shown with its age.
create table tracking_cache (
    tracking_number  text primary key,
    carrier          text not null,
    found            boolean not null,
    -- FedEx's latestStatusDetail.code (OC, PU, IT, OD, DL, DE, ...) and its description.
    status_code      text not null default '',
    description      text not null default '',
    estimated_begins timestamptz,
    estimated_ends   timestamptz,
    delivered_at     timestamptz,
    -- The scans, newest first: time, derived code, description, "City, ST" (never an address).
    scans            jsonb not null default '[]',
    fetched_at       timestamptz not null
);

-- A carrier that answered 429 is not asked again before `until`, by any replica.
create table carrier_throttles (
    carrier  text primary key,
    until    timestamptz not null
);

alter table shipments add column estimated_begins timestamptz;
alter table shipments add column estimated_ends timestamptz;
create index shipments_to_track on shipments (carrier, updated_at) where status <> 'delivered' and tracking_number <> '';

grant select, insert, update on tracking_cache, carrier_throttles to era_pharmacy_routing_service;
