//! Cross-process tests of Conduit: the real control plane, data planes, conduitctl and the
//! MCP fixture, as separate processes on 127.0.0.1 with temporary directories.
//!
//! Needs the workspace binaries: run `cargo build --workspace --bins` first (the harness
//! says so when one is missing). One test binary, one submodule per behaviour.
#![forbid(unsafe_code)]

mod integration {
    mod common;

    mod admission;
    mod aggregate;
    mod approval_limits;
    mod approvals;
    mod audit;
    mod audit_limits;

    mod auth;
    mod config_secrets;
    mod edge;
    mod exhaustion;
    mod faults;
    mod golden;
    mod internal_listeners;
    mod observability_assets;
    mod policy_acl;
    mod policy_auth;
    mod policy_cli;
    mod policy_guardrails;
    mod proxy;
    mod public_tls;
    mod rate_limits;
    mod rejection;
    mod replicas;
    mod resilience;
    mod rollback;
    mod rollout;
    mod secret_references;
    mod sessions;
    mod signed_messages;
    mod standalone;
    mod stdio;
    mod stdio_lifecycle;
    mod stdio_secrets;
    mod stdio_tenants;
    mod terminal_injection;
    mod traces;
    mod transport;
    mod webhooks;
    mod yaml_aliases;
}
