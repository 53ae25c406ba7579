-- Who read which patient's intake data, when, through which call: an append-only trail, refused
-- UPDATE/DELETE/TRUNCATE like the records themselves.
create table phi_reads (
    id bigserial primary key,
    read_at timestamptz not null default now(),
    -- The caller as the edge authenticated it: an admin's login, "admin-secret", a service name, or
    -- the patient's own Canvas id.
    actor_subject text not null,
    actor_role text not null,
    rpc text not null,
    canvas_patient_id text not null,
    -- The intake record read, when the call returned one.
    record_id uuid
);

create index phi_reads_by_patient on phi_reads (canvas_patient_id, read_at desc);

create trigger phi_reads_append_only
    before update or delete on phi_reads
    for each row execute function era_forbid_change();
create trigger phi_reads_no_truncate
    before truncate on phi_reads
    for each statement execute function era_forbid_change();
alter table phi_reads enable always trigger phi_reads_append_only;
alter table phi_reads enable always trigger phi_reads_no_truncate;

grant select, insert on phi_reads to era_canvas_service;
grant usage on sequence phi_reads_id_seq to era_canvas_service;
