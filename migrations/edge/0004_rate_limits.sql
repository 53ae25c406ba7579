-- Requests per client per route per minute, shared by every edge replica. The bucket holds the
-- route and a digest of the client's address, never the address itself.
create table rate_limits (
    bucket text not null,
    window_start timestamptz not null,
    hits integer not null,
    primary key (bucket, window_start)
);
create index rate_limits_by_window on rate_limits (window_start);
