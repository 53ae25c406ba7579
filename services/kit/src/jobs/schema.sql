-- The durable-work queue of era_kit::jobs. Installed by the service at start, idempotently: later
-- changes are appended here as statements that are safe to run again.
create table if not exists jobs (
    id bigserial primary key,
    -- Which handler runs it, and what it is about: one job per key.
    kind text not null,
    key text not null unique,
    -- pending: due at run_at; running: leased; done; dead: out of attempts or refused for good.
    status text not null default 'pending' check (status in ('pending', 'running', 'done', 'dead')),
    run_at timestamptz not null default now(),
    -- Attempts since the job was last asked for; the retry schedule is indexed by it.
    attempts integer not null default 0,
    -- Asked for again while running: run once more when this run ends.
    rerun boolean not null default false,
    lease_owner text,
    lease_until timestamptz,
    -- Raised by every claim; a holder's writes carry the generation it claimed with (the fence).
    lease_generation bigint not null default 0,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index if not exists jobs_due on jobs (run_at) where status = 'pending';
create index if not exists jobs_leased on jobs (lease_until) where status = 'running';
