//! Conduit's policy engines. Each is compiled once from the validated config model into a
//! runtime type that cannot be invalid, then evaluated per request by the data plane and
//! offline by `conduitctl` (`acl check`, `guardrails check`), so both give the same answer.
#![forbid(unsafe_code)]

pub mod acl;
pub mod annotations;
pub mod conditions;
pub mod fingerprint;
pub mod governance;
pub mod guardrails;
pub mod pattern;
pub mod redact;
pub mod uri;

pub use acl::{Acl, AclDecision, AclError, AclReason, Capability, CapabilityKind};
pub use annotations::ToolAnnotations;
pub use fingerprint::fingerprint;
pub use governance::{ApprovalSettings, Governance, GovernanceDecision, GovernanceError, RoleSet};
pub use guardrails::{
    CallContext, DEFAULT_BLOCK_MESSAGE, Decision, GuardrailError, GuardrailRule, GuardrailVerdict,
    Guardrails, RuleAction, RuleHit,
};
pub use pattern::{Pattern, PatternError, PatternSet};
pub use redact::{REDACTED, Redactor, redact, truncate_strings};
