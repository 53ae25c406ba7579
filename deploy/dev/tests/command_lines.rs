//! Every service binary's command line is well formed: no two settings share a name, so one
//! variable can never be read into another's place (clap checks this only in debug builds, and a
//! release build would silently merge them).

#[test]
fn every_service_command_line_is_well_formed() {
    era_kit::cli::command::<era_canvas::Binary>().debug_assert();
    era_kit::cli::command::<era_payments::Binary>().debug_assert();
    era_kit::cli::command::<era_pharmacy_routing::Binary>().debug_assert();
    era_kit::cli::command::<era_scheduling::Binary>().debug_assert();
    era_kit::cli::command::<era_notifications::Binary>().debug_assert();
}
