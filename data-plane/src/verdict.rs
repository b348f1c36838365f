//! What the policy phases decided about a message that may go on: written by `admission`,
//! read by the audit record (`audit`), so it sits below both.

/// What admission decided about a message that may go on, for the audit record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    /// The ACL policy that allowed the message (`None`: ACL off or `default_action`).
    pub acl_policy: Option<String>,
    /// The governance tool policy that held the call for approval.
    pub governance_policy: Option<String>,
    /// The enforced guardrail decision, when a rule (or the default) decided.
    pub guardrail: Option<GuardrailOutcome>,
    /// Shadow rules that matched: what they would have done.
    pub shadow: Vec<GuardrailOutcome>,
    /// Why the call needed an approval (granted by the approval phase), if it did.
    pub approval: Option<ApprovalNeeded>,
}

/// A guardrail rule and its action (`block`, `alert`, `require_approval`, `bypass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailOutcome {
    pub rule: String,
    pub action: &'static str,
}

/// A call held for approval, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalNeeded {
    pub source: ApprovalSource,
    /// The reason given to the caller.
    pub reason: String,
}

/// What holds a call for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalSource {
    /// A governance tool policy (its name).
    Governance(String),
    /// A guardrail rule (its name).
    Guardrail(String),
}

impl ApprovalSource {
    /// The policy or rule name.
    pub fn name(&self) -> &str {
        match self {
            ApprovalSource::Governance(name) | ApprovalSource::Guardrail(name) => name,
        }
    }
}
