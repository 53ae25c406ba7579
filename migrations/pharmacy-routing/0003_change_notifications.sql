-- Every replica serves decisions from an in-memory snapshot of these tables. Any committed change
-- to them, through the API or by hand in SQL, tells the replicas to reload.
create function era_routing_changed() returns trigger
language plpgsql as $$
begin
    perform pg_notify('era_routing_changed', tg_table_name);
    return null;
end;
$$;

do $$
declare
    t text;
begin
    foreach t in array array['jurisdictions', 'pharmacies', 'prescribers', 'prescriber_licences', 'state_routes',
                             'medications', 'medication_doses', 'medication_pharmacies']
    loop
        execute format('create trigger %I after insert or update or delete or truncate on %I
                        for each statement execute function era_routing_changed()', t || '_changed', t);
    end loop;
end;
$$;
