//! The stdio processes of one data plane across configuration versions.
//!
//! Compiling a candidate configuration asks the pool for each stdio server's process
//! ([`Pool::prepare`]): the running one when its `command`, `args` and `env` are unchanged,
//! else a new one that is not started. Only when the configuration is applied does
//! [`Pool::commit`] start the new processes and retire the ones no longer used, so a
//! rejected candidate never starts or stops anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Process, Spec};
use crate::metrics::Metrics;
use crate::runtime::{Runtime, Upstream};

/// The live stdio processes, by server id. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: Mutex<HashMap<String, Arc<Process>>>,
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

    /// The process for server `id` of a candidate configuration (see the module doc).
    pub fn prepare(&self, id: &str, spec: Spec, timeout: Duration) -> Arc<Process> {
        match self.lock().get(id) {
            Some(process) if *process.spec() == spec => Arc::clone(process),
            _ => Process::new(id, spec, timeout, Arc::clone(&self.inner.metrics)),
        }
    }

    /// `runtime` was applied: start its processes, retire the ones it no longer uses (each
    /// after its outstanding requests, within its timeout).
    pub fn commit(&self, runtime: &Runtime) {
        let wanted: HashMap<String, Arc<Process>> = runtime
            .servers()
            .filter_map(|server| match &server.upstream {
                Upstream::Stdio(stdio) => Some((server.id.clone(), Arc::clone(stdio.process()))),
                _ => None,
            })
            .collect();
        for process in wanted.values() {
            process.start();
        }
        let previous = std::mem::replace(&mut *self.lock(), wanted.clone());
        for (id, process) in previous {
            let kept = wanted
                .get(&id)
                .is_some_and(|current| Arc::ptr_eq(current, &process));
            if !kept {
                tracing::info!(
                    server = %id,
                    "stdio server removed or changed; stopping its process"
                );
                process.retire(process.timeout());
            }
        }
    }

    /// End every `GET` stream, so the public listener can drain.
    pub fn close_streams(&self) {
        for process in self.lock().values() {
            process.listeners().close_all();
        }
    }

    /// Stop every process and wait until they are gone (data plane shutdown).
    pub async fn shutdown(&self) {
        let processes: Vec<Arc<Process>> = self.lock().drain().map(|(_, p)| p).collect();
        for process in &processes {
            process.stop();
        }
        for process in &processes {
            process.stopped().await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
