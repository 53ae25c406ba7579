fn main() -> std::process::ExitCode {
    era_kit::cli::main::<era_payments::Binary>()
}
