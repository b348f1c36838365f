//! Approval requests waiting for the config stream. The request path only pushes (never
//! waits); the stream session takes them off and sends them. While the stream is down up
//! to [`CAPACITY`] requests wait (the oldest is dropped, and counted, beyond that). Requests
//! sent recently are kept too and sent again on the next stream, because one sent just
//! before a stream broke may never have arrived; the control plane ignores duplicate ids.
//!
//! Grant uses wait here too, one report per grant carrying this data plane's count (a
//! newer count replaces an unsent older one, and the control plane keeps the highest).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use conduit_proto::v1 as pb;
use tokio::sync::Notify;

/// Requests waiting to be sent.
pub(crate) const CAPACITY: usize = 1024;
/// Requests kept after sending, for the next stream.
const RESEND: usize = 256;

#[derive(Debug, Default)]
struct Queues {
    pending: VecDeque<pb::ApprovalRequest>,
    sent: VecDeque<pb::ApprovalRequest>,
    /// Grant id → this data plane's use count, waiting to be sent.
    uses: BTreeMap<String, u32>,
}

/// The queue; shared by the request path and the stream session.
#[derive(Debug, Default)]
pub struct Outbox {
    queues: Mutex<Queues>,
    ready: Notify,
}

impl Outbox {
    /// Queue `request`; returns whether an older request had to be dropped for room.
    pub fn push(&self, request: pb::ApprovalRequest) -> bool {
        let dropped = {
            let mut queues = self.lock();
            let dropped = queues.pending.len() >= CAPACITY;
            if dropped {
                queues.pending.pop_front();
            }
            queues.pending.push_back(request);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// The next request to send; it is remembered for [`Outbox::resend`].
    pub fn pop(&self) -> Option<pb::ApprovalRequest> {
        let mut queues = self.lock();
        let request = queues.pending.pop_front()?;
        if queues.sent.len() >= RESEND {
            queues.sent.pop_front();
        }
        queues.sent.push_back(request.clone());
        Some(request)
    }

    /// Queue a use report: grant `id` has been used `count` times on this data plane.
    pub fn report_use(&self, id: &str, count: u32) {
        {
            let mut queues = self.lock();
            let waiting = queues.uses.entry(id.to_owned()).or_insert(0);
            *waiting = (*waiting).max(count);
        }
        self.ready.notify_one();
    }

    /// The next use report to send.
    pub fn pop_use(&self) -> Option<pb::ApprovalUse> {
        let (id, count) = self.lock().uses.pop_first()?;
        Some(pb::ApprovalUse { id, count })
    }

    /// Resolves when something was pushed since the last wake-up.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// A new stream opened: queue the recently sent requests that have not expired at
    /// `now` (unix seconds) again, ahead of the waiting ones.
    pub fn resend(&self, now: i64) {
        let mut queues = self.lock();
        let sent: Vec<_> = queues
            .sent
            .drain(..)
            .filter(|r| r.expires_at > now)
            .collect();
        for request in sent.into_iter().rev() {
            if queues.pending.len() >= CAPACITY {
                break;
            }
            queues.pending.push_front(request);
        }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // Only plain queue operations happen under the lock; a panic cannot leave it torn.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: usize, expires_at: i64) -> pb::ApprovalRequest {
        pb::ApprovalRequest {
            id: format!("apr_{id}"),
            expires_at,
            ..Default::default()
        }
    }

    #[test]
    fn bounded_in_order_and_resent_after_a_reconnect() {
        let outbox = Outbox::default();
        for id in 0..CAPACITY {
            assert!(!outbox.push(request(id, 100)));
        }
        assert!(outbox.push(request(CAPACITY, 100)), "the oldest is dropped");
        assert_eq!(outbox.len(), CAPACITY);
        assert_eq!(outbox.pop().unwrap().id, "apr_1");
        assert_eq!(outbox.pop().unwrap().id, "apr_2");
        // A new stream: both go again, first; expired ones do not.
        outbox.push(request(9999, 5));
        let outbox2 = Outbox::default();
        outbox2.push(request(1, 100));
        outbox2.push(request(2, 5));
        outbox2.pop();
        outbox2.pop();
        outbox2.push(request(3, 100));
        outbox2.resend(10);
        let ids: Vec<String> = std::iter::from_fn(|| outbox2.pop()).map(|r| r.id).collect();
        assert_eq!(ids, ["apr_1", "apr_3"]);
    }

    #[tokio::test]
    async fn use_reports_keep_the_highest_count_per_grant() {
        let outbox = Outbox::default();
        outbox.report_use("apr_b", 2);
        outbox.report_use("apr_a", 1);
        outbox.report_use("apr_b", 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.ready())
            .await
            .expect("a report wakes the sender");
        let sent: Vec<(String, u32)> = std::iter::from_fn(|| outbox.pop_use())
            .map(|used| (used.id, used.count))
            .collect();
        assert_eq!(sent, [("apr_a".to_owned(), 1), ("apr_b".to_owned(), 2)]);
        assert!(outbox.is_empty(), "requests are counted apart");
    }

    #[tokio::test]
    async fn a_push_wakes_the_sender_even_before_it_waits() {
        let outbox = Outbox::default();
        outbox.push(request(1, 100));
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.ready())
            .await
            .expect("the permit was stored");
    }
}
