//! Authentication on the public MCP port, against a standalone data plane in front of the
//! fixture: API keys in both headers (plain and hashed), JWTs verified with a key set the
//! test serves over HTTP (rotation picked up through the unknown-`kid` refetch), 401s with
//! the Bearer challenge on every method and endpoint (decided on the headers, so without
//! the request id of a body never read), failures counted
//! by reason on the admin `/metrics`, and a key removed by a config change refused on the
//! next request.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use conduit_e2e::http::{self, Response};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);
/// SHA-256 of `alice-key`.
const ALICE_KEY_SHA256: &str = "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20";

fn api_key_config(fixture: &Fixture, with_ci: bool) -> String {
    let ci = if with_ci {
        "    - key: ci-key\n      client_id: ci\n      tenant_id: platform\n"
    } else {
        ""
    };
    format!(
        "servers:\n  - id: fixture\n    url: {}\n    timeout_ms: 10000\nauth:\n  method: api-key\n  api_keys:\n{ci}    - key: sha256:{ALICE_KEY_SHA256}\n      client_id: alice\n",
        fixture.mcp_url()
    )
}

fn standalone(path: &Path) -> anyhow::Result<DataPlane> {
    DataPlane::start(DataPlaneOptions {
        node_id: "auth".into(),
        config_file: Some(path.to_path_buf()),
        wait_ready: true,
        ..DataPlaneOptions::default()
    })
}

/// Replace the config file the way editors do (write, then rename over it) and wait until
/// the data plane serves it.
fn replace_config(dp: &DataPlane, path: &Path, text: &str) -> anyhow::Result<()> {
    let before = dp.config_dump()?["hash"].clone();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    wait_until(DEFAULT_TIMEOUT, "the new config to be applied", || {
        if dp.config_dump()?["hash"] == before {
            bail!("still on the previous config");
        }
        Ok(())
    })
}

/// An `initialize` with id 42 and these extra headers.
fn post_initialize(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
    let body = json!({
        "jsonrpc": "2.0", "id": 42, "method": "initialize",
        "params": {
            "protocolVersion": conduit_e2e::mcp::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "auth-e2e", "version": "0" }
        }
    });
    let mut all = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    all.extend_from_slice(headers);
    http::request(
        "POST",
        url,
        &all,
        Some(body.to_string().as_bytes()),
        TIMEOUT,
    )
}

/// A 401 with the Bearer challenge (`invalid_token` when a credential was sent) and the
/// JSON-RPC error with `id` (null: the body is not read before authentication).
fn assert_refused(response: &Response, presented: bool, id: Value) -> anyhow::Result<()> {
    let body = response.text();
    if response.status != 401 {
        bail!("expected 401, got {}: {body}", response.status);
    }
    let expected = if presented {
        r#"Bearer realm="conduit", error="invalid_token""#
    } else {
        r#"Bearer realm="conduit""#
    };
    if response.header("www-authenticate") != Some(expected) {
        bail!(
            "WWW-Authenticate {:?}, expected {expected:?}",
            response.header("www-authenticate")
        );
    }
    if response.header("x-conduit-server-id").is_some() {
        bail!("a refused request learned the server id");
    }
    let message = response.json()?;
    if message["id"] != id || message["error"]["code"] != json!(-32000) {
        bail!("unexpected JSON-RPC error: {message}");
    }
    let text = message["error"]["message"].as_str().unwrap_or_default();
    if !text.starts_with("authentication failed: ") {
        bail!("unexpected message {text:?}");
    }
    Ok(())
}

fn failures(dp: &DataPlane, reason: &str) -> anyhow::Result<u64> {
    let text = dp.admin_get("/metrics")?.text();
    let prefix = format!("conduit_auth_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .with_context(|| format!("no {prefix} in /metrics"))?
        .trim()
        .parse()
        .context("counter value")
}

fn echo(client: &mut McpClient, message: &str) -> anyhow::Result<()> {
    client.initialize()?;
    let text = client.call_tool_text("echo", json!({ "message": message }))?;
    if text != message {
        bail!("echo returned {text:?}");
    }
    Ok(())
}

#[test]
fn api_keys_guard_every_method_and_endpoint() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, api_key_config(&fixture, true))?;
    let dp = standalone(&path)?;
    let url = dp.mcp_url("fixture");

    // Both headers; the hashed key works like a plain one.
    echo(
        &mut McpClient::new(&url).with_header("Authorization", "Bearer ci-key"),
        "bearer",
    )?;
    echo(
        &mut McpClient::new(&url).with_header("X-API-Key", "alice-key"),
        "x-api-key",
    )?;
    // Authorization wins over X-API-Key.
    let response = post_initialize(
        &url,
        &[
            ("Authorization", "Bearer wrong"),
            ("X-API-Key", "alice-key"),
        ],
    )?;
    assert_refused(&response, true, Value::Null)?;

    // Missing, wrong and malformed credentials.
    assert_refused(&post_initialize(&url, &[])?, false, Value::Null)?;
    let wrong = post_initialize(&url, &[("X-API-Key", "not-a-key-1234")])?;
    assert_refused(&wrong, true, Value::Null)?;
    assert!(!wrong.text().contains("not-a-key-1234"), "{}", wrong.text());
    for bad in [
        "bearer ci-key",
        "Basic Y2k6a2V5",
        "Bearer  ci-key",
        "Bearer ci-key2",
    ] {
        let response = post_initialize(&url, &[("Authorization", bad)])?;
        assert_refused(&response, true, Value::Null).with_context(|| bad.to_owned())?;
    }

    // The GET stream and DELETE are guarded too.
    let get = http::request(
        "GET",
        &url,
        &[("Accept", "text/event-stream")],
        None,
        TIMEOUT,
    )?;
    assert_refused(&get, false, Value::Null)?;
    let delete = http::request("DELETE", &url, &[("Mcp-Session-Id", "x")], None, TIMEOUT)?;
    assert_refused(&delete, false, Value::Null)?;

    // Unknown servers and the aggregate endpoints: 401 before anything is said about them.
    assert_refused(
        &post_initialize(&dp.mcp_url("no-such-server"), &[])?,
        false,
        Value::Null,
    )?;
    let known_only_with_a_key =
        post_initialize(&dp.mcp_url("no-such-server"), &[("X-API-Key", "alice-key")])?;
    assert_eq!(known_only_with_a_key.status, 404);
    assert_refused(
        &post_initialize(&dp.public_url("/mcp"), &[])?,
        false,
        Value::Null,
    )?;
    assert_refused(
        &post_initialize(&dp.public_url("/mcp/profile/p"), &[])?,
        false,
        Value::Null,
    )?;

    assert!(failures(&dp, "missing")? >= 6);
    assert!(failures(&dp, "invalid_key")? >= 3);
    assert!(failures(&dp, "malformed")? >= 3);
    assert_eq!(failures(&dp, "expired")?, 0);

    // Every request is authenticated anew: a key removed by a config change is refused on
    // the very next request, even within a session that began with it.
    let mut ci = McpClient::new(&url).with_header("Authorization", "Bearer ci-key");
    echo(&mut ci, "before")?;
    replace_config(&dp, &path, &api_key_config(&fixture, false))?;
    let exchange = ci.exchange(
        "tools/call",
        json!({ "name": "echo", "arguments": { "message": "after" } }),
    )?;
    assert_eq!(
        exchange.response.status,
        401,
        "{}",
        exchange.response.text()
    );
    echo(
        &mut McpClient::new(&url).with_header("X-API-Key", "alice-key"),
        "still",
    )?;
    Ok(())
}

/// A key set endpoint on 127.0.0.1: serves whatever `body` holds, counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(body: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/jwks.json", listener.local_addr()?);
        let body = Arc::new(Mutex::new(body));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&body), Arc::clone(&hits));
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().map(|b| b.clone()).unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(Self { url, body, hits })
    }

    fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn es256_key(kid: &str) -> anyhow::Result<SigningKey> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok(SigningKey {
        kid: kid.to_owned(),
        encoding,
        jwk: serde_json::to_value(&jwk)?,
    })
}

fn key_set(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn token(key: &SigningKey, claims: Value) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
}

fn claims(audience: &str, exp_in: i64) -> Value {
    json!({
        "iss": "https://idp.test", "aud": audience, "sub": "agent-7", "org_id": "acme",
        "exp": now() + exp_in,
    })
}

#[test]
fn jwts_from_a_served_key_set_with_rotation() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let first = es256_key("key-1")?;
    let second = es256_key("key-2")?;
    let jwks = JwksServer::start(key_set(&[&first]))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(
        &path,
        format!(
            "servers:\n  - id: fixture\n    url: {}\n    timeout_ms: 10000\nauth:\n  method: jwt\n  jwks_url: {}\n  issuer: https://idp.test\n  audience: conduit\n  jwks_refresh_min_interval_seconds: 1\n",
            fixture.mcp_url(),
            jwks.url
        ),
    )?;
    let dp = standalone(&path)?;
    let url = dp.mcp_url("fixture");

    let good = token(&first, claims("conduit", 600))?;
    echo(
        &mut McpClient::new(&url).with_header("Authorization", &format!("Bearer {good}")),
        "jwt",
    )?;
    assert_eq!(jwks.hits(), 1, "the key set is fetched once and cached");

    // Wrong audience, expired, `alg: none`, and a token in X-API-Key (JWTs come only from
    // Authorization).
    let wrong_audience = token(&first, claims("someone-else", 600))?;
    let expired = token(&first, claims("conduit", -3600))?;
    let b64 = |v: Value| base64_url(v.to_string().as_bytes());
    let none = format!(
        "{}.{}.",
        b64(json!({ "alg": "none", "typ": "JWT" })),
        b64(claims("conduit", 600))
    );
    for (bad, reason) in [
        (&wrong_audience, "bad_audience"),
        (&expired, "expired"),
        (&none, "algorithm"),
    ] {
        let response = post_initialize(&url, &[("Authorization", &format!("Bearer {bad}"))])?;
        assert_refused(&response, true, Value::Null).with_context(|| reason.to_owned())?;
        assert!(!response.text().contains(bad.as_str()));
        assert_eq!(failures(&dp, reason)?, 1, "{reason}");
    }
    assert_refused(
        &post_initialize(&url, &[("X-API-Key", &good)])?,
        false,
        Value::Null,
    )?;

    // Rotation: key-2 appears at the endpoint; a token signed with it makes the data plane
    // fetch the set again (at most once a second here) and is then accepted.
    jwks.serve(key_set(&[&first, &second]));
    let rotated = token(&second, claims("conduit", 600))?;
    wait_until(DEFAULT_TIMEOUT, "the rotated key to be accepted", || {
        let response = post_initialize(&url, &[("Authorization", &format!("Bearer {rotated}"))])?;
        if response.status != 200 {
            bail!("HTTP {}: {}", response.status, response.text());
        }
        Ok(())
    })?;
    assert!(jwks.hits() >= 2);
    echo(
        &mut McpClient::new(&url).with_header("Authorization", &format!("Bearer {rotated}")),
        "rotated",
    )?;
    // The old key keeps working: it is still in the set.
    echo(
        &mut McpClient::new(&url).with_header("Authorization", &format!("Bearer {good}")),
        "old key",
    )?;
    Ok(())
}

/// The review's attack: a token the same identity provider minted for another service (or
/// another issuer signing with the same key set) was accepted because `audience` and
/// `issuer` were optional. Now `conduitctl validate` refuses a JWT config without them and
/// explains why, a data plane refuses such a config file, and one configured with both
/// refuses the foreign tokens.
#[test]
fn jwts_for_another_audience_or_issuer_are_refused() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let key = es256_key("key-1")?;
    let jwks = JwksServer::start(key_set(&[&key]))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    let servers = format!(
        "servers:\n  - id: fixture\n    url: {}\n    timeout_ms: 10000\n",
        fixture.mcp_url()
    );

    // Without audience and issuer: refused by the validator, each with its path and why.
    let open = format!("{servers}auth:\n  method: jwt\n  jwks_url: {}\n", jwks.url);
    std::fs::write(&path, &open)?;
    let validate = conduit_e2e::ctl::run_conduitctl(
        &["validate".into(), "-f".into(), path.display().to_string()],
        &[],
        TIMEOUT,
    )?;
    validate.expect_code(2)?;
    for needle in [
        "auth.audience",
        "insecure_allow_any_audience",
        "auth.issuer",
        "insecure_allow_any_issuer",
    ] {
        assert!(validate.stderr.contains(needle), "{needle}: {validate}");
    }

    let strict = format!(
        "{servers}auth:\n  method: jwt\n  jwks_url: {}\n  issuer: https://idp.test\n  audience: conduit\n",
        jwks.url
    );
    std::fs::write(&path, &strict)?;
    let dp = standalone(&path)?;
    let url = dp.mcp_url("fixture");
    let good = token(&key, claims("conduit", 600))?;
    echo(
        &mut McpClient::new(&url).with_header("Authorization", &format!("Bearer {good}")),
        "for us",
    )?;
    let mut other_issuer = claims("conduit", 600);
    other_issuer["iss"] = json!("https://other-tenant.idp.test");
    let mut no_audience = claims("conduit", 600);
    no_audience.as_object_mut().unwrap().remove("aud");
    for (claims, reason) in [
        (claims("billing-service", 600), "bad_audience"),
        (no_audience, "bad_audience"),
        (other_issuer, "bad_issuer"),
    ] {
        let foreign = token(&key, claims)?;
        let response = post_initialize(&url, &[("Authorization", &format!("Bearer {foreign}"))])?;
        assert_refused(&response, true, Value::Null).with_context(|| reason.to_owned())?;
    }
    assert_eq!(failures(&dp, "bad_audience")?, 2);
    assert_eq!(failures(&dp, "bad_issuer")?, 1);

    // The data plane refuses the open config too: the strict one keeps serving.
    std::fs::write(&path, &open)?;
    wait_until(DEFAULT_TIMEOUT, "the open config to be rejected", || {
        let metrics = dp.admin_get("/metrics")?.text();
        if !metrics.lines().any(|l| {
            l.starts_with("conduit_dp_config_applies_total{")
                && l.contains("rejected")
                && !l.ends_with(" 0")
        }) {
            bail!("not rejected yet");
        }
        Ok(())
    })?;
    let refused = post_initialize(
        &url,
        &[(
            "Authorization",
            &format!("Bearer {}", token(&key, claims("billing-service", 600))?),
        )],
    )?;
    assert_refused(&refused, true, Value::Null)?;
    Ok(())
}

/// Base64url without padding (the harness has no base64 crate; JWT parts are small).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
