//! `acl audit`: what a reviewer should look at in the ACL. Findings are wide grants
//! (an ACL that is off, `default_action: allow`, policies for every client, allow rules with
//! wildcard server or name patterns) and stale entries (server patterns matching no server
//! in `servers`, client patterns matching no API key's client id). Exit 1 when there are
//! findings, so CI can gate on it.

use conduit_config::Document;
use conduit_config::model::{AclAction, AclRule, AuthMethod};
use conduit_policy::Pattern;
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::cli_policy::AuditArgs;
use crate::exit::{CliError, Exit};
use crate::output::{ReportFormat, Table, json};
use crate::source;

/// One thing the audit reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `acl_off`, `default_allow`, `wildcard_clients`, `wildcard_grant`, `unknown_server`
    /// or `unknown_client`.
    pub kind: &'static str,
    /// Where in the document, like `acl.policies[1].allow[0].server`.
    pub path: String,
    pub message: String,
}

/// The whole audit; its JSON fields are part of the CLI contract.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub source: String,
    pub findings: Vec<Finding>,
    /// Checks that could not run, and why.
    pub notes: Vec<String>,
}

/// `conduitctl acl audit`.
pub async fn run(connection: &ConnectionArgs, args: &AuditArgs) -> Result<Exit, CliError> {
    let source = source::load(connection, &args.source).await?;
    let (findings, notes) = audit(&source.document);
    let report = Audit {
        source: source.name,
        findings,
        notes,
    };
    match args.output {
        ReportFormat::Json => print!("{}", json(&report)),
        ReportFormat::Text => print!("{}", render(&report)),
    }
    Ok(if report.findings.is_empty() {
        Exit::Ok
    } else {
        Exit::Refused
    })
}

fn render(report: &Audit) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        out.push_str(&format!("{}: no findings\n", report.source));
    } else {
        let mut table = Table::new(&["KIND", "PATH", "FINDING"]);
        for finding in &report.findings {
            table.row(vec![
                finding.kind.to_string(),
                finding.path.clone(),
                finding.message.clone(),
            ]);
        }
        out.push_str(&table.render());
        out.push_str(&format!(
            "{}: {} finding(s)\n",
            report.source,
            report.findings.len()
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// The findings and notes for `document`.
pub fn audit(document: &Document) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let finding = |kind, path: String, message: String| Finding {
        kind,
        path,
        message,
    };
    let Some(acl) = &document.acl else {
        findings.push(finding(
            "acl_off",
            "acl".into(),
            "no acl section: every client may call every tool, resource and prompt".into(),
        ));
        return (findings, notes);
    };
    if !acl.is_enabled() {
        findings.push(finding(
            "acl_off",
            "acl.enabled".into(),
            "the ACL is disabled: every client may call everything".into(),
        ));
    }
    if acl.default_action == AclAction::Allow {
        findings.push(finding(
            "default_allow",
            "acl.default_action".into(),
            "clients no policy names may call everything".into(),
        ));
    }
    let servers: Vec<&str> = document.servers.iter().map(|s| s.id.as_str()).collect();
    let clients: Option<Vec<&str>> = match &document.auth {
        Some(auth) if auth.method == AuthMethod::ApiKey => {
            Some(auth.api_keys.iter().map(|k| k.client_id.as_str()).collect())
        }
        _ => {
            notes.push(
                "client patterns not checked: client ids are only known from auth.api_keys \
                 (auth.method: api-key)"
                    .into(),
            );
            None
        }
    };
    for (index, policy) in acl.policies.iter().enumerate() {
        let path = format!("acl.policies[{index}]");
        for (i, text) in policy.clients.iter().enumerate() {
            let Ok(pattern) = Pattern::new(text) else {
                continue;
            };
            let client_path = format!("{path}.clients[{i}]");
            if pattern == Pattern::Any {
                findings.push(finding(
                    "wildcard_clients",
                    client_path.clone(),
                    format!("policy \"{}\" applies to every client", policy.name),
                ));
            }
            if let Some(known) = &clients
                && !known.iter().any(|id| pattern.matches(id))
            {
                findings.push(finding(
                    "unknown_client",
                    client_path,
                    format!("\"{text}\" matches no client id of auth.api_keys"),
                ));
            }
        }
        for (list, rules) in [("allow", &policy.allow), ("deny", &policy.deny)] {
            for (i, rule) in rules.iter().enumerate() {
                let rule_path = format!("{path}.{list}[{i}]");
                if list == "allow" {
                    wildcard_grants(&mut findings, &rule_path, &policy.name, rule);
                }
                let Ok(server) = Pattern::new(&rule.server) else {
                    continue;
                };
                if !servers.iter().any(|id| server.matches(id)) {
                    let message = match server {
                        Pattern::Exact(_) => format!("no server \"{}\" in servers", rule.server),
                        _ => format!("\"{}\" matches no server in servers", rule.server),
                    };
                    findings.push(finding(
                        "unknown_server",
                        format!("{rule_path}.server"),
                        message,
                    ));
                }
            }
        }
    }
    (findings, notes)
}

fn wildcard_grants(findings: &mut Vec<Finding>, path: &str, policy: &str, rule: &AclRule) {
    let wide = |text: &str| Pattern::new(text).is_ok_and(|p| p.is_wildcard());
    if wide(&rule.server) {
        findings.push(Finding {
            kind: "wildcard_grant",
            path: format!("{path}.server"),
            message: format!("policy \"{policy}\" allows servers \"{}\"", rule.server),
        });
    }
    for (field, names) in [
        ("tools", &rule.tools),
        ("resources", &rule.resources),
        ("prompts", &rule.prompts),
    ] {
        for (i, text) in names.iter().enumerate() {
            if wide(text) {
                findings.push(Finding {
                    kind: "wildcard_grant",
                    path: format!("{path}.{field}[{i}]"),
                    message: format!(
                        "policy \"{policy}\" allows {field} \"{text}\" on \"{}\"",
                        rule.server
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(yaml: &str) -> (Vec<(&'static str, String)>, Vec<String>) {
        let (findings, notes) = audit(&Document::from_text(yaml).unwrap());
        (
            findings.into_iter().map(|f| (f.kind, f.path)).collect(),
            notes,
        )
    }

    #[test]
    fn a_tight_acl_has_no_findings() {
        let (findings, notes) = kinds(
            "servers: [{id: crm, url: 'http://crm/mcp'}]\nauth: {method: api-key, api_keys: [{key: k, client_id: bot}]}\nacl:\n  default_action: deny\n  policies:\n  - {name: p, clients: [bot], allow: [{server: crm, tools: [get_contact]}]}\n",
        );
        assert!(findings.is_empty(), "{findings:?}");
        assert!(notes.is_empty());
    }

    #[test]
    fn wide_grants_and_stale_entries() {
        let (findings, notes) = kinds(
            "servers: [{id: crm, url: 'http://crm/mcp'}]\nauth: {method: api-key, api_keys: [{key: k, client_id: bot}]}\nacl:\n  default_action: allow\n  policies:\n  - name: all\n    clients: ['*', 'gone-*']\n    allow: [{server: 'c*', tools: ['get_*'], prompts: [p]}]\n    deny: [{server: old, tools: [x]}, {server: 'z*', tools: [x]}]\n",
        );
        let expected = [
            ("default_allow", "acl.default_action"),
            ("wildcard_clients", "acl.policies[0].clients[0]"),
            ("unknown_client", "acl.policies[0].clients[1]"),
            ("wildcard_grant", "acl.policies[0].allow[0].server"),
            ("wildcard_grant", "acl.policies[0].allow[0].tools[0]"),
            ("unknown_server", "acl.policies[0].deny[0].server"),
            ("unknown_server", "acl.policies[0].deny[1].server"),
        ];
        let got: Vec<(&str, &str)> = findings.iter().map(|(k, p)| (*k, p.as_str())).collect();
        assert_eq!(got, expected);
        assert!(notes.is_empty());
    }

    #[test]
    fn without_api_keys_clients_are_not_checked_and_that_is_said() {
        let (findings, notes) = kinds(
            "acl:\n  default_action: deny\n  policies:\n  - {name: p, clients: [ghost], deny: [{server: s, tools: [x]}]}\n",
        );
        assert_eq!(
            findings,
            [(
                "unknown_server",
                "acl.policies[0].deny[0].server".to_string()
            )]
        );
        assert_eq!(notes.len(), 1);
        let (findings, _) = kinds("servers: []\n");
        assert_eq!(findings[0].0, "acl_off");
    }
}
