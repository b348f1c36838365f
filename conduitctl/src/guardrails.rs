//! `guardrails check`: the guardrail verdict the data planes would reach for one tool call,
//! computed by the same `conduit-policy` code from a local file or a stored version. Exit 0
//! when the call goes through (allow, bypass, alert), 1 when it is blocked or held for
//! approval.

use conduit_config::Document;
use conduit_policy::guardrails::severity_str;
use conduit_policy::{CallContext, DEFAULT_BLOCK_MESSAGE, Decision, Guardrails, ToolAnnotations};
use serde::Serialize;
use serde_json::Value;

use crate::cli::ConnectionArgs;
use crate::cli_policy::GuardrailsCheckArgs;
use crate::exit::{CliError, Exit};
use crate::output::{ReportFormat, json};
use crate::source;

/// `conduitctl guardrails check`.
pub async fn check(
    connection: &ConnectionArgs,
    args: &GuardrailsCheckArgs,
) -> Result<Exit, CliError> {
    let arguments = json_object("--args", &args.args)?;
    let annotations = match &args.annotations {
        Some(text) => ToolAnnotations::from_annotations(&json_object("--annotations", text)?),
        None => ToolAnnotations::UNKNOWN,
    };
    let source = source::load(connection, &args.source).await?;
    let call = CallContext {
        client_id: &args.client,
        server_id: &args.server_id,
        tool: &args.tool,
        annotations: &annotations,
        args: &arguments,
    };
    let report = evaluate(&source.document, &call)?;
    match args.output {
        ReportFormat::Json => print!("{}", json(&report)),
        ReportFormat::Text => print!("{}", report.render(&source.name)),
    }
    Ok(if report.allowed {
        Exit::Ok
    } else {
        Exit::Refused
    })
}

fn json_object(flag: &str, text: &str) -> Result<Value, CliError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(CliError::usage(format!(
            "error: {flag} must be a JSON object"
        ))),
        Err(error) => Err(CliError::usage(format!(
            "error: {flag}: invalid JSON: {error}"
        ))),
    }
}

/// A shadow rule that matched.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ShadowHit {
    pub rule: String,
    pub action: &'static str,
    pub severity: &'static str,
}

/// The answer of `guardrails check`; its JSON fields are part of the CLI contract.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    /// Whether the call goes through.
    pub allowed: bool,
    /// `allow`, `bypass`, `alert`, `block`, `require_approval`, `default_block`, or
    /// `no_guardrails`.
    pub decision: &'static str,
    /// The deciding rule, when one decided.
    pub rule: Option<String>,
    pub severity: Option<&'static str>,
    /// The message a refused caller sees.
    pub message: Option<String>,
    pub shadow: Vec<ShadowHit>,
}

impl CheckReport {
    fn render(&self, source: &str) -> String {
        let mut out = match &self.rule {
            Some(rule) => format!(
                "{}: rule \"{rule}\" (severity {}) ({source})\n",
                self.decision,
                self.severity.unwrap_or("medium")
            ),
            None => format!("{} ({source})\n", self.decision),
        };
        if let Some(message) = &self.message {
            out.push_str(&format!("message: {message}\n"));
        }
        for hit in &self.shadow {
            out.push_str(&format!(
                "shadow: rule \"{}\" would {} (severity {})\n",
                hit.rule, hit.action, hit.severity
            ));
        }
        out
    }
}

/// Evaluate with the document's guardrails (none: the call is allowed).
pub fn evaluate(document: &Document, call: &CallContext<'_>) -> Result<CheckReport, CliError> {
    let Some(model) = &document.guardrails else {
        return Ok(CheckReport {
            allowed: true,
            decision: "no_guardrails",
            rule: None,
            severity: None,
            message: None,
            shadow: Vec::new(),
        });
    };
    let guardrails = Guardrails::try_from(model)
        .map_err(|error| CliError::new(Exit::Invalid, format!("error: guardrails: {error}")))?;
    let verdict = guardrails.evaluate(call);
    let decision = verdict.decision;
    let (name, message) = match decision {
        Decision::Allow => ("allow", None),
        Decision::Bypass { .. } => ("bypass", None),
        Decision::Alert { rule } => ("alert", rule.message().map(str::to_owned)),
        Decision::Block { rule } => ("block", Some(rule.block_message())),
        Decision::RequireApproval { rule } => ("require_approval", Some(rule.approval_message())),
        Decision::DefaultBlock => ("default_block", Some(DEFAULT_BLOCK_MESSAGE.to_owned())),
    };
    Ok(CheckReport {
        allowed: decision.allows(),
        decision: name,
        rule: decision.rule().map(|rule| rule.name().to_owned()),
        severity: decision.rule().map(|rule| severity_str(rule.severity())),
        message,
        shadow: verdict
            .shadow
            .iter()
            .map(|hit| ShadowHit {
                rule: hit.rule.name().to_owned(),
                action: hit.action.as_str(),
                severity: severity_str(hit.severity),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_decision_rule_and_shadow_hits() {
        let document = Document::from_text(
            "guardrails:\n  default_action: block\n  rules:\n  - {name: s, action: alert, mode: shadow, severity: high}\n  - {name: big, tools: [export], conditions: [{field: n, operator: gt, value: 10}], action: block}\n  - {name: ok, tools: [export], action: alert}\n",
        )
        .unwrap();
        let args = json!({"n": 11});
        let call = CallContext {
            client_id: "c",
            server_id: "s",
            tool: "export",
            annotations: &ToolAnnotations::UNKNOWN,
            args: &args,
        };
        let report = evaluate(&document, &call).unwrap();
        assert_eq!((report.allowed, report.decision), (false, "block"));
        assert_eq!(report.rule.as_deref(), Some("big"));
        assert_eq!(
            report.message.as_deref(),
            Some("blocked by guardrail rule \"big\"")
        );
        assert_eq!(
            report.shadow,
            [ShadowHit {
                rule: "s".into(),
                action: "alert",
                severity: "high"
            }]
        );
        assert_eq!(
            report.render("f.yaml"),
            "block: rule \"big\" (severity medium) (f.yaml)\nmessage: blocked by guardrail rule \"big\"\nshadow: rule \"s\" would alert (severity high)\n"
        );
        let small = json!({"n": 1});
        let report = evaluate(
            &document,
            &CallContext {
                args: &small,
                ..call
            },
        )
        .unwrap();
        assert_eq!((report.allowed, report.decision), (true, "alert"));
        let report = evaluate(
            &document,
            &CallContext {
                tool: "other",
                ..call
            },
        )
        .unwrap();
        assert_eq!((report.allowed, report.decision), (false, "default_block"));
        let report = evaluate(&Document::default(), &call).unwrap();
        assert_eq!((report.allowed, report.decision), (true, "no_guardrails"));
    }

    #[test]
    fn arguments_must_be_objects() {
        assert!(json_object("--args", "{\"a\": 1}").is_ok());
        assert_eq!(
            json_object("--args", "[1]").unwrap_err().exit(),
            Exit::Usage
        );
        assert_eq!(json_object("--args", "{").unwrap_err().exit(), Exit::Usage);
    }
}
