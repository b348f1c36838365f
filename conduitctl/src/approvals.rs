//! `conduitctl approvals list|approve|reject`: the calls data planes held for approval, and
//! the decisions. The decision is taken as the principal the token belongs to; the control
//! plane checks its role and the governance rules (exit 6 with the reason when refused).

use chrono::Utc;
use conduit_proto::v1::{
    Approval, DecideApprovalRequest, ListApprovalsRequest, approval::Status as WireStatus,
};
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::cli::{ApprovalStatusFilter, ApprovalsListArgs, ApproveArgs, DecideArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::{RecordFormat, Table, age, escape_controls, json, or_dash, yaml_of_json};

/// `conduitctl approvals list [--status S] [--limit N] [-o table|json|yaml]`.
pub async fn list(connection: &ConnectionArgs, args: &ApprovalsListArgs) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let request = ListApprovalsRequest {
        status: wire_filter(args.status).into(),
        limit: args.limit.unwrap_or(0),
    };
    let listing = session
        .call(CALL_TIMEOUT, session.admin.clone().list_approvals(request))
        .await?;
    print!("{}", render_list(&listing.approvals, args.output));
    Ok(Exit::Ok)
}

/// `conduitctl approvals approve ID [--max-uses N]` (`approve` given) or `approvals reject
/// ID`, with `[--note TEXT] [-o table|json|yaml]`.
pub async fn decide(
    connection: &ConnectionArgs,
    args: &DecideArgs,
    approve: Option<&ApproveArgs>,
) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let request = DecideApprovalRequest {
        id: args.id.clone(),
        approve: approve.is_some(),
        note: args.note.clone().unwrap_or_default(),
        // 0: the control plane's default (governance.approvals.max_uses).
        max_uses: approve.and_then(|approve| approve.max_uses).unwrap_or(0),
    };
    let decided = session
        .call(CALL_TIMEOUT, session.admin.clone().decide_approval(request))
        .await?;
    print!("{}", render_decision(&decided, args.output));
    Ok(Exit::Ok)
}

fn wire_filter(filter: ApprovalStatusFilter) -> WireStatus {
    match filter {
        ApprovalStatusFilter::All => WireStatus::Unspecified,
        ApprovalStatusFilter::Pending => WireStatus::Pending,
        ApprovalStatusFilter::Approved => WireStatus::Approved,
        ApprovalStatusFilter::Rejected => WireStatus::Rejected,
        ApprovalStatusFilter::Expired => WireStatus::Expired,
    }
}

fn status_word(approval: &Approval) -> &'static str {
    match WireStatus::try_from(approval.status) {
        Ok(WireStatus::Pending) => "pending",
        Ok(WireStatus::Approved) => "approved",
        Ok(WireStatus::Rejected) => "rejected",
        Ok(WireStatus::Expired) => "expired",
        _ => "unknown",
    }
}

/// One approval in `-o json|yaml`; the field set is part of the CLI contract.
#[derive(Debug, Serialize)]
struct ApprovalJson<'a> {
    id: &'a str,
    status: &'static str,
    client_id: &'a str,
    workspace: &'a str,
    server: &'a str,
    tool: &'a str,
    /// The redacted arguments as JSON (a string when they do not parse).
    arguments: serde_json::Value,
    fingerprint: &'a str,
    rule: &'a str,
    source: &'a str,
    reason: &'a str,
    trace_id: &'a str,
    created_at: &'a str,
    expires_at: &'a str,
    decided_at: Option<&'a str>,
    approver: Option<&'a str>,
    note: Option<&'a str>,
    /// Calls an approved request allows, and how many the data planes reported.
    max_uses: Option<u32>,
    uses: u32,
}

impl<'a> From<&'a Approval> for ApprovalJson<'a> {
    fn from(approval: &'a Approval) -> Self {
        let some = |text: &'a str| (!text.is_empty()).then_some(text);
        ApprovalJson {
            id: &approval.id,
            status: status_word(approval),
            client_id: &approval.client_id,
            workspace: &approval.tenant_id,
            server: &approval.server_id,
            tool: &approval.tool,
            arguments: serde_json::from_str(&approval.arguments_json)
                .unwrap_or_else(|_| serde_json::Value::String(approval.arguments_json.clone())),
            fingerprint: &approval.fingerprint,
            rule: &approval.rule,
            source: &approval.source,
            reason: &approval.reason,
            trace_id: &approval.trace_id,
            created_at: &approval.created_at,
            expires_at: &approval.expires_at,
            decided_at: some(&approval.decided_at),
            approver: some(&approval.approver),
            note: some(&approval.note),
            max_uses: (approval.max_uses != 0).then_some(approval.max_uses),
            uses: approval.uses,
        }
    }
}

fn structured<T: Serialize>(value: &T, format: RecordFormat) -> String {
    let value = serde_json::to_value(value).expect("approvals serialize");
    match format {
        RecordFormat::Yaml => yaml_of_json(&value),
        _ => json(&value),
    }
}

pub fn render_list(approvals: &[Approval], format: RecordFormat) -> String {
    match format {
        RecordFormat::Json | RecordFormat::Yaml => structured(
            &approvals.iter().map(ApprovalJson::from).collect::<Vec<_>>(),
            format,
        ),
        RecordFormat::Table => {
            if approvals.is_empty() {
                return "no approval requests\n".to_string();
            }
            let now = Utc::now();
            let mut table = Table::new(&[
                "ID",
                "STATUS",
                "CLIENT",
                "WORKSPACE",
                "SERVER",
                "TOOL",
                "RULE",
                "AGE",
                "APPROVER",
            ]);
            for approval in approvals {
                table.row(vec![
                    approval.id.clone(),
                    status_word(approval).to_string(),
                    or_dash(&approval.client_id),
                    or_dash(&approval.tenant_id),
                    or_dash(&approval.server_id),
                    or_dash(&approval.tool),
                    or_dash(&approval.rule),
                    age(&approval.created_at, now),
                    or_dash(&approval.approver),
                ]);
            }
            table.render()
        }
    }
}

pub fn render_decision(approval: &Approval, format: RecordFormat) -> String {
    match format {
        RecordFormat::Json | RecordFormat::Yaml => {
            structured(&ApprovalJson::from(approval), format)
        }
        RecordFormat::Table => {
            let mut line = format!(
                "approval {} {} by {}",
                approval.id,
                status_word(approval),
                or_dash(&approval.approver)
            );
            if status_word(approval) == "approved" {
                line.push_str(&format!(
                    "; retry the call with X-Conduit-Approval-Id: {} (for {} call{}, until {})",
                    approval.id,
                    approval.max_uses.max(1),
                    if approval.max_uses > 1 { "s" } else { "" },
                    approval.expires_at
                ));
            }
            let mut line = escape_controls(&line).into_owned();
            line.push('\n');
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(status: WireStatus) -> Approval {
        Approval {
            id: "apr_abc".into(),
            status: status.into(),
            client_id: "agent".into(),
            tenant_id: "acme".into(),
            server_id: "files".into(),
            tool: "delete".into(),
            fingerprint: "ab".repeat(32),
            arguments_json: r#"{"path":"/x","token":"[REDACTED]"}"#.into(),
            rule: "approve-deletes".into(),
            source: "guardrail".into(),
            reason: "deletes need approval".into(),
            trace_id: "t1".into(),
            created_at: "2026-11-24T10:00:00Z".into(),
            expires_at: "2026-11-24T11:00:00Z".into(),
            ..Approval::default()
        }
    }

    #[test]
    fn list_as_table_json_and_yaml() {
        let table = render_list(&[approval(WireStatus::Pending)], RecordFormat::Table);
        let mut lines = table.lines();
        assert!(lines.next().unwrap().starts_with("ID "), "{table}");
        let row = lines.next().unwrap();
        for cell in [
            "apr_abc",
            "pending",
            "agent",
            "acme",
            "files",
            "delete",
            "approve-deletes",
        ] {
            assert!(row.contains(cell), "{row}");
        }
        assert_eq!(
            render_list(&[], RecordFormat::Table),
            "no approval requests\n"
        );

        let value: serde_json::Value = serde_json::from_str(&render_list(
            &[approval(WireStatus::Pending)],
            RecordFormat::Json,
        ))
        .unwrap();
        assert_eq!(value[0]["status"], "pending");
        assert_eq!(value[0]["workspace"], "acme");
        assert_eq!(value[0]["arguments"]["token"], "[REDACTED]");
        assert_eq!(value[0]["approver"], serde_json::Value::Null);
        let yaml = render_list(&[approval(WireStatus::Pending)], RecordFormat::Yaml);
        assert!(yaml.contains("id: apr_abc"), "{yaml}");
    }

    #[test]
    fn decisions_say_how_to_retry() {
        let mut approved = approval(WireStatus::Approved);
        approved.approver = "sec-bob".into();
        approved.max_uses = 3;
        approved.uses = 1;
        let line = render_decision(&approved, RecordFormat::Table);
        assert!(
            line.starts_with("approval apr_abc approved by sec-bob"),
            "{line}"
        );
        assert!(line.contains("X-Conduit-Approval-Id: apr_abc"), "{line}");
        assert!(line.contains("for 3 calls"), "{line}");
        let rejected = render_decision(&approval(WireStatus::Rejected), RecordFormat::Table);
        assert_eq!(rejected, "approval apr_abc rejected by -\n");
        let value: serde_json::Value =
            serde_json::from_str(&render_decision(&approved, RecordFormat::Json)).unwrap();
        assert_eq!(value["approver"], "sec-bob");
        assert_eq!((&value["max_uses"], &value["uses"]), (&3.into(), &1.into()));
    }
}
