//! Guardrail webhooks (reference §8.1 "Guardrails", §2.13): a rule with a `webhook` that
//! blocks or alerts makes the data plane `POST` a JSON event (rule, caller, server, tool,
//! redacted arguments, trace id) to it, without holding the call. Loopback and private
//! addresses are refused unless `guardrails.webhook_allow_private_networks` is set.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context as _, ensure};
use conduit_e2e::{DEFAULT_TIMEOUT, wait_until};
use serde_json::{Value, json};

use super::policy_acl::{PolicyGateway, call, error_of};

/// A tiny HTTP server on 127.0.0.1 that records the JSON body of every request and answers
/// `204 No Content`.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bodies, stop) = (Arc::clone(&bodies), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    match read_body(stream) {
                        Ok(body) => bodies.lock().expect("not poisoned").push(body),
                        Err(error) => eprintln!("webhook receiver: {error:#}"),
                    }
                }
            })
        };
        Ok(Receiver {
            port,
            bodies,
            stop,
            thread: Some(thread),
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("not poisoned").clone()
    }

    /// Wait until `count` bodies have arrived.
    fn wait_for(&self, count: usize) -> anyhow::Result<Vec<Value>> {
        wait_until(DEFAULT_TIMEOUT, "webhook deliveries", || {
            let got = self.bodies().len();
            ensure!(got >= count, "{got} of {count} events so far");
            Ok(())
        })?;
        Ok(self.bodies())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read one HTTP/1.1 request with a `Content-Length` body, answer 204, return the body.
fn read_body(stream: TcpStream) -> anyhow::Result<Value> {
    stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    ensure!(
        request_line.starts_with("POST /hook "),
        "unexpected request {request_line:?}"
    );
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("Content-Length")?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    serde_json::from_slice(&body).context("webhook body is JSON")
}

/// A block rule on `sleep` and an alert rule on `echo`, both with `url` as webhook.
fn rules(url: &str, allow_private: bool) -> String {
    let flag = if allow_private {
        "  webhook_allow_private_networks: true\n"
    } else {
        ""
    };
    format!(
        "guardrails:
  default_action: allow
{flag}  rules:
    - name: no-sleeping
      tools: [\"sleep\"]
      action: block
      severity: high
      webhook: {url}
    - name: watch-echo
      tools: [\"echo\"]
      action: alert
      message: echo is watched
      webhook: {url}
"
    )
}

/// `sleep` with secrets at the top level and nested.
fn secret_arguments() -> Value {
    json!({
        "ms": 1,
        "password": "plain-password-value",
        "config": {"api_key": "plain-api-key-value", "region": "eu"},
    })
}

fn deliveries(gateway: &PolicyGateway, outcome: &str) -> anyhow::Result<u64> {
    let metrics = gateway.metrics()?;
    let prefix = format!("conduit_webhook_deliveries_total{{outcome=\"{outcome}\"}} ");
    Ok(metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse::<f64>().unwrap_or_default() as u64)
        .unwrap_or_default())
}

#[test]
fn block_and_alert_events_carry_the_call_with_redacted_arguments_and_the_trace_id()
-> anyhow::Result<()> {
    let receiver = Receiver::start()?;
    let gateway = PolicyGateway::start(&rules(&receiver.url(), true))?;
    let mut client = gateway.client("/mcp/fixture")?;

    let exchange = call(&mut client, "sleep", secret_arguments())?;
    let error = error_of(&exchange)?;
    assert_eq!(error["data"]["rule"], json!("no-sleeping"), "{error}");
    let trace = exchange
        .response
        .header("x-conduit-trace-id")
        .context("the blocked answer carries the trace id")?
        .to_owned();

    let bodies = receiver.wait_for(1)?;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event = &bodies[0];
    assert_eq!(event["event"], json!("guardrail_block"), "{event}");
    assert_eq!(event["rule"], json!("no-sleeping"));
    assert_eq!(event["severity"], json!("high"));
    assert_eq!(event["client_id"], json!("anonymous"));
    assert_eq!(event["server_id"], json!("fixture"));
    assert_eq!(event["tool"], json!("sleep"));
    assert_eq!(event["trace_id"], json!(trace));
    assert_eq!(
        event["arguments"],
        json!({
            "ms": 1,
            "password": "[REDACTED]",
            "config": {"api_key": "[REDACTED]", "region": "eu"},
        })
    );
    let text = event.to_string();
    for secret in ["plain-password-value", "plain-api-key-value"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }

    // An alert lets the call through and reports it.
    let exchange = call(&mut client, "echo", json!({"message": "watch me"}))?;
    let message = exchange.message.clone().unwrap_or_default();
    assert_eq!(
        message["result"]["content"][0]["text"],
        json!("watch me"),
        "{message}"
    );
    let bodies = receiver.wait_for(2)?;
    let alert = bodies
        .iter()
        .find(|event| event["event"] == json!("guardrail_alert"))
        .with_context(|| format!("no alert in {bodies:?}"))?;
    assert_eq!(alert["rule"], json!("watch-echo"));
    assert_eq!(alert["tool"], json!("echo"));
    assert_eq!(alert["message"], json!("echo is watched"));
    assert_eq!(alert["arguments"], json!({"message": "watch me"}));
    wait_until(DEFAULT_TIMEOUT, "two counted deliveries", || {
        let delivered = deliveries(&gateway, "delivered")?;
        ensure!(delivered == 2, "delivered = {delivered}");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn loopback_webhooks_are_refused_unless_private_networks_are_allowed() -> anyhow::Result<()> {
    let receiver = Receiver::start()?;
    let gateway = PolicyGateway::start(&rules(&receiver.url(), false))?;
    let mut client = gateway.client("/mcp/fixture")?;
    assert_eq!(deliveries(&gateway, "refused_address")?, 0);

    let exchange = call(&mut client, "sleep", secret_arguments())?;
    assert_eq!(error_of(&exchange)?["data"]["rule"], json!("no-sleeping"));
    wait_until(
        DEFAULT_TIMEOUT,
        "the refused delivery to be counted",
        || {
            let refused = deliveries(&gateway, "refused_address")?;
            ensure!(refused == 1, "refused_address = {refused}");
            Ok(())
        },
    )?;
    // The delivery was decided (refused) before any connection: nothing arrived.
    assert_eq!(receiver.bodies(), Vec::<Value>::new());
    assert_eq!(deliveries(&gateway, "delivered")?, 0);
    Ok(())
}
