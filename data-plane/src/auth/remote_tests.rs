//! The `jwks_url` cache with a key set endpoint the test controls, in paused time: caching,
//! the unknown-`kid` refetch and its rate limit, single flight, failures, pinning, and
//! inheritance across runtimes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use conduit_config::{Auth, AuthMethod};

use super::*;
use crate::auth::test_keys::*;
use crate::auth::{JwtVerifier, Keys, Reason};

/// A key set endpoint the test controls: what it serves and how often it was asked.
#[derive(Clone, Default)]
struct FakeEndpoint {
    body: Arc<Mutex<Option<String>>>,
    fetches: Arc<AtomicUsize>,
}

impl FakeEndpoint {
    fn serve(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn fetch(&self) -> Fetch {
        let endpoint = self.clone();
        Arc::new(move || {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                endpoint.fetches.fetch_add(1, Ordering::SeqCst);
                // Long enough for concurrent requests to pile up behind this fetch.
                tokio::time::sleep(Duration::from_millis(100)).await;
                match endpoint.body.lock().unwrap().clone() {
                    Some(body) => Ok(Bytes::from(body)),
                    None => Err("connection refused".to_owned()),
                }
            })
        })
    }

    fn verifier(&self, config: &Auth) -> JwtVerifier {
        let remote = RemoteKeys::with_fetch(
            "https://idp.example/jwks",
            self.fetch(),
            Duration::from_secs(config.jwks_cache_seconds()),
            Duration::from_secs(config.jwks_refresh_min_interval_seconds()),
        );
        JwtVerifier::new(config, Keys::Remote(remote))
    }
}

fn remote_auth() -> Auth {
    Auth {
        method: AuthMethod::Jwt,
        jwks_url: Some("https://idp.example/jwks".into()),
        // These tests are about fetching keys; the claim checks are tested with inline keys.
        insecure_allow_any_audience: true,
        insecure_allow_any_issuer: true,
        ..Auth::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refetches_once_per_interval() {
    let endpoint = FakeEndpoint::default();
    endpoint.serve(Some(jwks(&[&EC])));
    let verifier = endpoint.verifier(&remote_auth());
    let one = sign(&EC, Some("ec-1"), &claims());
    let two = sign(&EC_2, Some("ec-2"), &claims());

    assert_eq!(verify(&verifier, &one).await, ok("agent-1", "acme"));
    assert_eq!(verify(&verifier, &one).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 1, "cached");

    // Rotation: ec-2 appears at the endpoint. Within the minimum interval the data plane
    // does not refetch: ec-2 is unknown.
    endpoint.serve(Some(jwks(&[&EC, &EC_2])));
    assert_eq!(verify(&verifier, &two).await, Err(Reason::UnknownKey));
    assert_eq!(endpoint.fetches(), 1);
    // After it, one refetch finds the new key.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(verify(&verifier, &two).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 2);

    // A kid nobody knows: one refetch, then refusals without fetching.
    tokio::time::advance(Duration::from_secs(31)).await;
    let unknown = sign(&EC, Some("ec-9"), &claims());
    assert_eq!(verify(&verifier, &unknown).await, Err(Reason::UnknownKey));
    assert_eq!(endpoint.fetches(), 3);
    for _ in 0..5 {
        assert_eq!(verify(&verifier, &unknown).await, Err(Reason::UnknownKey));
    }
    assert_eq!(endpoint.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_fetch() {
    let endpoint = FakeEndpoint::default();
    endpoint.serve(Some(jwks(&[&EC])));
    let verifier = Arc::new(endpoint.verifier(&remote_auth()));
    let token = sign(&EC, Some("ec-1"), &claims());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (verifier, token) = (Arc::clone(&verifier), token.clone());
            tokio::spawn(async move { verify(&verifier, &token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), ok("agent-1", "acme"));
    }
    assert_eq!(endpoint.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn cached_keys_expire_and_survive_a_failed_refetch() {
    let endpoint = FakeEndpoint::default();
    let verifier = endpoint.verifier(&remote_auth());
    let token = sign(&EC, Some("ec-1"), &claims());
    // Nothing fetched yet and the endpoint is down.
    assert_eq!(
        verify(&verifier, &token).await,
        Err(Reason::JwksUnavailable)
    );
    endpoint.serve(Some(jwks(&[&EC])));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(verify(&verifier, &token).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 2);

    // After jwks_cache_seconds the set is fetched again; a failure keeps the old keys.
    endpoint.serve(None);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(verify(&verifier, &token).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 3);
    // A garbage answer is no better than none.
    endpoint.serve(Some("<html>".into()));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(verify(&verifier, &token).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 4);
}

#[tokio::test(start_paused = true)]
async fn pinning_refuses_a_key_the_endpoint_adds() {
    let endpoint = FakeEndpoint::default();
    endpoint.serve(Some(jwks(&[&EC, &EC_2])));
    let mut config = remote_auth();
    config.pinned_key_ids = vec!["ec-1".into()];
    let verifier = endpoint.verifier(&config);
    let one = sign(&EC, Some("ec-1"), &claims());
    let two = sign(&EC_2, Some("ec-2"), &claims());
    assert_eq!(verify(&verifier, &one).await, ok("agent-1", "acme"));
    assert_eq!(verify(&verifier, &two).await, Err(Reason::UntrustedKey));
}

#[tokio::test(start_paused = true)]
async fn a_new_runtime_inherits_the_cache_of_the_same_url() {
    let endpoint = FakeEndpoint::default();
    endpoint.serve(Some(jwks(&[&EC])));
    let token = sign(&EC, Some("ec-1"), &claims());
    let first = endpoint.verifier(&remote_auth());
    assert_eq!(verify(&first, &token).await, ok("agent-1", "acme"));
    let mut second = endpoint.verifier(&remote_auth());
    second.inherit(&first);
    assert_eq!(verify(&second, &token).await, ok("agent-1", "acme"));
    assert_eq!(endpoint.fetches(), 1);
}
