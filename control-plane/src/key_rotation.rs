//! The schedule that rotates the fleet's session token keys (`session_keys`) and publishes
//! each new set with the current version (`versions`), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::session_keys::{KeyPolicy, refresh, until_due};
use crate::store::Store;
use crate::versions::Versions;

/// Wait before retrying a rotation the store refused.
const RETRY: Duration = Duration::from_secs(30);

/// Rotate on schedule until `shutdown`, publishing each new set with the current version.
pub async fn run(
    store: Arc<Store>,
    versions: Arc<Versions>,
    policy: KeyPolicy,
    shutdown: CancellationToken,
) {
    loop {
        let wait = versions
            .session_keys()
            .map_or(Duration::ZERO, |set| until_due(&set, &policy, unix_now()));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let store = store.clone();
        let refreshed =
            tokio::task::spawn_blocking(move || refresh(&store, &policy, unix_now())).await;
        match refreshed {
            Ok(Ok((set, changed))) => {
                if changed {
                    tracing::info!(
                        newest = set.newest_id(),
                        keys = set.keys.len(),
                        "rotated the session token keys"
                    );
                }
                versions.set_session_keys(set);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot rotate the session token keys; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "session key rotation panicked");
                return;
            }
        }
    }
}
