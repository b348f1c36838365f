//! `backend: redis`: counters shared by every data plane that uses the same Redis.
//!
//! Each counter is a sorted set at `conduit:rl:v1:<window>:<bucket key>` (see `key`) whose
//! members are the admitted requests, scored by their admission time in microseconds. One
//! Lua script checks and counts all of a request's counters atomically (one `EVALSHA` per
//! request): it prunes what left each window, refuses if any counter is full (counting
//! nothing), else adds the request to every counter and sets each key to expire after its
//! window. Time comes from Redis (`TIME`), so data planes with skewed clocks agree.
//!
//! The script is loaded once per store (`SCRIPT LOAD`); if Redis forgot it (restart,
//! `SCRIPT FLUSH`), `EVAL` with the script text runs it and loads it again. The connection
//! is a `ConnectionManager` opened by the first request (it reconnects on its own); each
//! round trip gets `redis_timeout_ms`, after which the limiter applies `on_backend_error`.
//! Needs a standalone Redis 5 or newer (or a proxy keeping a request's keys together):
//! a script's keys must live on one node.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, RedisResult, cmd};
use tokio::time::Instant;

use super::{Check, Refusal, key};

/// Longest a connection attempt or reply may take in the background.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Warnings about a failing Redis are logged at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// KEYS: one sorted set per counter. ARGV[1]: the request's member (unique per request);
/// then per key: window in milliseconds, limit. Returns {0, 0} when admitted, else
/// {index of the counter that has room again last (1-based), microseconds until then}.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i]) * 1000
  local limit = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local free = window
    if count > 0 then
      local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      free = tonumber(entry[2]) + window - now
    end
    if refused == 0 or free > wait then
      refused, wait = i, free
    end
  end
end
if refused > 0 then
  return {refused, wait}
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2 * i])
end
return {0, 0}
";

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Redis(#[from] RedisError),
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// The counters in one Redis.
pub struct RedisStore {
    url: String,
    masked_url: String,
    client: Client,
    connection: OnceLock<ConnectionManager>,
    /// SHA-1 of the loaded script, once loaded.
    sha: Mutex<Option<String>>,
    last_warning: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.masked_url)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url`; nothing connects until the first request.
    pub fn new(url: &str) -> Result<RedisStore, String> {
        let masked_url = conduit_config::mask_url(url);
        let client = Client::open(url)
            .map_err(|error| format!("cannot use Redis URL {masked_url}: {error}"))?;
        Ok(RedisStore {
            url: url.to_owned(),
            masked_url,
            client,
            connection: OnceLock::new(),
            sha: Mutex::new(None),
            last_warning: Mutex::new(None),
        })
    }

    /// The URL as configured (with its credentials; compare, never log).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Check and count `checks` in one script run, within `timeout` (the configuration's:
    /// the store outlives configurations).
    pub(crate) async fn check_and_consume(
        &self,
        checks: &[Check],
        timeout: Duration,
    ) -> Result<Result<(), Refusal>, Failure> {
        let reply = tokio::time::timeout(timeout, self.run(checks))
            .await
            .map_err(|_| Failure::Timeout(timeout))??;
        match reply.as_slice() {
            [0, _] => Ok(Ok(())),
            [index, wait] => {
                let index = usize::try_from(*index - 1)
                    .ok()
                    .filter(|index| *index < checks.len());
                let index = index.ok_or_else(|| unexpected(&reply))?;
                let wait = Duration::from_micros(u64::try_from(*wait).unwrap_or(0));
                Ok(Err(Refusal { index, wait }))
            }
            _ => Err(unexpected(&reply)),
        }
    }

    async fn run(&self, checks: &[Check]) -> RedisResult<Vec<i64>> {
        let mut connection = self.connection()?;
        let keys: Vec<String> = checks
            .iter()
            .map(|check| key::redis_key(check.window, &check.key))
            .collect();
        let mut args: Vec<String> = Vec::with_capacity(1 + 2 * checks.len());
        args.push(format!("{:032x}", rand::random::<u128>()));
        for check in checks {
            args.push(check.window.duration().as_millis().to_string());
            args.push(check.limit.to_string());
        }
        let sha = self.sha();
        let sha = match sha {
            Some(sha) => sha,
            None => {
                let sha: String = cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(SCRIPT)
                    .query_async(&mut connection)
                    .await?;
                *self.sha.lock().unwrap_or_else(PoisonError::into_inner) = Some(sha.clone());
                sha
            }
        };
        let evalsha = cmd("EVALSHA")
            .arg(&sha)
            .arg(keys.len())
            .arg(&keys)
            .arg(&args)
            .query_async(&mut connection)
            .await;
        match evalsha {
            Err(error) if error.code() == Some("NOSCRIPT") => {
                cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(keys.len())
                    .arg(&keys)
                    .arg(&args)
                    .query_async(&mut connection)
                    .await
            }
            other => other,
        }
    }

    fn sha(&self) -> Option<String> {
        self.sha
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection, created (not yet connected) on first use, inside the Tokio runtime.
    fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        // Each round trip is bounded by the caller's timeout; these only keep a connection
        // attempt from hanging on forever in the background.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let created = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.connection.get_or_init(|| created).clone())
    }

    /// Log a failure, at most once per [`WARNING_INTERVAL`].
    pub(crate) fn warn(&self, failure: &Failure, decision: &str) {
        let now = Instant::now();
        {
            let mut last = self
                .last_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|last| now < last + WARNING_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        tracing::warn!(
            redis = %self.masked_url,
            error = %failure,
            decision,
            "rate limit backend failed; requests are {decision} per rate_limits.on_backend_error \
             (this warning repeats at most every 10 s)"
        );
    }
}

fn unexpected(reply: &[i64]) -> Failure {
    Failure::Redis(RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected rate limit script reply",
        format!("{reply:?}"),
    )))
}
