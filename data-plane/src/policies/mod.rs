//! The policy sections of one configuration, compiled for the request path: the ACL,
//! guardrails and governance engines of `conduit_policy` (each `None` when its section is
//! absent or `enabled: false`), and the tool annotation registry.

use conduit_config::{ConfigError, Document};
use conduit_policy::acl::Acl;
use conduit_policy::governance::Governance;
use conduit_policy::guardrails::Guardrails;

mod annotations;

use crate::mcp::ListKind;
use annotations::Registry;

/// The compiled policy sections.
#[derive(Debug, Default)]
pub struct Policies {
    acl: Option<Acl>,
    guardrails: Option<Guardrails>,
    governance: Option<Governance>,
    annotations: Registry,
}

impl Policies {
    /// Compile the policy sections of `document`; every problem with its path.
    pub fn compile(document: &Document) -> Result<Policies, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let acl = document
            .acl
            .as_ref()
            .filter(|acl| acl.is_enabled())
            .and_then(|acl| {
                Acl::try_from(acl)
                    .map_err(|e| errors.push(located(&e)))
                    .ok()
            });
        let guardrails = document
            .guardrails
            .as_ref()
            .filter(|g| g.is_enabled())
            .and_then(|g| {
                Guardrails::try_from(g)
                    .map_err(|e| errors.push(located(&e)))
                    .ok()
            });
        let governance = document
            .governance
            .as_ref()
            .filter(|g| g.is_enabled())
            .and_then(|g| {
                Governance::try_from(g)
                    .map_err(|e| errors.push(located(&e)))
                    .ok()
            });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Policies {
            acl,
            guardrails,
            governance,
            annotations: Registry::new(document),
        })
    }

    /// Keep what `previous` learned (tool annotations).
    pub fn inherit(&mut self, previous: &Policies) {
        self.annotations.inherit(&previous.annotations);
    }

    /// Whether any section needs to read messages: when none does, the request path does
    /// not parse them.
    pub fn enabled(&self) -> bool {
        self.acl.is_some() || self.guardrails.is_some() || self.governance.is_some()
    }

    /// Whether answers to the list `kind` must be looked at: filtered (ACL, governance for
    /// tools) or read for tool annotations (guardrails).
    pub fn inspects(&self, kind: ListKind) -> bool {
        self.acl.is_some()
            || (kind == ListKind::Tools && (self.governance.is_some() || self.guardrails.is_some()))
    }

    /// Whether some list is filtered (ACL on, or governance hiding denied tools).
    pub fn filters_lists(&self) -> bool {
        self.acl.is_some() || self.governance.is_some()
    }

    pub fn acl(&self) -> Option<&Acl> {
        self.acl.as_ref()
    }

    pub fn guardrails(&self) -> Option<&Guardrails> {
        self.guardrails.as_ref()
    }

    pub fn governance(&self) -> Option<&Governance> {
        self.governance.as_ref()
    }

    pub fn annotations(&self) -> &Registry {
        &self.annotations
    }
}

/// A compile error of an engine as a config error: its text starts with the path.
fn located(error: &dyn std::fmt::Display) -> ConfigError {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => ConfigError {
            path: path.to_owned(),
            message: message.to_owned(),
        },
        _ => ConfigError {
            path: String::new(),
            message: text,
        },
    }
}
