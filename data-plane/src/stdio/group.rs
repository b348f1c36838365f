//! The processes of one stdio server (`servers[].isolation`): one process shared by every
//! caller, or one per tenant or per client, started on the first request of its tenant or
//! client, at most `max_processes` at once, and stopped after `idle_timeout_ms` without
//! outstanding requests or open `GET` streams.
//!
//! A request holds a [`Lease`] on its process from the moment it is looked up until it is
//! registered with the process (or its `GET` stream is open): the reaper only stops a
//! process that no lease holds and that has nothing outstanding, both checked under the
//! group's lock, so it never stops a process a request is about to use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::Failure;
use super::{Principal, Process, Spec};
use crate::metrics::Metrics;

/// Which callers share a process; see `servers[].isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Shared,
    /// One process per tenant.
    Tenant {
        max_processes: usize,
        idle: Duration,
    },
    /// One process per client (tenant and client id).
    Client {
        max_processes: usize,
        idle: Duration,
    },
}

impl Isolation {
    /// The process a principal uses; every caller uses the same one when shared.
    fn key(&self, principal: &Principal) -> String {
        match self {
            Isolation::Shared => String::new(),
            Isolation::Tenant { .. } => principal.tenant.to_string(),
            // Ids cannot hold a newline: the pair is unambiguous.
            Isolation::Client { .. } => format!("{}\n{}", principal.tenant, principal.client),
        }
    }

    fn bound(&self) -> Option<(usize, Duration)> {
        match *self {
            Isolation::Shared => None,
            Isolation::Tenant {
                max_processes,
                idle,
            }
            | Isolation::Client {
                max_processes,
                idle,
            } => Some((max_processes, idle)),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Isolation::Shared => "shared",
            Isolation::Tenant { .. } => "tenant",
            Isolation::Client { .. } => "client",
        }
    }
}

/// One stdio server's processes.
#[derive(Debug)]
pub struct Group {
    server_id: Arc<str>,
    spec: Spec,
    isolation: Isolation,
    timeout: Duration,
    metrics: Arc<Metrics>,
    members: Mutex<Members>,
    started: AtomicBool,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Members {
    by_key: HashMap<String, Member>,
    /// Set once the group is stopped or retired: nothing new starts.
    closed: bool,
}

#[derive(Debug)]
struct Member {
    process: Arc<Process>,
    /// Leases held now.
    leases: usize,
    /// When a lease was last returned, or the member was last seen busy.
    last_used: Instant,
}

/// A request's hold on its process; see the module doc.
#[derive(Debug)]
pub struct Lease {
    group: Arc<Group>,
    key: String,
    process: Arc<Process>,
}

impl Lease {
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut members = self.group.lock();
        if let Some(member) = members.by_key.get_mut(&self.key)
            && Arc::ptr_eq(&member.process, &self.process)
        {
            member.leases = member.leases.saturating_sub(1);
            member.last_used = Instant::now();
        }
    }
}

impl Group {
    pub fn new(
        server_id: &str,
        spec: Spec,
        isolation: Isolation,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Group> {
        Arc::new(Group {
            server_id: server_id.into(),
            spec,
            isolation,
            timeout,
            metrics,
            members: Mutex::default(),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// The configuration using this group was applied: a shared process starts now, so it
    /// is ready before the first request; isolated ones start with their first request,
    /// and the reaper begins. Idempotent.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.isolation.bound() {
            None => drop(self.lease(&Principal::gateway())),
            Some((_, idle)) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(Arc::clone(self).reap(idle));
                }
            }
        }
    }

    /// The process for `principal`, started if it has none; refused beyond
    /// `max_processes` and once the group is stopped.
    pub fn lease(self: &Arc<Self>, principal: &Principal) -> Result<Lease, Failure> {
        let key = self.isolation.key(principal);
        let mut members = self.lock();
        if members.closed {
            return Err(Failure::bad_gateway(format!(
                "the stdio server {} is stopped",
                self.server_id
            )));
        }
        if let Some(member) = members.by_key.get_mut(&key) {
            member.leases += 1;
            return Ok(Lease {
                group: Arc::clone(self),
                key,
                process: Arc::clone(&member.process),
            });
        }
        if let Some((max, _)) = self.isolation.bound()
            && members.by_key.len() >= max
        {
            drop(members);
            self.metrics
                .stdio_refused
                .with_label_values(&[&*self.server_id])
                .inc();
            return Err(Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the stdio server {} runs one process per {} and all {max} \
                     (max_processes) are in use; try again when one has been idle",
                    self.server_id,
                    self.isolation.name()
                ),
            });
        }
        let process = Process::new(
            &self.server_id,
            self.spec.clone(),
            self.timeout,
            Arc::clone(&self.metrics),
            self.isolation == Isolation::Shared,
        );
        process.start();
        members.by_key.insert(
            key.clone(),
            Member {
                process: Arc::clone(&process),
                leases: 1,
                last_used: Instant::now(),
            },
        );
        self.report(&members);
        if self.isolation != Isolation::Shared {
            tracing::info!(
                server = %self.server_id,
                isolation = self.isolation.name(),
                processes = members.by_key.len(),
                "started a stdio server process for a new {}",
                self.isolation.name()
            );
        }
        Ok(Lease {
            group: Arc::clone(self),
            key,
            process,
        })
    }

    /// Stop every process once it has no outstanding request, or after `drain`.
    pub fn retire(&self, drain: Duration) {
        for process in self.close() {
            process.retire(drain);
        }
    }

    /// Stop every process now; pending callers get an error.
    pub fn stop(&self) {
        for process in self.close() {
            process.stop();
        }
    }

    /// Returns once every process is stopped.
    pub async fn stopped(&self) {
        let processes: Vec<Arc<Process>> = self
            .lock()
            .by_key
            .values()
            .map(|member| Arc::clone(&member.process))
            .collect();
        for process in processes {
            process.stopped().await;
        }
    }

    /// End every `GET` stream.
    pub fn close_streams(&self) {
        for member in self.lock().by_key.values() {
            member.process.listeners().close_all();
        }
    }

    /// How many processes the group has now.
    pub fn processes(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Accept nothing new; the processes to stop. They stay listed so `stopped` can wait.
    fn close(&self) -> Vec<Arc<Process>> {
        self.stop.cancel();
        if self.isolation != Isolation::Shared {
            let _ = self
                .metrics
                .stdio_processes
                .remove_label_values(&[&*self.server_id]);
        }
        let mut members = self.lock();
        members.closed = true;
        members
            .by_key
            .values()
            .map(|member| Arc::clone(&member.process))
            .collect()
    }

    /// Stop processes idle for `idle`, until the group is stopped.
    async fn reap(self: Arc<Self>, idle: Duration) {
        // A process is stopped between `idle` and `idle` + one tick after its last use.
        let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let now = Instant::now();
            let idle_ones: Vec<Arc<Process>> = {
                let mut members = self.lock();
                let mut reaped = Vec::new();
                members.by_key.retain(|_, member| {
                    if member.leases > 0 || member.process.busy() {
                        member.last_used = now;
                        return true;
                    }
                    if now.saturating_duration_since(member.last_used) < idle {
                        return true;
                    }
                    reaped.push(Arc::clone(&member.process));
                    false
                });
                if !reaped.is_empty() {
                    self.report(&members);
                }
                reaped
            };
            for process in idle_ones {
                tracing::info!(
                    server = %self.server_id,
                    idle = %humantime::format_duration(idle),
                    "stopping an idle stdio server process"
                );
                process.stop();
            }
        }
    }

    fn report(&self, members: &Members) {
        if self.isolation != Isolation::Shared {
            self.metrics
                .stdio_processes
                .with_label_values(&[&*self.server_id])
                .set(i64::try_from(members.by_key.len()).unwrap_or(i64::MAX));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn principal(tenant: &str, client: &str) -> Principal {
        Principal {
            tenant: tenant.into(),
            client: client.into(),
        }
    }

    fn group(isolation: Isolation) -> Arc<Group> {
        // A program that cannot start: the group's bookkeeping is what is tested.
        let spec = Spec {
            command: "/nonexistent/conduit-test-no-such-server".into(),
            args: Vec::new(),
            env: BTreeMap::new(),
        };
        Group::new(
            "iso",
            spec,
            isolation,
            Duration::from_secs(1),
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn keys_separate_what_the_isolation_separates() {
        let a1 = principal("a", "1");
        let a2 = principal("a", "2");
        let b1 = principal("b", "1");
        let idle = Duration::from_secs(1);
        let shared = Isolation::Shared;
        let tenant = Isolation::Tenant {
            max_processes: 1,
            idle,
        };
        let client = Isolation::Client {
            max_processes: 1,
            idle,
        };
        assert_eq!(shared.key(&a1), shared.key(&b1));
        assert_eq!(tenant.key(&a1), tenant.key(&a2));
        assert_ne!(tenant.key(&a1), tenant.key(&b1));
        assert_ne!(client.key(&a1), client.key(&a2));
        assert_ne!(client.key(&a1), client.key(&b1));
    }

    #[tokio::test(start_paused = true)]
    async fn processes_are_bounded_and_idle_ones_reaped() {
        let idle = Duration::from_secs(60);
        let group = group(Isolation::Tenant {
            max_processes: 2,
            idle,
        });
        group.start();
        let a = group.lease(&principal("a", "x")).expect("first tenant");
        let again = group.lease(&principal("a", "y")).expect("same tenant");
        assert!(Arc::ptr_eq(a.process(), again.process()));
        let b = group.lease(&principal("b", "x")).expect("second tenant");
        assert!(!Arc::ptr_eq(a.process(), b.process()));
        let refused = group
            .lease(&principal("c", "x"))
            .expect_err("over the bound");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused.message.contains("max_processes"),
            "{}",
            refused.message
        );
        assert_eq!(
            group
                .metrics
                .stdio_refused
                .with_label_values(&["iso"])
                .get(),
            1
        );

        // A held lease keeps its process however long it is held.
        drop((again, b));
        tokio::time::sleep(idle * 3).await;
        assert_eq!(group.processes(), 1, "b was reaped, a is leased");
        let c = group.lease(&principal("c", "x")).expect("b's slot is free");
        drop((a, c));
        tokio::time::sleep(idle / 2).await;
        assert_eq!(group.processes(), 2, "not idle long enough");
        tokio::time::sleep(idle * 2).await;
        assert_eq!(group.processes(), 0);
        assert_eq!(
            group
                .metrics
                .stdio_processes
                .with_label_values(&["iso"])
                .get(),
            0
        );

        group.stop();
        assert!(group.lease(&principal("a", "x")).is_err(), "stopped");
    }
}
