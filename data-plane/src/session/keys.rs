//! Where a data plane's session keys come from, in order of precedence:
//!
//! 1. `gateway.session_keys` of the applied configuration (compiled into the `Runtime`);
//! 2. the fleet's keys, shipped by the control plane with every snapshot and replaced on
//!    each rotation without a new config version;
//! 3. a random key made once at process start, kept across config reloads, so a standalone
//!    data plane still has sessions, local to it.
//!
//! [`KeyRing`] holds (2) and (3) and hands out the set a request should use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use conduit_config::Gateway;

use super::{SessionKey, SessionKeyError, SessionKeys};
use crate::snapshot::SessionKeySet;

/// The fleet's keys and the process's own fallback key.
#[derive(Debug)]
pub struct KeyRing {
    fleet: ArcSwapOption<SessionKeys>,
    local: SessionKeys,
    warned_local: AtomicBool,
}

impl Default for KeyRing {
    fn default() -> Self {
        KeyRing::new()
    }
}

impl KeyRing {
    /// A ring without fleet keys, with a fresh local key.
    pub fn new() -> KeyRing {
        KeyRing {
            fleet: ArcSwapOption::empty(),
            local: SessionKeys::ephemeral(),
            warned_local: AtomicBool::new(false),
        }
    }

    /// The keys for a request: the configuration's own when it names some, else the
    /// fleet's, else the local key. A cheap clone.
    pub fn keys(&self, configured: Option<&SessionKeys>) -> SessionKeys {
        if let Some(keys) = configured {
            return keys.clone();
        }
        match &*self.fleet.load() {
            Some(fleet) => SessionKeys::clone(fleet),
            None => self.local.clone(),
        }
    }

    /// Replace the fleet's keys (from a verified snapshot).
    pub fn set_fleet(&self, keys: SessionKeys) {
        let changed = self
            .fleet
            .load()
            .as_ref()
            .is_none_or(|old| old.newest_id() != keys.newest_id());
        if changed {
            let ids: Vec<&str> = keys.ids().collect();
            tracing::info!(
                newest = keys.newest_id(),
                keys = %ids.join(","),
                "session keys from the control plane"
            );
        }
        self.fleet.store(Some(std::sync::Arc::new(keys)));
    }

    /// Id of the newest fleet key, reported in Hello so a rotation missed while
    /// disconnected is caught up.
    pub fn fleet_newest_id(&self) -> Option<String> {
        self.fleet
            .load()
            .as_ref()
            .map(|keys| keys.newest_id().to_owned())
    }

    /// Called after each apply: says once, when it first happens, that sessions only live
    /// on this data plane.
    pub fn note_applied(&self, configured: bool) {
        if configured || self.fleet.load().is_some() {
            return;
        }
        if !self.warned_local.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                key = self.local.newest_id(),
                "no session keys configured (gateway.session_keys) or received from a control \
                 plane: MCP sessions are local to this data plane and end when it restarts"
            );
        }
    }
}

/// The keys a configuration names (`gateway.session_keys`, references resolved), or `None`
/// when it names none. Errors carry the config path.
pub(crate) fn configured_keys(
    gateway: Option<&Gateway>,
) -> Result<Option<SessionKeys>, Vec<(String, String)>> {
    let Some(gateway) = gateway.filter(|g| !g.session_keys.is_empty()) else {
        return Ok(None);
    };
    let mut keys = Vec::with_capacity(gateway.session_keys.len());
    let mut errors = Vec::new();
    for (index, entry) in gateway.session_keys.iter().enumerate() {
        match SessionKey::from_base64(&entry.id, &entry.key) {
            Ok(key) => keys.push(key),
            Err(error) => {
                errors.push((format!("gateway.session_keys[{index}]"), error.to_string()))
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    SessionKeys::new(keys)
        .map(Some)
        .map_err(|error| vec![("gateway.session_keys".to_owned(), error.to_string())])
}

/// The fleet's keys from a snapshot's key set.
pub(crate) fn fleet_keys(set: &SessionKeySet) -> Result<SessionKeys, SessionKeyError> {
    let keys = set
        .keys
        .iter()
        .map(|wire| {
            SessionKey::from_slice(&wire.id, &wire.key)
                .map(|key| key.not_before(u64::try_from(wire.activates_at).unwrap_or(0)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let keys = SessionKeys::new(keys)?;
    Ok(if set.max_age_seconds > 0 {
        keys.with_max_age(Duration::from_secs(set.max_age_seconds))
    } else {
        keys
    })
}

#[cfg(test)]
mod tests {
    use conduit_config::SessionKeyConfig;

    use super::*;
    use crate::session::SessionState;
    use crate::snapshot::WireSessionKey;

    fn gateway(keys: &[(&str, &str)]) -> Gateway {
        Gateway {
            session_keys: keys
                .iter()
                .map(|(id, key)| SessionKeyConfig {
                    id: (*id).into(),
                    key: (*key).into(),
                })
                .collect(),
            ..Gateway::default()
        }
    }

    const KEY_A: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";
    const KEY_B: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn configured_keys_win_then_fleet_then_local() {
        let ring = KeyRing::new();
        let local = ring.keys(None);
        assert!(local.newest_id().starts_with("local-"));
        // The local key is the same for the whole process.
        assert_eq!(ring.keys(None).newest_id(), local.newest_id());

        let set = SessionKeySet {
            keys: vec![WireSessionKey {
                id: "fleet1".into(),
                key: vec![7; 32],
                created_at: 0,
                activates_at: 0,
            }],
            max_age_seconds: 60,
            signature: String::new(),
        };
        ring.set_fleet(fleet_keys(&set).unwrap());
        assert_eq!(ring.keys(None).newest_id(), "fleet1");
        assert_eq!(ring.keys(None).max_age(), Duration::from_secs(60));
        assert_eq!(ring.fleet_newest_id().as_deref(), Some("fleet1"));

        let configured = configured_keys(Some(&gateway(&[("cfg", KEY_A)])))
            .unwrap()
            .unwrap();
        assert_eq!(ring.keys(Some(&configured)).newest_id(), "cfg");
    }

    #[test]
    fn configured_keys_are_checked() {
        assert!(configured_keys(None).unwrap().is_none());
        assert!(
            configured_keys(Some(&Gateway::default()))
                .unwrap()
                .is_none()
        );
        let both = configured_keys(Some(&gateway(&[("new", KEY_B), ("old", KEY_A)])))
            .unwrap()
            .unwrap();
        assert_eq!(both.ids().collect::<Vec<_>>(), ["new", "old"]);

        let errors =
            configured_keys(Some(&gateway(&[("a", KEY_A), ("b", "c2hvcnQ=")]))).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "gateway.session_keys[1]");
        assert!(errors[0].1.contains("5 bytes"), "{errors:?}");
        let errors = configured_keys(Some(&gateway(&[("a", KEY_A), ("a", KEY_B)]))).unwrap_err();
        assert!(errors[0].1.contains("duplicate"), "{errors:?}");
    }

    #[test]
    fn two_data_planes_with_the_same_configured_keys_share_sessions() {
        let config = gateway(&[("shared", KEY_A)]);
        let a = configured_keys(Some(&config)).unwrap().unwrap();
        let b = configured_keys(Some(&config)).unwrap().unwrap();
        let state = SessionState::new(
            "server:x",
            crate::session::Principal::of(&crate::caller::Caller::anonymous()),
        );
        assert_eq!(b.open(&a.seal(&state)).unwrap(), state);
        // Whereas two processes' local keys do not.
        let token = KeyRing::new().keys(None).seal(&state);
        assert!(KeyRing::new().keys(None).open(&token).is_err());
    }
}
