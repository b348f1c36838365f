//! OpenTelemetry traces: a data plane exporting to an OTLP/HTTP receiver in the test. The
//! request span continues the caller's `traceparent`; auth, policy and upstream spans are
//! its children; the upstream hears the upstream span as its parent. Sampling follows a
//! sampled caller and otherwise the configured rate (0 here: nothing else is exported), and
//! a new configuration turns export off and on again without a restart.

use anyhow::{Context as _, anyhow, bail, ensure};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::otlp::{
    KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, OtlpReceiver, ReceivedSpan, STATUS_ERROR,
};
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use serde_json::{Value, json};

const PARENT_SPAN: &str = "00f067aa0ba902b7";
const SAMPLED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const UNSAMPLED_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4737";
const DENIED_TRACE: &str = "6df92f3577b34da6a3ce929d0e0e4738";
const WHILE_OFF_TRACE: &str = "7ef92f3577b34da6a3ce929d0e0e4739";
const AGGREGATE_TRACE: &str = "8ff92f3577b34da6a3ce929d0e0e473a";
const LAST_TRACE: &str = "9af92f3577b34da6a3ce929d0e0e473b";
const KEY: &str = "key-agent-secret";

/// The fixture behind api-key auth and an ACL allowing only `echo_headers`, with
/// `opentelemetry` as given (YAML lines under `observability:`).
fn config(fixture_url: &str, opentelemetry: &str) -> String {
    format!(
        "servers:
  - id: fixture
    url: {fixture_url}
    timeout_ms: 10000
auth:
  method: api-key
  api_keys:
    - key: {KEY}
      client_id: agent
      tenant_id: acme
acl:
  default_action: deny
  policies:
    - name: agents
      clients: [\"agent\"]
      allow:
        - server: fixture
          tools: [\"echo_headers\"]
observability:
  opentelemetry:
{opentelemetry}"
    )
}

fn client(dp: &DataPlane, key: &str, traceparent: Option<&str>) -> McpClient {
    let client = McpClient::new(dp.mcp_url("fixture"))
        .with_header("Authorization", &format!("Bearer {key}"));
    match traceparent {
        Some(traceparent) => client.with_header("traceparent", traceparent),
        None => client,
    }
}

/// `echo_headers` through the gateway: the trace id it answered with and the
/// `traceparent` the upstream received.
fn echo_headers(client: &mut McpClient) -> anyhow::Result<(String, String)> {
    let exchange = client.exchange(
        "tools/call",
        json!({ "name": "echo_headers", "arguments": {} }),
    )?;
    let trace_id = exchange
        .response
        .header("x-conduit-trace-id")
        .context("no X-Conduit-Trace-Id")?
        .to_owned();
    let message = exchange.message.context("no JSON-RPC reply")?;
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .ok_or_else(|| anyhow!("echo_headers returned {message}"))?;
    let seen: Value = serde_json::from_str(text)?;
    let traceparent = seen["traceparent"]
        .as_str()
        .context("no traceparent upstream")?;
    Ok((trace_id, traceparent.to_owned()))
}

/// The request span of the `tools/call` of `tool` in `trace`, once it and its children
/// `children` have all arrived.
fn call_spans(
    receiver: &OtlpReceiver,
    trace: &str,
    tool: &str,
    children: &[&str],
) -> anyhow::Result<(ReceivedSpan, Vec<ReceivedSpan>)> {
    wait_until(
        DEFAULT_TIMEOUT,
        &format!("the spans of {tool} in {trace}"),
        || {
            let spans = receiver.trace(trace);
            let request = spans
                .iter()
                .find(|span| {
                    span.name == "mcp.request" && span.attribute("gen_ai.tool.name") == Some(tool)
                })
                .with_context(|| {
                    let all = receiver.spans().len();
                    format!("no request span among {spans:#?} ({all} spans received in all)")
                })?
                .clone();
            let own: Vec<ReceivedSpan> = spans
                .into_iter()
                .filter(|span| span.parent_span_id == request.span_id)
                .collect();
            let mut names: Vec<&str> = own.iter().map(|span| span.name.as_str()).collect();
            names.sort_unstable();
            if names != children {
                bail!("children so far: {names:?}");
            }
            Ok((request, own))
        },
    )
}

fn child<'a>(children: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    children
        .iter()
        .find(|span| span.name == name)
        .expect("the children were checked by name")
}

/// Write `text` over the data plane's config file (atomically) and wait until it serves it.
fn replace_config(dp: &DataPlane, path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let before = dp.config_dump()?["hash"].clone();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    wait_until(DEFAULT_TIMEOUT, "the new config to be applied", || {
        let hash = dp.config_dump()?["hash"].clone();
        ensure!(hash != before, "still on the previous config");
        Ok(())
    })
}

#[test]
fn request_spans_follow_the_callers_trace_and_parent_the_upstream() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start()?;
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    let enabled = format!(
        "    endpoint: {}\n    service_name: conduit-e2e\n    sample_rate: 0\n",
        receiver.url()
    );
    std::fs::write(&path, config(&fixture.mcp_url(), &enabled))?;
    let mut dp = DataPlane::start(DataPlaneOptions {
        node_id: "traced".into(),
        config_file: Some(path.clone()),
        wait_ready: true,
        ..DataPlaneOptions::default()
    })?;

    // Rate 0: a request without a traceparent, or with an unsampled one, is not exported,
    // and the upstream is told so.
    let mut plain = client(&dp, KEY, None);
    plain.initialize()?;
    let (unsampled_own, upstream) = echo_headers(&mut plain)?;
    ensure!(upstream.ends_with("-00"), "{upstream}");
    ensure!(upstream.contains(&unsampled_own), "{upstream}");
    let mut unsampled = client(
        &dp,
        KEY,
        Some(&format!("00-{UNSAMPLED_TRACE}-{PARENT_SPAN}-00")),
    );
    unsampled.initialize()?;
    let (_, upstream) = echo_headers(&mut unsampled)?;
    ensure!(upstream.ends_with("-00"), "{upstream}");

    // A sampled caller is followed.
    let mut sampled = client(
        &dp,
        KEY,
        Some(&format!("00-{SAMPLED_TRACE}-{PARENT_SPAN}-01")),
    );
    sampled.initialize()?;
    let (answered, upstream) = echo_headers(&mut sampled)?;
    assert_eq!(answered, SAMPLED_TRACE);
    let (request, children) = call_spans(
        &receiver,
        SAMPLED_TRACE,
        "echo_headers",
        &["auth", "policy", "upstream"],
    )?;
    assert_eq!(request.kind, KIND_SERVER);
    assert_eq!(request.parent_span_id, PARENT_SPAN);
    assert_ne!(request.status_code, STATUS_ERROR, "{request:#?}");
    for (name, value) in [
        ("http.request.method", "POST"),
        ("http.response.status_code", "200"),
        ("conduit.server.id", "fixture"),
        ("mcp.method.name", "tools/call"),
        ("conduit.client.id", "agent"),
    ] {
        assert_eq!(request.attribute(name), Some(value), "{name}: {request:#?}");
    }
    assert_eq!(
        request.resource.get("service.name").map(String::as_str),
        Some("conduit-e2e")
    );
    assert_eq!(
        request
            .resource
            .get("service.instance.id")
            .map(String::as_str),
        Some("traced")
    );
    assert!(request.resource.contains_key("service.version"));
    assert_eq!(child(&children, "auth").kind, KIND_INTERNAL);
    assert_eq!(child(&children, "policy").kind, KIND_INTERNAL);
    let call = child(&children, "upstream");
    assert_eq!(call.kind, KIND_CLIENT);
    assert_eq!(call.attribute("conduit.server.id"), Some("fixture"));
    // The upstream's spans will be children of the gateway's upstream span.
    assert_eq!(
        upstream,
        format!("00-{SAMPLED_TRACE}-{}-01", call.span_id),
        "{call:#?}"
    );

    // Through the aggregate endpoint too, the member hears its upstream span as the parent.
    let mut aggregate = McpClient::new(dp.public_url("/mcp"))
        .with_header("Authorization", &format!("Bearer {KEY}"))
        .with_header(
            "traceparent",
            &format!("00-{AGGREGATE_TRACE}-{PARENT_SPAN}-01"),
        );
    aggregate.initialize()?;
    let seen: Value =
        serde_json::from_str(&aggregate.call_tool_text("fixture.echo_headers", json!({}))?)?;
    let heard = seen["traceparent"].as_str().context("no traceparent")?;
    let parent = heard
        .strip_prefix(&format!("00-{AGGREGATE_TRACE}-"))
        .and_then(|rest| rest.strip_suffix("-01"))
        .with_context(|| format!("unexpected traceparent {heard}"))?;
    wait_until(DEFAULT_TIMEOUT, "the aggregate call's spans", || {
        let spans = receiver.trace(AGGREGATE_TRACE);
        let call = spans
            .iter()
            .find(|span| span.span_id == parent)
            .context("the upstream span is not exported yet")?;
        ensure!(
            call.name == "upstream" && call.kind == KIND_CLIENT,
            "{call:#?}"
        );
        let request = spans
            .iter()
            .find(|span| span.span_id == call.parent_span_id)
            .context("no parent of the upstream span yet")?;
        ensure!(request.name == "mcp.request", "{request:#?}");
        ensure!(request.parent_span_id == PARENT_SPAN, "{request:#?}");
        ensure!(
            spans
                .iter()
                .any(|span| span.name == "policy" && span.parent_span_id == request.span_id),
            "no policy span under {request:#?}"
        );
        Ok(())
    })?;

    // Refusals are errors on the phase's span and on the request span.
    let mut denied = client(
        &dp,
        KEY,
        Some(&format!("00-{DENIED_TRACE}-{PARENT_SPAN}-01")),
    );
    denied.initialize()?;
    let refused = denied.exchange("tools/call", json!({"name": "echo", "arguments": {}}))?;
    let message = refused.message.context("no reply to the denied call")?;
    ensure!(message.get("error").is_some(), "{message}");
    let (request, children) = call_spans(&receiver, DENIED_TRACE, "echo", &["auth", "policy"])?;
    assert_eq!(request.status_code, STATUS_ERROR, "{request:#?}");
    assert_eq!(child(&children, "policy").status_code, STATUS_ERROR);
    let mut stranger = client(
        &dp,
        "wrong-key",
        Some(&format!("00-{DENIED_TRACE}-{PARENT_SPAN}-01")),
    );
    ensure!(stranger.initialize().is_err(), "a wrong key was accepted");
    wait_until(DEFAULT_TIMEOUT, "the failed authentication's spans", || {
        let spans = receiver.trace(DENIED_TRACE);
        let request = spans
            .iter()
            .find(|span| span.attribute("http.response.status_code") == Some("401"))
            .context("no 401 request span yet")?;
        ensure!(request.status_code == STATUS_ERROR, "{request:#?}");
        let auth = spans
            .iter()
            .find(|span| span.parent_span_id == request.span_id && span.name == "auth")
            .context("no auth span yet")?;
        ensure!(auth.status_code == STATUS_ERROR, "{auth:#?}");
        Ok(())
    })?;

    // The spans queue in order: the unsampled requests, served before, would be here.
    for trace in [unsampled_own.as_str(), UNSAMPLED_TRACE] {
        assert_eq!(receiver.trace(trace), Vec::new(), "{trace} was exported");
    }
    // No credential and no argument reaches the collector.
    let everything = format!("{:?}", receiver.spans());
    assert!(!everything.contains(KEY));
    assert!(!everything.contains("wrong-key"));

    // Turned off by a new config (no restart): the traceparent is the gateway's own again.
    replace_config(
        &dp,
        &path,
        &config(&fixture.mcp_url(), "    enabled: false\n"),
    )?;
    let mut off = client(
        &dp,
        KEY,
        Some(&format!("00-{WHILE_OFF_TRACE}-{PARENT_SPAN}-01")),
    );
    off.initialize()?;
    let (_, upstream) = echo_headers(&mut off)?;
    ensure!(
        upstream.starts_with(&format!("00-{WHILE_OFF_TRACE}-")) && upstream.ends_with("-01"),
        "{upstream}"
    );

    // On again, every trace sampled, under another name.
    let everything = format!(
        "    endpoint: {}\n    service_name: conduit-again\n    sample_rate: 1\n",
        receiver.url()
    );
    replace_config(&dp, &path, &config(&fixture.mcp_url(), &everything))?;
    let mut again = client(&dp, KEY, None);
    again.initialize()?;
    let (own, upstream) = echo_headers(&mut again)?;
    ensure!(upstream.ends_with("-01"), "{upstream}");
    let (request, _) = call_spans(
        &receiver,
        &own,
        "echo_headers",
        &["auth", "policy", "upstream"],
    )?;
    assert_eq!(request.parent_span_id, "");
    assert_eq!(
        request.resource.get("service.name").map(String::as_str),
        Some("conduit-again")
    );
    assert_eq!(receiver.trace(WHILE_OFF_TRACE), Vec::new());

    // Spans still queued when the process stops are exported before it exits.
    let mut last = client(&dp, KEY, Some(&format!("00-{LAST_TRACE}-{PARENT_SPAN}-01")));
    last.initialize()?;
    echo_headers(&mut last)?;
    let status = dp
        .terminate(std::time::Duration::from_secs(10))
        .context("the data plane did not stop on SIGTERM")?;
    ensure!(status.success(), "{status}");
    ensure!(
        receiver
            .trace(LAST_TRACE)
            .iter()
            .any(|span| span.attribute("gen_ai.tool.name") == Some("echo_headers")),
        "the last request's span was not flushed at shutdown"
    );
    Ok(())
}
