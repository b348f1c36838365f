use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use http::HeaderValue;
use prost::Message;

use super::*;

const NEED: Need<'static> = Need {
    source: Source::Guardrail,
    rule: "approve-deletes",
    reason: None,
};

fn approvals() -> (Approvals, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let approvals = Approvals::new(Arc::clone(&metrics));
    approvals.use_control_plane("dp-1");
    (approvals, metrics)
}

fn headers(id: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(id) = id {
        headers.insert(APPROVAL_HEADER, HeaderValue::from_str(id).unwrap());
    }
    headers
}

fn call<'a>(caller: &'a Caller, arguments: &'a Value) -> Call<'a> {
    Call {
        caller,
        server_id: "files",
        tool: "delete",
        arguments: Some(arguments),
        trace_id: "trace-1",
    }
}

/// Sign a set granting `request` until `expires_at`, as the control plane does.
fn grant(key: &Ed25519KeyPair, request: &pb::ApprovalRequest, expires_at: i64) -> pb::GrantSet {
    grant_uses(key, request, expires_at, 100, &[], 1)
}

/// A set granting `request` `max_uses` calls, `uses` of them counted per node.
fn grant_uses(
    key: &Ed25519KeyPair,
    request: &pb::ApprovalRequest,
    expires_at: i64,
    max_uses: u32,
    uses: &[(&str, u32)],
    issued_at_ms: i64,
) -> pb::GrantSet {
    let list = pb::GrantList {
        issued_at_ms,
        grants: vec![pb::Grant {
            id: request.id.clone(),
            client_id: request.client_id.clone(),
            tenant_id: request.tenant_id.clone(),
            server_id: request.server_id.clone(),
            tool: request.tool.clone(),
            fingerprint: request.fingerprint.clone(),
            expires_at,
            max_uses,
            uses: uses
                .iter()
                .map(|(node_id, count)| pb::GrantUse {
                    node_id: (*node_id).to_owned(),
                    count: *count,
                })
                .collect(),
        }],
    };
    let grants = list.encode_to_vec();
    let mut message = grants::GRANT_SET_CONTEXT.to_vec();
    message.extend_from_slice(&grants);
    pb::GrantSet {
        signature: key.sign(&message).as_ref().to_vec(),
        grants,
    }
}

fn outcome(metrics: &Metrics, outcome: Outcome) -> u64 {
    metrics
        .approvals
        .with_label_values(&[outcome.as_str()])
        .get()
}

#[tokio::test(start_paused = true)]
async fn pending_then_granted_until_expiry() {
    let (approvals, metrics) = approvals();
    let settings = ApprovalSettings {
        ttl_seconds: 600,
        ..ApprovalSettings::default()
    };
    let caller = Caller::authenticated("agent", Some("acme"));
    let args = json!({"path": "/srv/x", "api_token": "s3cret"});

    let pending = approvals
        .check(&settings, &headers(None), &call(&caller, &args), &NEED)
        .unwrap_err();
    assert_eq!(pending.code(), -32011);
    assert_eq!(
        pending.message,
        "approval required by guardrail rule \"approve-deletes\""
    );
    assert_eq!(pending.data["status"], "pending");
    assert_eq!(pending.data["approval_header"], "X-Conduit-Approval-Id");
    let id = pending.data["approval_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ids::is_well_formed(&id), "{id}");
    assert_eq!(outcome(&metrics, Outcome::Requested), 1);

    let request = approvals
        .outbox()
        .pop()
        .expect("queued for the control plane");
    assert_eq!(request.id, id);
    assert_eq!(
        (request.client_id.as_str(), request.tenant_id.as_str()),
        ("agent", "acme")
    );
    assert_eq!(request.expires_at - request.created_at, 600);
    assert_eq!(request.source, "guardrail");
    assert_eq!(request.trace_id, "trace-1");
    assert_eq!(
        request.fingerprint,
        conduit_policy::fingerprint::fingerprint("files", "delete", Some(&args))
    );
    let sent: Value = serde_json::from_str(&request.arguments_json).unwrap();
    assert_eq!(sent, json!({"path": "/srv/x", "api_token": "[REDACTED]"}));

    // Before the grant arrives the id is refused; it is not a new request either.
    let early = approvals
        .check(&settings, &headers(Some(&id)), &call(&caller, &args), &NEED)
        .unwrap_err();
    assert_eq!(early.message, INVALID_MESSAGE);
    assert_eq!(
        early.data,
        json!({"approval_header": "X-Conduit-Approval-Id"})
    );
    assert!(approvals.outbox().is_empty());

    let key = Ed25519KeyPair::generate().unwrap();
    approvals.set_key(Some(key.public_key().as_ref().to_vec()));
    let expires_at = approvals.now() + 60;
    assert_eq!(
        approvals.apply_grant_set(&grant(&key, &request, expires_at)),
        Ok(1)
    );
    assert_eq!(metrics.approval_grants.get(), 1);

    // Granted, as often as the grant allows (100 here).
    for _ in 0..2 {
        approvals
            .check(&settings, &headers(Some(&id)), &call(&caller, &args), &NEED)
            .expect("granted");
    }
    assert_eq!(outcome(&metrics, Outcome::Granted), 2);
    let used = approvals.outbox().pop_use().expect("the uses are reported");
    assert_eq!((used.id.as_str(), used.count), (id.as_str(), 2));

    // Other arguments, another client: refused.
    let other_args = json!({"path": "/etc"});
    let refused = approvals
        .check(
            &settings,
            &headers(Some(&id)),
            &call(&caller, &other_args),
            &NEED,
        )
        .unwrap_err();
    assert_eq!(refused.message, INVALID_MESSAGE);
    let mallory = Caller::authenticated("mallory", Some("acme"));
    assert!(
        approvals
            .check(
                &settings,
                &headers(Some(&id)),
                &call(&mallory, &args),
                &NEED
            )
            .is_err()
    );

    // Past its expiry (plus the skew allowance) the grant is refused.
    tokio::time::advance(Duration::from_secs(60 + grants::CLOCK_SKEW as u64 - 1)).await;
    assert!(
        approvals
            .check(&settings, &headers(Some(&id)), &call(&caller, &args), &NEED)
            .is_ok()
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let expired = approvals
        .check(&settings, &headers(Some(&id)), &call(&caller, &args), &NEED)
        .unwrap_err();
    assert_eq!(expired.message, INVALID_MESSAGE);
    assert_eq!(outcome(&metrics, Outcome::Invalid), 4);
}

#[tokio::test]
async fn grant_sets_need_the_snapshot_key() {
    let (approvals, _) = approvals();
    let key = Ed25519KeyPair::generate().unwrap();
    let request = pb::ApprovalRequest {
        id: ids::new_id(),
        ..Default::default()
    };
    let set = grant(&key, &request, i64::MAX / 2);
    assert_eq!(approvals.apply_grant_set(&set), Err(GrantSetError::NoKey));
    let other = Ed25519KeyPair::generate().unwrap();
    approvals.set_key(Some(other.public_key().as_ref().to_vec()));
    assert_eq!(
        approvals.apply_grant_set(&set),
        Err(GrantSetError::BadSignature)
    );
}

#[tokio::test]
async fn standalone_data_planes_cannot_get_approvals() {
    let approvals = Approvals::new(Arc::new(Metrics::new()));
    let caller = Caller::anonymous();
    let args = json!({});
    let need = Need {
        source: Source::Governance,
        rule: "prod-writes",
        reason: Some("writes to prod need a second pair of eyes"),
    };
    let refusal = approvals
        .check(
            &ApprovalSettings::default(),
            &headers(None),
            &call(&caller, &args),
            &need,
        )
        .unwrap_err();
    assert_eq!(refusal.data["status"], "unavailable");
    assert!(
        refusal.message.starts_with("writes to prod need"),
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains("approvals need a control plane"),
        "{}",
        refusal.message
    );
    assert!(approvals.outbox().is_empty());
}

#[test]
fn settings_come_from_governance_and_observability() {
    let document = Document::from_text(
        "servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n\
         governance:\n  approvals:\n    ttl_seconds: 120\n\
         observability:\n  redact_fields: [path]\n",
    )
    .unwrap();
    let settings = ApprovalSettings::compile(&document);
    assert_eq!(settings.ttl_seconds, 120);
    assert_eq!(settings.requests_per_minute, 10, "the default");
    assert_eq!(
        settings
            .redactor
            .redact(&json!({"path": "x", "token": "y"})),
        json!({"path": "[REDACTED]", "token": "y"})
    );
    assert_eq!(
        ApprovalSettings::compile(&Document::default()),
        ApprovalSettings::default()
    );
}

/// A held call as the control plane would get it, and its caller's arguments.
fn held(approvals: &Approvals, caller: &Caller, args: &Value) -> pb::ApprovalRequest {
    approvals
        .check(
            &ApprovalSettings::default(),
            &headers(None),
            &call(caller, args),
            &NEED,
        )
        .unwrap_err();
    approvals.outbox().pop().expect("queued")
}

#[tokio::test(start_paused = true)]
async fn a_grant_allows_max_uses_calls_counting_other_data_planes() {
    let (approvals, metrics) = approvals();
    let settings = ApprovalSettings::default();
    let caller = Caller::authenticated("agent", Some("acme"));
    let args = json!({"path": "/srv/x"});
    let key = Ed25519KeyPair::generate().unwrap();
    approvals.set_key(Some(key.public_key().as_ref().to_vec()));
    let expires_at = approvals.now() + 600;
    let retry =
        |id: &str| approvals.check(&settings, &headers(Some(id)), &call(&caller, &args), &NEED);

    // A set from a sender without max_uses (0): one call.
    let once = held(&approvals, &caller, &args);
    approvals
        .apply_grant_set(&grant_uses(&key, &once, expires_at, 0, &[], 1))
        .unwrap();
    retry(&once.id).expect("the one use");
    let refused = retry(&once.id).unwrap_err();
    assert_eq!(refused.code(), -32011);
    assert_eq!(
        refused.message,
        "approval is used up: it allowed 1 call; a new call needs a new approval"
    );
    assert_eq!(refused.data["status"], "used_up");
    assert_eq!(outcome(&metrics, Outcome::UsedUp), 1);

    // Three uses, one of them counted on dp-2 already: two left here.
    let three = held(&approvals, &caller, &args);
    approvals
        .apply_grant_set(&grant_uses(&key, &three, expires_at, 3, &[("dp-2", 1)], 2))
        .unwrap();
    assert_eq!(approvals.grant_count(), 1, "the used-up grant left the set");
    retry(&three.id).unwrap();
    retry(&three.id).unwrap();
    assert!(retry(&three.id).is_err());
    // The control plane has counted this node's two uses as well: still none left, and the
    // uses are not counted twice once dp-2's use is known to be the only other one.
    approvals
        .apply_grant_set(&grant_uses(
            &key,
            &three,
            expires_at,
            3,
            &[("dp-2", 1), ("dp-1", 2)],
            3,
        ))
        .unwrap();
    assert!(retry(&three.id).is_err());

    // A new stream reports this node's counts again.
    while approvals.outbox().pop_use().is_some() {}
    approvals.new_stream();
    let reported: Vec<(String, u32)> = std::iter::from_fn(|| approvals.outbox().pop_use())
        .map(|used| (used.id, used.count))
        .collect();
    assert_eq!(reported, [(three.id.clone(), 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_new_requests_is_refused_past_the_rate() {
    let (approvals, metrics) = approvals();
    let settings = ApprovalSettings {
        requests_per_minute: 2,
        ..ApprovalSettings::default()
    };
    let caller = Caller::authenticated("agent", Some("acme"));
    let args = json!({});
    let new_request =
        |caller: &Caller| approvals.check(&settings, &headers(None), &call(caller, &args), &NEED);
    for _ in 0..2 {
        assert_eq!(new_request(&caller).unwrap_err().data["status"], "pending");
    }
    let refused = new_request(&caller).unwrap_err();
    assert_eq!(refused.code(), -32029);
    assert!(
        refused
            .message
            .starts_with("too many approval requests from this client"),
        "{}",
        refused.message
    );
    assert_eq!(refused.data["bucket"], "approval_requests");
    assert_eq!(refused.retry_after, Some(30));
    assert_eq!(
        approvals.outbox().len(),
        2,
        "no request for the refused call"
    );
    assert_eq!(outcome(&metrics, Outcome::Throttled), 1);
    // Another client is not affected.
    let other = Caller::authenticated("other", Some("acme"));
    assert_eq!(new_request(&other).unwrap_err().code(), -32011);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(new_request(&caller).unwrap_err().code(), -32011);
}
