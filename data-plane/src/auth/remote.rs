//! Keys fetched from `jwks_url`: cached for `jwks_cache_seconds`, fetched again when a token
//! names a `kid` the cache does not know (a rotated key), at most once per
//! `jwks_refresh_min_interval_seconds`, and by one request at a time: concurrent misses wait
//! for the same fetch. A failed fetch keeps the keys already known; with none known the
//! request fails with `jwks_unavailable`.
//!
//! The cache lives in an `Arc` that a new runtime inherits when the URL is unchanged, so a
//! configuration change does not refetch or forget the keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use conduit_config::JwtAlgorithm;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full, Limited};
use tokio::time::Instant;

use super::Reason;
use super::keys::{KeySet, Pins, SigningKey};

/// Largest key set document read.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Time allowed for one fetch, body included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches the key set document.
pub(crate) type Fetch =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>> + Send + Sync>;

/// Keys of a `jwks_url`.
pub struct RemoteKeys {
    url: String,
    cache_for: Duration,
    min_interval: Duration,
    fetch: Fetch,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("url", &self.url)
            .field("cache_for", &self.cache_for)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

/// The cache state, shared across configuration swaps.
#[derive(Default)]
struct Shared {
    current: RwLock<Option<Cached>>,
    /// Held while fetching (single flight); the time of the last attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Cached {
    keys: Arc<KeySet>,
    fetched_at: Instant,
    /// Incremented by every successful fetch.
    generation: u64,
}

impl RemoteKeys {
    /// Keys of `url`, fetched over HTTP(S) with the data plane's client.
    pub fn http(url: &str, uri: Uri, cache_for: Duration, min_interval: Duration) -> RemoteKeys {
        // Built on first use: a configuration whose tokens never arrive never loads the
        // trust store.
        let client = Arc::new(OnceLock::new());
        let fetch: Fetch = Arc::new(move || Box::pin(fetch_http(Arc::clone(&client), uri.clone())));
        RemoteKeys::with_fetch(url, fetch, cache_for, min_interval)
    }

    /// Keys fetched by `fetch` (tests use their own).
    pub fn with_fetch(
        url: &str,
        fetch: Fetch,
        cache_for: Duration,
        min_interval: Duration,
    ) -> RemoteKeys {
        RemoteKeys {
            url: url.to_owned(),
            cache_for,
            min_interval,
            fetch,
            shared: Arc::new(Shared::default()),
        }
    }

    /// Keep `previous`'s cache when it fetches the same URL.
    pub fn inherit(&mut self, previous: &RemoteKeys) {
        if self.url == previous.url {
            self.shared = Arc::clone(&previous.shared);
        }
    }

    /// The key of a token, fetching the key set when it is not known, stale, or lacks the
    /// token's `kid`.
    pub async fn find(
        &self,
        kid: Option<&str>,
        alg: JwtAlgorithm,
        pins: &Pins,
    ) -> Result<Arc<SigningKey>, Reason> {
        let cached = self.cached();
        let usable = cached.as_ref().filter(|cached| {
            cached.fetched_at.elapsed() < self.cache_for && cached.keys.knows(kid)
        });
        let cached = match usable {
            Some(_) => cached,
            None => self.refresh(cached.as_ref().map(|c| c.generation)).await,
        };
        match cached {
            Some(cached) => cached.keys.find(kid, alg, pins),
            None => Err(Reason::JwksUnavailable),
        }
    }

    fn cached(&self) -> Option<Cached> {
        self.shared
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetch the key set unless another request did since `seen` or the last attempt is
    /// too recent; returns the keys in effect afterwards.
    async fn refresh(&self, seen: Option<u64>) -> Option<Cached> {
        let mut last_attempt = self.shared.fetching.lock().await;
        let current = self.cached();
        if current.as_ref().map(|c| c.generation) != seen {
            // Another request fetched while this one waited for the lock.
            return current;
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.min_interval) {
            return current;
        }
        *last_attempt = Some(Instant::now());
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, (self.fetch)()).await;
        let keys = match fetched {
            Ok(Ok(body)) => KeySet::parse(&body).map_err(|error| error.to_string()),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
        };
        match keys {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                let next = Cached {
                    keys: Arc::new(keys),
                    fetched_at: Instant::now(),
                    generation: seen.map_or(0, |g| g + 1),
                };
                *self
                    .shared
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(next.clone());
                Some(next)
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the keys already known");
                current
            }
        }
    }
}

async fn fetch_http(
    client: Arc<OnceLock<crate::upstream::UpstreamClient>>,
    uri: Uri,
) -> Result<Bytes, String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|error| error.to_string())?;
    let response = (client.get_or_init(crate::upstream::upstream_client))
        .request(request)
        .await
        .map_err(|error| crate::error_chain(&error).to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|error| format!("reading the key set: {error}"))?;
    Ok(body.to_bytes())
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
