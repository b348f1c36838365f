//! What admission reads and refuses, driven the way the external review attacked it (issue
//! 12, findings 4, 7 and 8, and duplicate keys): completions for a denied prompt, methods
//! nobody admits, routing headers the body does not confirm, resource URIs that climb out
//! of an allowed prefix, and repeated keys inside tool arguments. Raw HTTP where the
//! attack was raw HTTP.

use std::time::Duration;

use anyhow::Context as _;
use conduit_e2e::http;
use conduit_e2e::mcp::{Exchange, McpClient};
use serde_json::{Value, json};

use super::policy_acl::{ACCESS_DENIED, PolicyGateway, error_of};

const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const HEADER_MISMATCH: i64 = -32020;
const TIMEOUT: Duration = Duration::from_secs(20);

/// `anonymous` may get the prompt `greeting` and read `test://template/*` on `fixture`,
/// nothing else.
const ACL: &str = "acl:
  default_action: deny
  policies:
    - name: narrow
      clients: [\"anonymous\"]
      allow:
        - server: fixture
          tools: [\"echo\", \"echo_headers\"]
          prompts: [\"greeting\"]
          resources: [\"test://template/*\"]
";

/// `completion/complete` of an argument of `reference`.
fn complete(client: &mut McpClient, reference: Value, argument: &str) -> anyhow::Result<Exchange> {
    client.exchange(
        "completion/complete",
        json!({"ref": reference, "argument": {"name": argument, "value": ""}}),
    )
}

fn values(exchange: &Exchange) -> anyhow::Result<Value> {
    let message = exchange.message.as_ref().context("no answer")?;
    Ok(message["result"]["completion"]["values"].clone())
}

#[test]
fn completions_are_admitted_as_their_prompt_or_resource_on_both_endpoints() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(ACL)?;
    let mut single = gateway.client("/mcp/fixture")?;
    let mut aggregate = gateway.client("/mcp")?;
    let denied_prompt = |name: &str| json!({"type": "ref/prompt", "name": name});

    // The review's request: completions of a prompt the caller may not get.
    let refused = complete(
        &mut single,
        denied_prompt("test_prompt_with_arguments"),
        "arg1",
    )?;
    let error = error_of(&refused)?;
    assert_eq!(error["code"], json!(ACCESS_DENIED), "{error}");
    assert_eq!(
        error["message"],
        "access denied: client 'anonymous' may not get prompt 'test_prompt_with_arguments' on server 'fixture'"
    );
    let id = &refused.message.as_ref().context("no answer")?["id"];
    assert!(id.is_u64(), "the refusal lost the request id: {id}");
    let refused = complete(
        &mut aggregate,
        denied_prompt("fixture.test_prompt_with_arguments"),
        "arg1",
    )?;
    let error = error_of(&refused)?;
    assert_eq!(error["code"], json!(ACCESS_DENIED), "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("may not get prompt 'test_prompt_with_arguments'"),
        "{error}"
    );
    // The same prompt on the other server of the aggregate: denied there too.
    let error = error_of(&complete(
        &mut aggregate,
        denied_prompt("twin.greeting"),
        "name",
    )?)?;
    assert_eq!(error["code"], json!(ACCESS_DENIED), "{error}");

    // An allowed prompt completes on both.
    let allowed = complete(&mut single, denied_prompt("greeting"), "name")?;
    assert_eq!(values(&allowed)?, json!(["Ada", "Alan", "Grace"]));
    let allowed = complete(&mut aggregate, denied_prompt("fixture.greeting"), "name")?;
    assert_eq!(values(&allowed)?, json!(["Ada", "Alan", "Grace"]));

    // A resource template completes as that resource: inside the allowed prefix it passes.
    let template = json!({"type": "ref/resource", "uri": "test://template/{id}/data"});
    let allowed = complete(&mut single, template.clone(), "id")?;
    assert_eq!(values(&allowed)?, json!(["1", "2", "3", "42"]));
    gateway.replace(&ACL.replace("test://template/*", "test://static-*"))?;
    for client in [&mut single, &mut aggregate] {
        let error = error_of(&complete(client, template.clone(), "id")?)?;
        assert_eq!(error["code"], json!(ACCESS_DENIED), "{error}");
    }
    let metrics = gateway.metrics()?;
    assert!(
        metrics.contains("conduit_acl_denials_total{kind=\"prompt\",server=\"fixture\"}"),
        "{metrics}"
    );
    Ok(())
}

/// A refusal case: what it shows, the headers sent, the body.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value);

/// POST `body` to `url` with `headers` besides the usual ones.
fn post(
    url: &str,
    session: Option<&str>,
    headers: &[(&str, &str)],
    body: &Value,
) -> anyhow::Result<http::Response> {
    let mut all = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    if let Some(session) = session {
        all.push(("Mcp-Session-Id", session));
    }
    all.extend_from_slice(headers);
    http::request(
        "POST",
        url,
        &all,
        Some(body.to_string().as_bytes()),
        TIMEOUT,
    )
}

/// The single JSON-RPC message of a response.
fn message(response: &http::Response) -> anyhow::Result<Value> {
    conduit_e2e::mcp::messages(response)?
        .into_iter()
        .next()
        .with_context(|| format!("HTTP {} without a message", response.status))
}

#[test]
fn unknown_methods_are_refused_and_their_notifications_dropped() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(ACL)?;
    for path in ["/mcp/fixture", "/mcp"] {
        let mut client = gateway.client(path)?;
        let url = gateway.dp.public_url(path);
        let request = json!({"jsonrpc": "2.0", "id": "x-9", "method": "admin/delete_everything", "params": {}});
        let response = post(&url, client.session_id(), &[], &request)?;
        let answer = message(&response)?;
        assert_eq!(response.status, 200, "{path}: {answer}");
        assert_eq!(answer["id"], json!("x-9"), "{path}: {answer}");
        assert_eq!(
            answer["error"]["code"],
            json!(METHOD_NOT_FOUND),
            "{path}: {answer}"
        );
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/x-vendor/wipe"});
        let response = post(&url, client.session_id(), &[], &notification)?;
        assert_eq!(response.status, 202, "{path}: {}", response.text());
        // Known methods still pass.
        assert!(!client.list_tools()?.is_empty(), "{path}");
    }
    let metrics = gateway.metrics()?;
    for kind in ["request", "notification"] {
        let series = format!("conduit_unknown_methods_total{{kind=\"{kind}\"}} 2");
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    Ok(())
}

#[test]
fn routing_headers_the_body_does_not_confirm_never_reach_the_upstream() -> anyhow::Result<()> {
    // No policy section: the check holds whether or not admission is on.
    let gateway = PolicyGateway::start("")?;
    let client = gateway.client("/mcp/fixture")?;
    let session = client.session_id();
    let url = gateway.dp.mcp_url("fixture");
    let call = |id: u64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": {}}})
    };

    // Confirmed headers travel: the fixture reports the headers it saw.
    let confirmed = [("Mcp-Method", "tools/call"), ("Mcp-Name", "echo_headers")];
    let answer = message(&post(&url, session, &confirmed, &call(1, "echo_headers"))?)?;
    let seen: Value = serde_json::from_str(
        answer["result"]["content"][0]["text"]
            .as_str()
            .with_context(|| answer.to_string())?,
    )?;
    assert_eq!(seen["mcp-name"], "echo_headers", "{seen}");
    assert_eq!(seen["mcp-method"], "tools/call", "{seen}");

    // What the review sent, and its variants: each refused before the upstream.
    let refusals: [Case<'_>; 6] = [
        (
            "a name the body does not have",
            vec![("Mcp-Name", "delete_everything")],
            call(2, "echo_headers"),
        ),
        (
            "a name where the body names nothing",
            vec![("Mcp-Name", "delete_everything")],
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        ),
        (
            "a name field missing from the body",
            vec![
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "delete_everything"),
            ],
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"arguments": {}}}),
        ),
        (
            "a repeated Mcp-Name",
            vec![
                ("Mcp-Name", "echo_headers"),
                ("Mcp-Name", "delete_everything"),
            ],
            call(5, "echo_headers"),
        ),
        (
            "a repeated Mcp-Method",
            vec![("Mcp-Method", "tools/call"), ("Mcp-Method", "tools/call")],
            call(6, "echo_headers"),
        ),
        (
            "another method",
            vec![("Mcp-Method", "admin/delete_everything")],
            call(7, "echo_headers"),
        ),
    ];
    for (case, headers, body) in refusals {
        let response = post(&url, session, &headers, &body)?;
        let answer = message(&response)?;
        assert_eq!(response.status, 400, "{case}: {answer}");
        assert_eq!(
            answer["error"]["code"],
            json!(HEADER_MISMATCH),
            "{case}: {answer}"
        );
        assert_eq!(answer["id"], body["id"], "{case}: {answer}");
    }
    let batch = json!([call(8, "echo_headers"), call(9, "echo")]);
    let response = post(&url, session, &[("Mcp-Method", "tools/call")], &batch)?;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(message(&response)?["error"]["code"], json!(HEADER_MISMATCH));
    Ok(())
}

#[test]
fn resource_uris_that_climb_out_of_an_allowed_prefix_are_refused() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(ACL)?;
    for path in ["/mcp/fixture", "/mcp"] {
        let mut client = gateway.client(path)?;
        let read = client.request("resources/read", json!({"uri": "test://template/42/data"}))?;
        assert!(read["contents"][0]["text"].is_string(), "{path}: {read}");
        for uri in [
            "test://template/../static-text",
            "test://template/%2F..%2Fstatic-text",
            "test://template/%2e%2e/static-text",
            "test://template/..%5Cstatic-text",
            "test://template/42/data%00",
        ] {
            let exchange = client.exchange("resources/read", json!({"uri": uri}))?;
            let error = error_of(&exchange)?;
            assert_eq!(exchange.response.status, 200, "{path} {uri}: {error}");
            assert_eq!(
                error["code"],
                json!(INVALID_PARAMS),
                "{path} {uri}: {error}"
            );
            let text = error["message"].as_str().unwrap_or_default();
            assert!(
                text.starts_with("resource URI refused: "),
                "{path} {uri}: {text}"
            );
            let subscribe = client.exchange("resources/subscribe", json!({"uri": uri}))?;
            assert_eq!(
                error_of(&subscribe)?["code"],
                json!(INVALID_PARAMS),
                "{path} {uri}"
            );
        }
        // Outside the prefix, spelled plainly: the ACL's ordinary denial.
        let exchange = client.exchange("resources/read", json!({"uri": "test://static-text"}))?;
        assert_eq!(error_of(&exchange)?["code"], json!(ACCESS_DENIED), "{path}");
    }
    Ok(())
}

#[test]
fn repeated_keys_inside_arguments_are_refused() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(ACL)?;
    let client = gateway.client("/mcp/fixture")?;
    let url = gateway.dp.mcp_url("fixture");
    // Raw bodies: a JSON library would not write a key twice.
    let bodies = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok","message":"rm -rf /"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok","meta":{"to":"alice","to":"mallory"}}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok","list":[{"a":1,"a":2}]}}}"#,
    ];
    for (n, body) in bodies.iter().enumerate() {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(session) = client.session_id() {
            headers.push(("Mcp-Session-Id", session));
        }
        let response = http::request("POST", &url, &headers, Some(body.as_bytes()), TIMEOUT)?;
        let answer = message(&response)?;
        assert_eq!(response.status, 400, "{body}: {answer}");
        assert_eq!(answer["id"], json!(n + 1), "{answer}");
        let text = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains("repeats a key"), "{body}: {text}");
    }
    Ok(())
}
