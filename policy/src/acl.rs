//! The compiled ACL: which client may call which tool, read which resource and get which
//! prompt of which server. Owns the decision semantics (the config model documents them):
//! policies in order; the first whose `clients` match the caller decides alone; in it a
//! matching `deny` rule denies, else a matching `allow` rule allows, else the call is denied.
//! No policy matching → `default_action`. `enabled: false` → everything is allowed.
//! Resource URIs and resource patterns are compared in normal form (`crate::uri`); a URI
//! that stays ambiguous is denied by the policy that names the caller.

use conduit_config::model;

use crate::pattern::{Pattern, PatternError, PatternSet};

/// What a caller asks for: the unprefixed tool name, the resource URI (or a template's
/// `uriTemplate` text when filtering `resources/templates/list`), or the prompt name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability<'a> {
    /// A tool.
    Tool(&'a str),
    /// A resource URI.
    Resource(&'a str),
    /// A prompt.
    Prompt(&'a str),
}

/// The kind of a [`Capability`], a closed set usable as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityKind {
    /// `tool`.
    Tool,
    /// `resource`.
    Resource,
    /// `prompt`.
    Prompt,
}

impl CapabilityKind {
    /// `tool`, `resource` or `prompt`.
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityKind::Tool => "tool",
            CapabilityKind::Resource => "resource",
            CapabilityKind::Prompt => "prompt",
        }
    }

    /// The verb of the access-denied message: `call tool`, `read resource`, `get prompt`.
    pub fn verb(self) -> &'static str {
        match self {
            CapabilityKind::Tool => "call tool",
            CapabilityKind::Resource => "read resource",
            CapabilityKind::Prompt => "get prompt",
        }
    }
}

impl Capability<'_> {
    /// Its kind.
    pub fn kind(&self) -> CapabilityKind {
        match self {
            Capability::Tool(_) => CapabilityKind::Tool,
            Capability::Resource(_) => CapabilityKind::Resource,
            Capability::Prompt(_) => CapabilityKind::Prompt,
        }
    }

    /// The tool name, resource URI or prompt name.
    pub fn name(&self) -> &str {
        match self {
            Capability::Tool(name) | Capability::Resource(name) | Capability::Prompt(name) => name,
        }
    }
}

/// Why an ACL could not be compiled (validation refuses the same documents first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A pattern is invalid.
    #[error("{path}: {source}")]
    Pattern {
        /// Where, like `acl.policies[0].clients[1]`.
        path: String,
        /// The pattern problem.
        source: PatternError,
    },
    /// A policy lists no client pattern (it would match nobody).
    #[error("acl.policies[{0}].clients: must list at least one pattern")]
    NoClients(usize),
    /// A rule lists neither tools, resources nor prompts.
    #[error("{0}: must list at least one of tools, resources and prompts")]
    EmptyRule(String),
}

/// A compiled ACL rule: one server pattern and the names it covers per kind.
#[derive(Debug, Clone)]
pub struct AclRule {
    server: Pattern,
    tools: PatternSet,
    resources: PatternSet,
    prompts: PatternSet,
}

impl AclRule {
    fn compile(path: &str, rule: &model::AclRule) -> Result<AclRule, AclError> {
        if rule.tools.is_empty() && rule.resources.is_empty() && rule.prompts.is_empty() {
            return Err(AclError::EmptyRule(path.to_owned()));
        }
        let set = |field: &str, texts: &[String]| {
            PatternSet::new(texts).map_err(|source| AclError::Pattern {
                path: format!("{path}.{field}"),
                source,
            })
        };
        // Resource patterns are compared with normalized URIs, so they are normalized too.
        let resources: Vec<String> = rule.resources.iter().map(|p| resource_pattern(p)).collect();
        Ok(AclRule {
            server: Pattern::new(&rule.server).map_err(|source| AclError::Pattern {
                path: format!("{path}.server"),
                source,
            })?,
            tools: set("tools", &rule.tools)?,
            resources: set("resources", &resources)?,
            prompts: set("prompts", &rule.prompts)?,
        })
    }

    /// Whether the rule covers `capability` on `server`.
    pub fn matches(&self, server: &str, capability: &Capability<'_>) -> bool {
        self.server.matches(server) && self.names(capability.kind()).matches(capability.name())
    }

    /// The server pattern.
    pub fn server(&self) -> &Pattern {
        &self.server
    }

    /// The name patterns of one kind (empty: the rule covers nothing of that kind).
    pub fn names(&self, kind: CapabilityKind) -> &PatternSet {
        match kind {
            CapabilityKind::Tool => &self.tools,
            CapabilityKind::Resource => &self.resources,
            CapabilityKind::Prompt => &self.prompts,
        }
    }
}

/// A resource pattern in the form URIs are compared in: its text before the `*`
/// normalized (`crate::uri`), left as written when that text is not a normal URI prefix
/// (it then matches only what it spells, which no normalized URI does).
fn resource_pattern(pattern: &str) -> String {
    let (text, star) = match pattern.strip_suffix('*') {
        Some(prefix) => (prefix, "*"),
        None => (pattern, ""),
    };
    match crate::uri::normalize(text) {
        Ok(normal) => format!("{normal}{star}"),
        Err(_) => pattern.to_owned(),
    }
}

/// A compiled ACL policy.
#[derive(Debug, Clone)]
pub struct AclPolicy {
    name: String,
    clients: PatternSet,
    allow: Vec<AclRule>,
    deny: Vec<AclRule>,
}

impl AclPolicy {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Client id patterns.
    pub fn clients(&self) -> &PatternSet {
        &self.clients
    }
    /// Allow rules.
    pub fn allow(&self) -> &[AclRule] {
        &self.allow
    }
    /// Deny rules.
    pub fn deny(&self) -> &[AclRule] {
        &self.deny
    }
}

/// Which step of the evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclReason {
    /// The ACL is disabled: everything is allowed.
    Disabled,
    /// No policy names the client: `default_action` decided.
    DefaultAction,
    /// Deny rule number `n` (0-based) of the policy matched.
    DenyRule(usize),
    /// Allow rule number `n` (0-based) of the policy matched.
    AllowRule(usize),
    /// The policy names the client but none of its allow rules matched.
    NotAllowed,
    /// The resource URI is ambiguous (`crate::uri`): denied whatever the rules say.
    AmbiguousResource,
}

/// The outcome of [`Acl::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclDecision<'a> {
    /// Whether the call (or the list entry) is allowed.
    pub allowed: bool,
    /// The name of the policy that decided; `None` for `default_action` or a disabled ACL.
    pub policy: Option<&'a str>,
    /// Which step decided.
    pub rule: AclReason,
}

/// The compiled `acl` section.
#[derive(Debug, Clone)]
pub struct Acl {
    enabled: bool,
    default_allow: bool,
    policies: Vec<AclPolicy>,
}

impl TryFrom<&model::Acl> for Acl {
    type Error = AclError;

    fn try_from(acl: &model::Acl) -> Result<Acl, AclError> {
        let policies = acl
            .policies
            .iter()
            .enumerate()
            .map(|(index, policy)| {
                let path = format!("acl.policies[{index}]");
                if policy.clients.is_empty() {
                    return Err(AclError::NoClients(index));
                }
                let rules = |field: &str, rules: &[model::AclRule]| {
                    rules
                        .iter()
                        .enumerate()
                        .map(|(i, rule)| AclRule::compile(&format!("{path}.{field}[{i}]"), rule))
                        .collect::<Result<Vec<_>, _>>()
                };
                Ok(AclPolicy {
                    name: policy.name.clone(),
                    clients: PatternSet::new(&policy.clients).map_err(|source| {
                        AclError::Pattern {
                            path: format!("{path}.clients"),
                            source,
                        }
                    })?,
                    allow: rules("allow", &policy.allow)?,
                    deny: rules("deny", &policy.deny)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Acl {
            enabled: acl.is_enabled(),
            default_allow: acl.default_action == model::AclAction::Allow,
            policies,
        })
    }
}

impl Acl {
    /// Decide whether `client` may use `capability` on `server`.
    pub fn decide(
        &self,
        client: &str,
        server: &str,
        capability: &Capability<'_>,
    ) -> AclDecision<'_> {
        if !self.enabled {
            return AclDecision {
                allowed: true,
                policy: None,
                rule: AclReason::Disabled,
            };
        }
        let Some(policy) = self.policies.iter().find(|p| p.clients.matches(client)) else {
            return AclDecision {
                allowed: self.default_allow,
                policy: None,
                rule: AclReason::DefaultAction,
            };
        };
        // Resource URIs are matched in normal form; an ambiguous one matches no rule, and is
        // denied rather than left to a deny rule it might slip past.
        let (normalized, resource);
        let capability = match capability {
            Capability::Resource(uri) => match crate::uri::normalize(uri) {
                Ok(uri) => {
                    normalized = uri;
                    resource = Capability::Resource(&normalized);
                    &resource
                }
                Err(_) => {
                    return AclDecision {
                        allowed: false,
                        policy: Some(&policy.name),
                        rule: AclReason::AmbiguousResource,
                    };
                }
            },
            other => other,
        };
        let position = |rules: &[AclRule]| rules.iter().position(|r| r.matches(server, capability));
        let (allowed, rule) = if let Some(index) = position(&policy.deny) {
            (false, AclReason::DenyRule(index))
        } else if let Some(index) = position(&policy.allow) {
            (true, AclReason::AllowRule(index))
        } else {
            (false, AclReason::NotAllowed)
        };
        AclDecision {
            allowed,
            policy: Some(&policy.name),
            rule,
        }
    }

    /// Whether a list entry is shown to `client` (the same answer as [`Acl::decide`]).
    pub fn visible(&self, client: &str, server: &str, capability: &Capability<'_>) -> bool {
        self.decide(client, server, capability).allowed
    }

    /// Whether the ACL is enforced.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether callers no policy names are allowed.
    pub fn default_allows(&self) -> bool {
        self.default_allow
    }

    /// The policies, in evaluation order (for audits).
    pub fn policies(&self) -> &[AclPolicy] {
        &self.policies
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
