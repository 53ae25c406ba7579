//! Logging. Handlers log opaque ids only (patient ids, task ids); names, emails, birth dates,
//! addresses, bodies and secrets never reach a log line.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber once; later calls (tests, the in-process dev mesh) are no-ops.
pub fn init(config: &LoggingConfig) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
