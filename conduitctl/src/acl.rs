//! `acl check`: the decision the data planes would take for one call, computed by the same
//! `conduit-policy` code from a local file or a stored version. Exit 0 allowed, 1 denied.

use conduit_config::Document;
use conduit_policy::{Acl, AclDecision, AclReason, Capability};
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::cli_policy::AclCheckArgs;
use crate::exit::{CliError, Exit};
use crate::output::{ReportFormat, json};
use crate::source;

/// `conduitctl acl check`.
pub async fn check(connection: &ConnectionArgs, args: &AclCheckArgs) -> Result<Exit, CliError> {
    let source = source::load(connection, &args.source).await?;
    let capability = capability(args)?;
    let report = decide(&source.document, &args.client, &args.server_id, capability)?;
    match args.output {
        ReportFormat::Json => print!("{}", json(&report)),
        ReportFormat::Text => println!("{} ({})", report.sentence(), source.name),
    }
    Ok(if report.allowed {
        Exit::Ok
    } else {
        Exit::Refused
    })
}

fn capability(args: &AclCheckArgs) -> Result<Capability<'_>, CliError> {
    // clap's group makes exactly one of them present.
    match (&args.tool, &args.resource, &args.prompt) {
        (Some(tool), None, None) => Ok(Capability::Tool(tool)),
        (None, Some(uri), None) => Ok(Capability::Resource(uri)),
        (None, None, Some(prompt)) => Ok(Capability::Prompt(prompt)),
        _ => Err(CliError::usage(
            "error: give exactly one of --tool, --resource and --prompt",
        )),
    }
}

/// The answer of `acl check`; its JSON fields are part of the CLI contract.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    pub allowed: bool,
    pub client: String,
    pub server: String,
    /// `tool`, `resource` or `prompt`.
    pub kind: &'static str,
    pub name: String,
    /// The policy that decided; null for `default_action` or a disabled ACL.
    pub policy: Option<String>,
    /// `disabled`, `no_acl`, `default_action`, `deny_rule`, `allow_rule`, `not_allowed`,
    /// `ambiguous_resource`.
    pub reason: &'static str,
    /// Index of the deciding rule in the policy's `deny` or `allow` list.
    pub rule_index: Option<usize>,
}

impl CheckReport {
    fn sentence(&self) -> String {
        let verb = match self.kind {
            "resource" => "read resource",
            "prompt" => "get prompt",
            _ => "call tool",
        };
        let (head, may) = if self.allowed {
            ("allowed", "may")
        } else {
            ("denied", "may not")
        };
        let why = match (self.reason, &self.policy, self.rule_index) {
            ("no_acl", _, _) => "no acl section: the ACL is off".to_string(),
            ("disabled", _, _) => "acl.enabled is false".to_string(),
            ("default_action", _, _) => {
                "no policy names the client: default_action decides".to_string()
            }
            ("deny_rule", Some(p), Some(i)) => format!("policy \"{p}\", deny rule {i}"),
            ("allow_rule", Some(p), Some(i)) => format!("policy \"{p}\", allow rule {i}"),
            (_, Some(p), _) => format!("policy \"{p}\": no allow rule matches"),
            _ => self.reason.to_string(),
        };
        format!(
            "{head}: client '{}' {may} {verb} '{}' on server '{}' [{why}]",
            self.client, self.name, self.server
        )
    }
}

/// Decide with the document's ACL (none: everything is allowed).
pub fn decide(
    document: &Document,
    client: &str,
    server: &str,
    capability: Capability<'_>,
) -> Result<CheckReport, CliError> {
    let compiled = document
        .acl
        .as_ref()
        .map(Acl::try_from)
        .transpose()
        .map_err(|error| CliError::new(Exit::Invalid, format!("error: acl: {error}")))?;
    let decision = match &compiled {
        Some(acl) => acl.decide(client, server, &capability),
        None => AclDecision {
            allowed: true,
            policy: None,
            rule: AclReason::Disabled,
        },
    };
    let (reason, rule_index) = match (compiled.is_some(), decision.rule) {
        (false, _) => ("no_acl", None),
        (true, AclReason::Disabled) => ("disabled", None),
        (true, AclReason::DefaultAction) => ("default_action", None),
        (true, AclReason::DenyRule(i)) => ("deny_rule", Some(i)),
        (true, AclReason::AllowRule(i)) => ("allow_rule", Some(i)),
        (true, AclReason::NotAllowed) => ("not_allowed", None),
        (true, AclReason::AmbiguousResource) => ("ambiguous_resource", None),
    };
    Ok(CheckReport {
        allowed: decision.allowed,
        client: client.to_owned(),
        server: server.to_owned(),
        kind: capability.kind().as_str(),
        name: capability.name().to_owned(),
        policy: decision.policy.map(str::to_owned),
        reason,
        rule_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "acl:\n  default_action: deny\n  policies:\n  - name: p\n    clients: [a]\n    allow: [{server: s, tools: ['get_*']}]\n    deny: [{server: s, tools: [get_secret]}]\n";

    #[test]
    fn reports_the_deciding_policy_and_rule() {
        let document = Document::from_text(DOC).unwrap();
        let allowed = decide(&document, "a", "s", Capability::Tool("get_x")).unwrap();
        assert!(allowed.allowed);
        assert_eq!(
            allowed.sentence(),
            "allowed: client 'a' may call tool 'get_x' on server 's' [policy \"p\", allow rule 0]"
        );
        let denied = decide(&document, "a", "s", Capability::Tool("get_secret")).unwrap();
        assert_eq!(
            (denied.allowed, denied.reason, denied.rule_index),
            (false, "deny_rule", Some(0))
        );
        let other = decide(&document, "b", "s", Capability::Resource("file:///x")).unwrap();
        assert_eq!(
            other.sentence(),
            "denied: client 'b' may not read resource 'file:///x' on server 's' [no policy names the client: default_action decides]"
        );
        let json: serde_json::Value = serde_json::to_value(&other).unwrap();
        assert_eq!(json["policy"], serde_json::Value::Null);
        assert_eq!(json["kind"], "resource");
    }

    #[test]
    fn no_acl_section_allows() {
        let report = decide(&Document::default(), "a", "s", Capability::Prompt("p")).unwrap();
        assert!(report.allowed);
        assert_eq!(report.reason, "no_acl");
    }
}
