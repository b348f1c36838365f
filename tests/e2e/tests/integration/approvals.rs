//! The approval workflow across real processes: a guardrail `require_approval` rule holds a
//! call on one data plane (−32011 with a request id, at once), `conduitctl approvals list`
//! shows it, principals from `--admin-tokens-file` decide it (roles, governance role
//! bindings and the no-self-approval rule checked), and the client's retry carrying
//! `X-Conduit-Approval-Id` passes on the *other* data plane, which checks the grant set it
//! got over its config stream without asking the control plane. Callers authenticate with
//! API keys, so the grant is bound to a real client (another client's retry is refused).
//! `max_uses` and the bounds on approval requests are in `approval_limits`.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context as _, bail};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{ControlPlaneOptions, Ctl, DEFAULT_TIMEOUT, wait_until};
use serde_json::{Value, json};

use super::common::Fleet;

/// Principals of the control plane besides `admin`: an approver, a viewer, and one named
/// like the MCP client, to try self-approval.
pub(super) const PRINCIPALS: [(&str, &str, &str); 3] = [
    ("sec-bob", "operator", "bob-token"),
    ("vic", "viewer", "vic-token"),
    ("agent-1", "operator", "agent-admin-token"),
];
/// The MCP client's API key on the data planes (client `agent-1`, tenant `acme`).
pub(super) const AGENT_KEY: &str = "agent-1-api-key";
/// Another client of the same tenant.
const OTHER_KEY: &str = "agent-2-api-key";

pub(super) fn sha256_hex(text: &str) -> anyhow::Result<String> {
    // sha256sum, as an operator would compute the digest for the tokens file.
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .context("running sha256sum")?;
    let text = String::from_utf8(output.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_owned())
}

/// The config of these tests; `approvals` adds lines (4-space indented) to
/// `governance.approvals`.
pub(super) fn approvals_config(fixture_url: &str, approvals: &str) -> anyhow::Result<String> {
    Ok(format!(
        "servers:\n  - id: fixture\n    url: {fixture_url}\n    timeout_ms: 10000\n\
         auth:\n  method: api-key\n  api_keys:\n    - key: \"sha256:{}\"\n      \
         client_id: agent-1\n      tenant_id: acme\n    - key: \"sha256:{}\"\n      \
         client_id: agent-2\n      tenant_id: acme\n\
         guardrails:\n  default_action: allow\n  rules:\n    - name: hold-echo\n      \
         tools: [echo]\n      action: require_approval\n      message: echo needs an approval\n\
         governance:\n  approvals:\n    ttl_seconds: 600\n{approvals}  role_bindings:\n    \
         - workspace_id: acme\n      role: approver\n      clients: [sec-bob, agent-1]\n    \
         - workspace_id: acme\n      role: viewer\n      clients: [vic]\n",
        sha256_hex(AGENT_KEY)?,
        sha256_hex(OTHER_KEY)?
    ))
}

/// An MCP client of `agent-1` on `url`.
pub(super) fn agent(url: String) -> McpClient {
    McpClient::new(url).with_header("Authorization", &format!("Bearer {AGENT_KEY}"))
}

pub(super) fn call_echo(client: &mut McpClient, message: &str) -> anyhow::Result<Value> {
    let exchange = client.exchange(
        "tools/call",
        json!({"name": "echo", "arguments": {"message": message}}),
    )?;
    if exchange.response.status != 200 {
        bail!(
            "HTTP {}: {}",
            exchange.response.status,
            exchange.response.text()
        );
    }
    exchange.message.context("no JSON-RPC answer")
}

pub(super) fn approval_error(answer: &Value) -> anyhow::Result<&Value> {
    let error = answer
        .get("error")
        .with_context(|| format!("not an error: {answer}"))?;
    if error["code"] != json!(-32011) {
        bail!("expected -32011, got {error}");
    }
    Ok(error)
}

#[test]
fn a_held_call_is_approved_by_an_approver_and_retried_on_another_data_plane() -> anyhow::Result<()>
{
    let tokens_dir = tempfile::tempdir()?;
    let tokens_file = tokens_dir.path().join("principals.yaml");
    let mut entries = String::new();
    for (name, role, token) in PRINCIPALS {
        entries.push_str(&format!(
            "- name: {name}\n  role: {role}\n  token_sha256: {}\n",
            sha256_hex(token)?
        ));
    }
    std::fs::write(&tokens_file, entries)?;
    std::fs::set_permissions(&tokens_file, std::fs::Permissions::from_mode(0o600))?;
    let options = ControlPlaneOptions {
        args: vec![
            "--admin-tokens-file".into(),
            tokens_file.display().to_string(),
        ],
        ..ControlPlaneOptions::with_tokens()
    };
    let fleet = Fleet::start_with(2, options, |_, options| options)?;
    let config = fleet.cp.write_config(
        "approvals.yaml",
        &approvals_config(&fleet.fixture.mcp_url(), "")?,
    )?;
    fleet
        .cp
        .ctl()
        .run(["apply", "-f", &config.display().to_string(), "--wait=60s"])?
        .expect_code(0)?;
    let as_principal = |token: &str| Ctl::new(fleet.cp.url()).token(Some(token));
    let (bob, vic, agent_principal) = (
        as_principal("bob-token"),
        as_principal("vic-token"),
        as_principal("agent-admin-token"),
    );

    let mut on_dp1 = agent(fleet.dps[0].mcp_url("fixture"));
    on_dp1.initialize()?;
    let held = call_echo(&mut on_dp1, "deploy")?;
    let error = approval_error(&held)?;
    assert_eq!(error["message"], "echo needs an approval", "{held}");
    assert_eq!(error["data"]["status"], "pending", "{held}");
    assert_eq!(error["data"]["approval_header"], "X-Conduit-Approval-Id");
    assert!(error["data"]["expires_at"].as_str().is_some(), "{held}");
    let id = error["data"]["approval_request_id"]
        .as_str()
        .context("approval_request_id")?
        .to_owned();

    // The data plane reports the request over its config stream; a viewer may list it.
    let listed: Vec<Value> = wait_until(DEFAULT_TIMEOUT, "the request is listed", || {
        let listed: Vec<Value> = vic.run(["approvals", "list", "-o", "json"])?.json()?;
        if listed.iter().any(|a| a["id"] == json!(id)) {
            Ok(listed)
        } else {
            bail!("not listed yet: {listed:?}")
        }
    })?;
    let request = listed.iter().find(|a| a["id"] == json!(id)).unwrap();
    assert_eq!(request["status"], "pending", "{request}");
    assert_eq!(request["client_id"], "agent-1");
    assert_eq!(request["workspace"], "acme");
    assert_eq!(
        (&request["server"], &request["tool"]),
        (&json!("fixture"), &json!("echo"))
    );
    assert_eq!(request["rule"], "hold-echo");
    assert_eq!(request["arguments"], json!({"message": "deploy"}));
    let table = vic.run(["approvals", "list"])?;
    table.expect_code(0)?;
    assert!(table.stdout.contains(&id), "{table}");

    // A viewer may not decide; the requester may not approve its own call.
    let refused = vic.run(["approvals", "approve", &id])?;
    refused.expect_code(6)?;
    assert!(refused.stderr.contains("viewer"), "{refused}");
    let refused = agent_principal.run(["approvals", "approve", &id])?;
    refused.expect_code(6)?;
    assert!(refused.stderr.contains("allow_self_approval"), "{refused}");

    let approved = bob.run([
        "approvals",
        "approve",
        &id,
        "--note",
        "release day",
        "-o",
        "json",
    ])?;
    approved.expect_code(0)?;
    let approved: Value = approved.json()?;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approver"], "sec-bob");
    assert_eq!(approved["note"], "release day");

    // The retry passes on the other data plane once its grant set has the grant.
    let mut on_dp2 = agent(fleet.dps[1].mcp_url("fixture"));
    on_dp2.initialize()?;
    let mut retry = on_dp2.clone().with_header("X-Conduit-Approval-Id", &id);
    let answer = wait_until(DEFAULT_TIMEOUT, "the grant reaches dp-2", || {
        let answer = call_echo(&mut retry, "deploy")?;
        if answer.get("result").is_some() {
            Ok(answer)
        } else {
            bail!("not granted yet: {answer}")
        }
    })?;
    assert!(answer.to_string().contains("deploy"), "{answer}");
    // One use (the default max_uses): a second call with the id is held again ("used up"
    // here, or "invalid" once the control plane's set without the grant has arrived).
    approval_error(&call_echo(&mut retry, "deploy")?)?;

    // Another client presenting the id is refused: the grant is agent-1's.
    let mut other_client = McpClient::new(fleet.dps[1].mcp_url("fixture"))
        .with_header("Authorization", &format!("Bearer {OTHER_KEY}"));
    other_client.initialize()?;
    let mut borrowed = other_client.with_header("X-Conduit-Approval-Id", &id);
    approval_error(&call_echo(&mut borrowed, "deploy")?)?;

    // The same id does not cover other arguments either.
    let other = call_echo(&mut retry, "rm -rf /")?;
    let error = approval_error(&other)?;
    assert_eq!(
        error["message"],
        "approval is invalid, expired, or does not match this request"
    );
    assert_eq!(
        error["data"],
        json!({"approval_header": "X-Conduit-Approval-Id"})
    );

    // A rejected request's id is refused.
    let second = call_echo(&mut on_dp2, "shutdown")?;
    let second_id = approval_error(&second)?["data"]["approval_request_id"]
        .as_str()
        .context("second id")?
        .to_owned();
    wait_until(DEFAULT_TIMEOUT, "the second request is listed", || {
        let listed: Vec<Value> = bob
            .run(["approvals", "list", "--status", "pending", "-o", "json"])?
            .json()?;
        if listed.iter().any(|a| a["id"] == json!(second_id)) {
            Ok(())
        } else {
            bail!("not listed yet")
        }
    })?;
    let rejected = bob.run(["approvals", "reject", &second_id, "--note", "no"])?;
    rejected.expect_code(0)?;
    assert!(
        rejected.stdout.contains("rejected by sec-bob"),
        "{rejected}"
    );
    let mut retry_rejected = on_dp2
        .clone()
        .with_header("X-Conduit-Approval-Id", &second_id);
    approval_error(&call_echo(&mut retry_rejected, "shutdown")?)?;
    // Deciding it again: not pending any more (a server error, exit 7).
    bob.run(["approvals", "approve", &second_id])?
        .expect_code(7)?;

    let all: Vec<Value> = vic
        .run(["approvals", "list", "--status", "all", "-o", "json"])?
        .json()?;
    let status = |id: &str| {
        all.iter()
            .find(|a| a["id"] == json!(id))
            .map(|a| a["status"].clone())
    };
    assert_eq!(status(&id), Some(json!("approved")));
    let granted = all.iter().find(|a| a["id"] == json!(id)).unwrap();
    assert_eq!(
        (&granted["max_uses"], &granted["uses"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(status(&second_id), Some(json!("rejected")));
    Ok(())
}
