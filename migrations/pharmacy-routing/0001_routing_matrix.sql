-- Routing as data: which pharmacy and prescriber serve each state. The router re-reads this on every
-- decision, so a change here (through UpdateStateRouting, which audits it) takes effect at once.

-- Refuses UPDATE, DELETE and TRUNCATE on append-only tables. Attached with ENABLE ALWAYS so it also
-- fires under session_replication_role = replica.
create function era_forbid_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end;
$$;

-- The 50 states and DC. Territories are deliberately absent: the clinic does not serve them.
create table jurisdictions (
    code        text primary key check (code ~ '^[A-Z]{2}$'),
    name        text not null,
    -- Excluded: the clinic does not operate there at all.
    excluded    boolean not null default false,
    updated_at  timestamptz not null default now(),
    updated_by  text not null default 'migration'
);

create table pharmacies (
    id      text primary key,
    name    text not null,
    system  text not null check (system in ('pioneerrx', 'lifefile')),
    active  boolean not null default true
);

create table prescribers (
    id      text primary key,
    name    text not null,
    npi     text not null unique check (npi ~ '^[0-9]{10}$'),
    active  boolean not null default true
);

create table prescriber_licences (
    prescriber_id   text not null references prescribers (id),
    state           text not null references jurisdictions (code),
    licence_number  text not null,
    -- Last valid day; a licence is current while expires_on >= today (UTC).
    expires_on      date not null,
    primary key (prescriber_id, state)
);

create table state_routes (
    state          text not null references jurisdictions (code),
    pharmacy_id    text not null references pharmacies (id),
    prescriber_id  text not null references prescribers (id),
    active         boolean not null default true,
    -- Lower is tried first.
    priority       integer not null check (priority between 1 and 1000),
    primary key (state, pharmacy_id)
);

create index state_routes_by_state on state_routes (state, priority);

-- Every change to a state's routing: who, when, why, before and after.
create table routing_audit (
    id          bigint generated always as identity primary key,
    state       text not null,
    changed_by  text not null,
    note        text not null default '',
    before      jsonb not null,
    after       jsonb not null,
    changed_at  timestamptz not null default now()
);

create index routing_audit_by_state on routing_audit (state, id desc);

create trigger routing_audit_append_only
    before update or delete on routing_audit
    for each row execute function era_forbid_change();
create trigger routing_audit_no_truncate
    before truncate on routing_audit
    for each statement execute function era_forbid_change();
alter table routing_audit enable always trigger routing_audit_append_only;
alter table routing_audit enable always trigger routing_audit_no_truncate;

-- The medication catalogue the approval pipeline resolves in its first step.
create table medications (
    id           text primary key check (id ~ '^[a-z0-9-]+$'),
    name         text not null,
    quantity     text not null,
    days_supply  integer not null check (days_supply > 0),
    refills      integer not null check (refills >= 0),
    price_cents  bigint not null check (price_cents >= 0),
    currency     text not null default 'usd' check (currency ~ '^[a-z]{3}$'),
    active       boolean not null default true
);

create table medication_doses (
    medication_id  text not null references medications (id),
    position       integer not null,
    label          text not null,
    strength       text not null,
    directions     text not null,
    primary key (medication_id, position)
);

create table medication_pharmacies (
    medication_id  text not null references medications (id),
    pharmacy_id    text not null references pharmacies (id),
    primary key (medication_id, pharmacy_id)
);
