//! What every Conduit binary does the same way at start and stop: install the one rustls
//! crypto provider, set up `tracing` from `--log-format` and `RUST_LOG`, wait for SIGTERM or
//! SIGINT, and print an error with its causes on one line. The servers also share how they
//! serve their HTTP listeners (`listener`) and their internal HTTP listener (`internal_http`).
//!
//! It owns no configuration and no state; each binary keeps its own flags and lifecycle.
#![forbid(unsafe_code)]

mod escape;
pub mod internal_http;
pub mod listener;

use std::error::Error;
use std::io::IsTerminal as _;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

pub use escape::{escape_controls, escape_controls_keep_newlines, escaped_fields, needs_escape};

/// How log lines are written (always to stderr, so stdout stays free for command output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Install aws-lc-rs as the process-wide rustls provider. rustls panics at the first TLS
/// handshake when it cannot tell which provider to use, so every binary calls this first.
/// A second call (tests starting several servers in one process) is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Set up `tracing`: `RUST_LOG` filters (default `info`), `format` shapes the lines.
/// Colours only on a terminal: a log file or journal gets plain text (and the proxy does
/// not pay for styling every request span). Text lines escape control characters in every
/// field ([`escaped_fields`]), so a logged value can neither forge a line nor drive the
/// terminal; JSON lines are escaped by their encoder.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.fmt_fields(escaped_fields()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        }
    }
}

/// Handlers for SIGTERM and SIGINT. Create it before starting servers, so a signal that
/// arrives during start-up is not lost.
pub struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Wait for the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.terminate.recv() => StopSignal::Terminate,
            _ = self.interrupt.recv() => StopSignal::Interrupt,
        }
    }
}

/// `error: cause: cause`. Transport errors keep the useful part in their sources, and some
/// layers repeat their source's text in their own; a repeated text is written once.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::error_chain;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|layer| layer as _)
        }
    }

    #[test]
    fn joins_causes_once() {
        let refused = Layer("connection refused", None);
        let connect = Layer("tcp connect error", Some(Box::new(refused)));
        let repeated = Layer("tcp connect error", Some(Box::new(connect)));
        let top = Layer("transport error", Some(Box::new(repeated)));
        assert_eq!(
            error_chain(&top),
            "transport error: tcp connect error: connection refused"
        );
    }
}
