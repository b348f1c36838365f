//! Conduit control plane: holds the desired configuration as immutable versions in SQLite,
//! streams snapshots to data planes, tracks the fleet, stores the audit records the data
//! planes report, and serves the Admin API.
//!
//! Entry point for embedding (and for tests): [`server::start`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod discovery;
pub mod fleet;
pub mod http;
mod key_rotation;
pub mod metrics;
pub mod principals;
pub mod server;
pub mod session_keys;
pub mod store;
pub mod tls;
pub mod versions;

pub use server::{RunningServer, ServeConfig, ServeError, start};
