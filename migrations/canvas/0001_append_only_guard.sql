-- Refuses UPDATE, DELETE and TRUNCATE on the append-only tables (audit trails, intake records) this
-- database will hold. Attached with ENABLE ALWAYS so it also fires under
-- session_replication_role = replica.
create function era_forbid_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end;
$$;
