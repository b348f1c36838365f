//! The stdio processes of one data plane across configuration versions.
//!
//! Compiling a candidate configuration asks the pool for each stdio server's processes
//! ([`Pool::prepare`]): the running [`Group`] when its `command`, `args`, `env` and
//! isolation are unchanged, else a new one that is not started. Only when the
//! configuration is applied does [`Pool::commit`] start the new groups and retire the ones
//! no longer used, so a rejected candidate never starts or stops anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Group, Isolation, Spec};
use crate::metrics::Metrics;

/// The live stdio servers' processes, by server id. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: Mutex<HashMap<String, Arc<Group>>>,
    metrics: Arc<Metrics>,
}

impl Pool {
    pub fn new(metrics: Arc<Metrics>) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                live: Mutex::default(),
                metrics,
            }),
        }
    }

    /// The metrics the processes report to (the data plane's).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The processes for server `id` of a candidate configuration (see the module doc).
    pub fn prepare(
        &self,
        id: &str,
        spec: Spec,
        isolation: Isolation,
        timeout: Duration,
    ) -> Arc<Group> {
        match self.lock().get(id) {
            Some(group) if *group.spec() == spec && group.isolation() == isolation => {
                Arc::clone(group)
            }
            _ => Group::new(
                id,
                spec,
                isolation,
                timeout,
                Arc::clone(&self.inner.metrics),
            ),
        }
    }

    /// A runtime with the stdio servers `wanted` (by id) was applied: start their
    /// processes, retire the ones it no longer uses (each after its outstanding requests,
    /// within its timeout).
    pub fn commit(&self, wanted: HashMap<String, Arc<Group>>) {
        for group in wanted.values() {
            group.start();
        }
        let previous = std::mem::replace(&mut *self.lock(), wanted.clone());
        for (id, group) in previous {
            let kept = wanted
                .get(&id)
                .is_some_and(|current| Arc::ptr_eq(current, &group));
            if !kept {
                tracing::info!(
                    server = %id,
                    "stdio server removed or changed; stopping its processes"
                );
                group.retire(group.timeout());
            }
        }
    }

    /// End every `GET` stream, so the public listener can drain.
    pub fn close_streams(&self) {
        for group in self.lock().values() {
            group.close_streams();
        }
    }

    /// Stop every process and wait until they are gone (data plane shutdown).
    pub async fn shutdown(&self) {
        let groups: Vec<Arc<Group>> = self.lock().drain().map(|(_, g)| g).collect();
        for group in &groups {
            group.stop();
        }
        for group in &groups {
            group.stopped().await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Group>>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
