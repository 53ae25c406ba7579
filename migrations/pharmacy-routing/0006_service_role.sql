-- The service runs as era_pharmacy_routing_service (SET ROLE on every pooled connection), a role that
-- owns nothing: it may read the routing tables and change only what the API changes, append to the
-- audit trails (routing audit, sync log, callbacks, shipment events) but never change or remove
-- their rows, and never delete a run or an order. Migrations keep running as the login role. Roles
-- are cluster-wide, so concurrent migrations of other databases may race to create it.
do $$
begin
    create role era_pharmacy_routing_service nologin;
exception when duplicate_object or unique_violation then
    null;
end
$$;

do $$
begin
    execute format('grant era_pharmacy_routing_service to %I', current_user);
exception when duplicate_object or invalid_grant_operation then
    null;
end
$$;

grant usage on schema public to era_pharmacy_routing_service;

grant select on pharmacies, prescribers, prescriber_licences, medications, medication_doses,
    medication_pharmacies to era_pharmacy_routing_service;
-- UpdateStateRouting: a state's exclusion and its routes (replaced as a whole).
grant select, update on jurisdictions to era_pharmacy_routing_service;
grant select, insert, delete on state_routes to era_pharmacy_routing_service;

grant select, insert on routing_audit, sync_logs, pharmacy_callbacks, shipment_events
    to era_pharmacy_routing_service;
grant select, insert, update on orchestration_runs, run_steps, pharmacy_orders, shipments, refills
    to era_pharmacy_routing_service;
