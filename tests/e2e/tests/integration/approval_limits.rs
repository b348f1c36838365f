//! Limits of the approval workflow across real processes: a grant lets exactly `max_uses`
//! calls through (default 1; `conduitctl approvals approve --max-uses N`), counted across
//! two data planes that report their uses over the config stream; and a client that floods
//! approval requests is refused past `governance.approvals.requests_per_minute` on each
//! data plane (−32029, the request's id kept, no request made), while the control plane
//! stores at most `max_pending_per_client` pending requests of it fleet-wide.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{ControlPlaneOptions, Ctl, DEFAULT_TIMEOUT, DataPlane, http, wait_until};
use serde_json::{Value, json};

use super::approvals::{
    PRINCIPALS, agent, approval_error, approvals_config, call_echo, sha256_hex,
};
use super::common::Fleet;

/// Two data planes and a control plane with the approval principals, serving the approvals
/// config with `approvals` added to `governance.approvals`.
struct Setup {
    fleet: Fleet,
    /// The approver `sec-bob`.
    bob: Ctl,
    _tokens: tempfile::TempDir,
}

impl Setup {
    fn start(approvals: &str) -> anyhow::Result<Setup> {
        let tokens = tempfile::tempdir()?;
        let tokens_file = tokens.path().join("principals.yaml");
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
            &approvals_config(&fleet.fixture.mcp_url(), approvals)?,
        )?;
        fleet
            .cp
            .ctl()
            .run(["apply", "-f", &config.display().to_string(), "--wait=60s"])?
            .expect_code(0)?;
        let bob = Ctl::new(fleet.cp.url()).token(Some("bob-token"));
        Ok(Setup {
            fleet,
            bob,
            _tokens: tokens,
        })
    }

    /// `agent-1` on data plane `index`, initialized.
    fn agent(&self, index: usize) -> anyhow::Result<McpClient> {
        let mut client = agent(self.fleet.dps[index].mcp_url("fixture"));
        client.initialize()?;
        Ok(client)
    }

    /// Hold `echo(message)` on `client`, wait until the control plane lists the request,
    /// and approve it as `sec-bob` with `extra` arguments; returns the id.
    fn held_and_approved(
        &self,
        client: &mut McpClient,
        message: &str,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let held = call_echo(client, message)?;
        let id = approval_error(&held)?["data"]["approval_request_id"]
            .as_str()
            .with_context(|| format!("no request id: {held}"))?
            .to_owned();
        wait_until(DEFAULT_TIMEOUT, "the request is listed", || {
            if self.approval(&id)?.is_some() {
                Ok(())
            } else {
                bail!("{id} not listed yet")
            }
        })?;
        let mut args = vec!["approvals", "approve", &id, "-o", "json"];
        args.extend_from_slice(extra);
        let approved = self.bob.run(args)?;
        approved.expect_code(0)?;
        let approved: Value = approved.json()?;
        ensure!(approved["status"] == "approved", "{approved}");
        Ok(id)
    }

    /// The request `id` as `conduitctl approvals list --status all -o json` shows it.
    fn approval(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let all: Vec<Value> = self
            .bob
            .run(["approvals", "list", "--status", "all", "-o", "json"])?
            .json()?;
        Ok(all.into_iter().find(|a| a["id"] == json!(id)))
    }

    /// Wait until the control plane has counted `uses` uses of `id`.
    fn wait_counted(&self, id: &str, uses: u64) -> anyhow::Result<Value> {
        wait_until(DEFAULT_TIMEOUT, "the control plane counts the uses", || {
            let approval = self.approval(id)?.context("not listed")?;
            if approval["uses"] == json!(uses) {
                Ok(approval)
            } else {
                bail!("not counted yet: {approval}")
            }
        })
    }
}

/// The value of the unlabelled metric `name` on a data plane's admin port.
fn metric(dp: &DataPlane, name: &str) -> anyhow::Result<i64> {
    let text = dp.admin_get("/metrics")?.text();
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .with_context(|| format!("{name} is not exported"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse::<f64>()? as i64)
}

/// Wait until `dp`'s metric `name` is `value`.
fn wait_metric(dp: &DataPlane, name: &str, value: i64) -> anyhow::Result<()> {
    wait_until(DEFAULT_TIMEOUT, name, || {
        let seen = metric(dp, name)?;
        ensure!(
            seen == value,
            "{name} on {} is {seen}, not {value}",
            dp.node_id()
        );
        Ok(())
    })
}

/// Call `echo(message)` until the grant has reached the data plane and lets it through
/// (calls before that are refused as invalid and use nothing).
fn first_use(client: &mut McpClient, message: &str) -> anyhow::Result<()> {
    wait_until(DEFAULT_TIMEOUT, "the grant reaches the data plane", || {
        let answer = call_echo(client, message)?;
        answer
            .get("result")
            .map(|_| ())
            .with_context(|| format!("not granted yet: {answer}"))
    })
}

/// The call was held again: "used up" while the data plane still holds the grant, "invalid"
/// once the control plane's set without it has arrived.
fn held_again(answer: &Value) -> anyhow::Result<()> {
    let message = approval_error(answer)?["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        message.starts_with("approval is used up")
            || message == "approval is invalid, expired, or does not match this request",
        "{answer}"
    );
    Ok(())
}

fn granted(answer: &Value) -> anyhow::Result<()> {
    ensure!(
        answer.get("result").is_some() && answer.to_string().contains("deploy"),
        "expected the call to pass: {answer}"
    );
    Ok(())
}

#[test]
fn a_grant_lets_exactly_max_uses_calls_through_across_two_data_planes() -> anyhow::Result<()> {
    let setup = Setup::start("")?;
    let (dp1, dp2) = (&setup.fleet.dps[0], &setup.fleet.dps[1]);
    let mut on_dp1 = setup.agent(0)?;
    let on_dp2 = setup.agent(1)?;

    // The default: one call.
    let once = setup.held_and_approved(&mut on_dp1, "deploy once", &[])?;
    let mut once_dp1 = on_dp1.clone().with_header("X-Conduit-Approval-Id", &once);
    first_use(&mut once_dp1, "deploy once")?;
    held_again(&call_echo(&mut once_dp1, "deploy once")?)?;
    // The control plane counted the use and dropped the grant from every data plane's set.
    let counted = setup.wait_counted(&once, 1)?;
    assert_eq!(counted["max_uses"], 1, "{counted}");
    wait_metric(dp2, "conduit_dp_approval_grants", 0)?;
    let mut once_dp2 = on_dp2.clone().with_header("X-Conduit-Approval-Id", &once);
    held_again(&call_echo(&mut once_dp2, "deploy once")?)?;

    // --max-uses 3: two calls on dp-1, the third on dp-2 once it has dp-1's count, then no
    // more on either.
    let thrice = setup.held_and_approved(&mut on_dp1, "deploy thrice", &["--max-uses", "3"])?;
    let mut thrice_dp1 = on_dp1.clone().with_header("X-Conduit-Approval-Id", &thrice);
    let mut thrice_dp2 = on_dp2.clone().with_header("X-Conduit-Approval-Id", &thrice);
    first_use(&mut thrice_dp1, "deploy thrice")?;
    granted(&call_echo(&mut thrice_dp1, "deploy thrice")?)?;
    setup.wait_counted(&thrice, 2)?;
    wait_metric(dp2, "conduit_dp_approval_grant_uses", 2)?;
    granted(&call_echo(&mut thrice_dp2, "deploy thrice")?)?;
    held_again(&call_echo(&mut thrice_dp2, "deploy thrice")?)?;
    let counted = setup.wait_counted(&thrice, 3)?;
    assert_eq!(counted["max_uses"], 3, "{counted}");
    // dp-1 could still allow its own share until the control plane's set reaches it (the
    // documented bound); once it has, the id is refused there as well.
    wait_metric(dp1, "conduit_dp_approval_grants", 0)?;
    held_again(&call_echo(&mut thrice_dp1, "deploy thrice")?)?;
    assert_eq!(setup.approval(&thrice)?.context("listed")?["uses"], 3);
    Ok(())
}

#[test]
fn a_client_flooding_approval_requests_is_refused_past_the_limits() -> anyhow::Result<()> {
    let setup = Setup::start("    requests_per_minute: 3\n    max_pending_per_client: 4\n")?;
    let mut on_dp1 = setup.agent(0)?;

    let mut pending = Vec::new();
    for n in 0..10 {
        let exchange = on_dp1.exchange(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": format!("flood {n}")}}),
        )?;
        assert_eq!(exchange.response.status, 200);
        // The answer carries the request's id (the client matched it).
        let answer = exchange.message.context("no JSON-RPC answer with the id")?;
        let error = &answer["error"];
        if n < 3 {
            assert_eq!(error["code"], -32011, "{answer}");
            pending.push((
                n,
                error["data"]["approval_request_id"]
                    .as_str()
                    .context("id")?
                    .to_owned(),
            ));
            continue;
        }
        assert_eq!(error["code"], -32029, "{answer}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("too many approval requests from this client")),
            "{answer}"
        );
        assert_eq!(error["data"]["bucket"], "approval_requests", "{answer}");
        assert!(error["data"].get("approval_request_id").is_none());
        let retry_after: u64 = exchange
            .response
            .header("retry-after")
            .context("Retry-After")?
            .parse()?;
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }

    // Another client of the same tenant is not affected.
    let mut other = McpClient::new(setup.fleet.dps[0].mcp_url("fixture"))
        .with_header("Authorization", "Bearer agent-2-api-key");
    other.initialize()?;
    assert_eq!(
        approval_error(&call_echo(&mut other, "other")?)?["data"]["status"],
        "pending"
    );

    // The same client on dp-2 has a bucket there, but the control plane stores at most
    // four pending requests of it fleet-wide.
    let mut on_dp2 = setup.agent(1)?;
    for n in 0..3 {
        approval_error(&call_echo(&mut on_dp2, &format!("second wave {n}"))?)?;
    }
    let cp_metrics = || -> anyhow::Result<String> {
        Ok(http::get(&setup.fleet.cp.http_url("/metrics"), DEFAULT_TIMEOUT)?.text())
    };
    wait_until(
        DEFAULT_TIMEOUT,
        "the control plane decides on every request",
        || {
            let text = cp_metrics()?;
            for expected in [
                "conduit_cp_approval_requests_total{outcome=\"inserted\"} 5",
                "conduit_cp_approval_requests_total{outcome=\"client_full\"} 2",
            ] {
                ensure!(text.contains(expected), "no {expected} yet");
            }
            Ok(())
        },
    )?;
    let listed: Vec<Value> = setup
        .bob
        .run(["approvals", "list", "--status", "pending", "-o", "json"])?
        .json()?;
    let of_agent = listed
        .iter()
        .filter(|a| a["client_id"] == "agent-1")
        .count();
    assert_eq!(of_agent, 4, "{listed:?}");

    // A refused flood does not touch grants: a retry with an approved id passes although
    // the client's bucket on dp-1 is empty. (At least one of dp-1's three requests is
    // stored: only three came from dp-2.)
    let (n, id) = pending
        .iter()
        .find(|(_, id)| listed.iter().any(|a| a["id"] == json!(id)))
        .context("a request of dp-1 is stored")?;
    setup
        .bob
        .run(["approvals", "approve", id.as_str()])?
        .expect_code(0)?;
    let mut retry = on_dp1.with_header("X-Conduit-Approval-Id", id);
    first_use(&mut retry, &format!("flood {n}"))?;
    Ok(())
}
