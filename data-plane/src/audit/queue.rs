//! Audit records waiting for the control plane, and the batches sent but not yet acked.
//!
//! The request path only [`push`](Queue::push)es: a short lock, never a wait. The config
//! stream session takes batches of at most [`BATCH_RECORDS`] off the queue, keeps each one
//! until the control plane acks its sequence (it stores the records first), and sends the
//! unacked ones again, first, on the next stream: one sent just before a stream broke may
//! never have arrived, and the control plane ignores record ids it already has. Waiting and
//! unacked records together are bounded by [`CAPACITY`]; beyond it new records are dropped
//! and counted, reported with the next batch.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use conduit_proto::v1::{AuditBatch, AuditRecord};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Records held (waiting or sent and unacked) before new ones are dropped, by default.
pub const CAPACITY: usize = 10_000;
/// Most records in one batch.
pub const BATCH_RECORDS: usize = 500;
/// Longest a record waits for a batch to fill while a stream is open.
pub const BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Batches sent on one stream and not yet acked, at most: the control plane stores a
/// stream's batches in order from a short queue (16) and refuses what does not fit, so a
/// data plane never has more than this many on the way (acks open the window again).
pub const IN_FLIGHT: usize = 8;
/// How long batches on the way may go without an ack before they are sent again on the
/// same stream: the control plane does not ack a batch it could not store (a database
/// error), and waiting for the next stream could take hours.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<AuditRecord>,
    /// Sent (or to send again) and not acked, oldest first.
    unacked: VecDeque<AuditBatch>,
    unacked_records: usize,
    /// Batches of `unacked` already sent on the current stream.
    sent_on_stream: usize,
    /// Since when batches on the way have waited for an ack (reset by each ack).
    waiting_for_ack_since: Option<Instant>,
    /// Records dropped since the last batch was made.
    dropped: u64,
    next_sequence: u64,
}

/// The queue; shared by the request path and the stream session.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    capacity: usize,
    /// Wakes the session when a full batch is waiting.
    full_batch: Notify,
    dropped_total: IntCounter,
    depth: IntGauge,
}

impl Queue {
    pub fn new(metrics: &Metrics) -> Queue {
        Queue::with_capacity(metrics, CAPACITY)
    }

    /// A queue holding at most `capacity` records (at least one).
    pub fn with_capacity(metrics: &Metrics, capacity: usize) -> Queue {
        Queue {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                next_sequence: 1,
                ..State::default()
            }),
            full_batch: Notify::new(),
            dropped_total: metrics.audit_dropped.clone(),
            depth: metrics.audit_queue_depth.clone(),
        }
    }

    /// Queue `record`; `false` when it was dropped because the queue is full.
    pub fn push(&self, record: AuditRecord) -> bool {
        let waiting = {
            let mut state = self.lock();
            if state.pending.len() + state.unacked_records >= self.capacity {
                state.dropped += 1;
                drop(state);
                self.dropped_total.inc();
                return false;
            }
            state.pending.push_back(record);
            state.pending.len()
        };
        self.depth.inc();
        if waiting == BATCH_RECORDS {
            self.full_batch.notify_one();
        }
        true
    }

    /// Resolves when a full batch is waiting (a permit is kept if nobody waits yet).
    pub async fn full_batch(&self) {
        self.full_batch.notified().await;
    }

    /// A new stream is open: every unacked batch is sent again, before new ones.
    pub fn new_stream(&self) {
        let mut state = self.lock();
        state.sent_on_stream = 0;
        state.waiting_for_ack_since = None;
    }

    /// The next batch to send on the current stream: an unacked one not yet sent on it,
    /// else a new one when [`BATCH_RECORDS`] wait, or (with `flush`) when anything waits.
    /// `None` when there is nothing to send or [`IN_FLIGHT`] batches await an ack.
    pub fn next_batch(&self, flush: bool) -> Option<AuditBatch> {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .waiting_for_ack_since
            .is_some_and(|since| now.duration_since(since) >= ACK_TIMEOUT)
        {
            // Everything on the way goes again; the control plane ignores what it has.
            state.sent_on_stream = 0;
            state.waiting_for_ack_since = None;
        }
        if state.sent_on_stream >= IN_FLIGHT {
            return None;
        }
        if let Some(batch) = state.unacked.get(state.sent_on_stream) {
            let batch = batch.clone();
            state.sent_on_stream += 1;
            state.waiting_for_ack_since.get_or_insert(now);
            return Some(batch);
        }
        let worth_sending = state.pending.len() >= BATCH_RECORDS
            || (flush && (!state.pending.is_empty() || state.dropped > 0));
        if !worth_sending {
            return None;
        }
        let take = state.pending.len().min(BATCH_RECORDS);
        let records: Vec<AuditRecord> = state.pending.drain(..take).collect();
        let batch = AuditBatch {
            sequence: state.next_sequence,
            records,
            dropped: std::mem::take(&mut state.dropped),
        };
        state.next_sequence += 1;
        state.unacked_records += batch.records.len();
        state.unacked.push_back(batch.clone());
        state.sent_on_stream = state.unacked.len();
        state.waiting_for_ack_since.get_or_insert(now);
        Some(batch)
    }

    /// The control plane stored batch `sequence`: forget it.
    pub fn ack(&self, sequence: u64) {
        let removed = {
            let mut state = self.lock();
            let Some(index) = state.unacked.iter().position(|b| b.sequence == sequence) else {
                return;
            };
            let batch = state.unacked.remove(index).expect("index is in range");
            if index < state.sent_on_stream {
                state.sent_on_stream -= 1;
            }
            state.waiting_for_ack_since = (state.sent_on_stream > 0).then(Instant::now);
            state.unacked_records -= batch.records.len();
            batch.records.len()
        };
        self.depth.sub(i64::try_from(removed).unwrap_or(i64::MAX));
    }

    /// Records waiting or sent and unacked.
    pub fn depth(&self) -> usize {
        let state = self.lock();
        state.pending.len() + state.unacked_records
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only plain queue operations happen under the lock; a panic cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> AuditRecord {
        AuditRecord {
            id: format!("{n:032x}"),
            ..AuditRecord::default()
        }
    }

    fn ids(batch: &AuditBatch) -> (usize, usize) {
        let first = usize::from_str_radix(&batch.records[0].id, 16).unwrap();
        let last = usize::from_str_radix(&batch.records.last().unwrap().id, 16).unwrap();
        (first, last)
    }

    #[tokio::test(start_paused = true)]
    async fn batches_not_acked_in_time_go_again_on_the_same_stream() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        queue.push(record(1));
        queue.push(record(2));
        let first = queue.next_batch(true).expect("a batch");
        assert!(
            queue.next_batch(true).is_none(),
            "sent, waiting for its ack"
        );

        tokio::time::advance(ACK_TIMEOUT - Duration::from_secs(1)).await;
        assert!(queue.next_batch(true).is_none(), "not yet");
        tokio::time::advance(Duration::from_secs(1)).await;
        let again = queue.next_batch(true).expect("sent again");
        assert_eq!(again.sequence, first.sequence);
        assert_eq!(again.records, first.records);
        assert!(queue.next_batch(true).is_none());

        queue.ack(first.sequence);
        assert_eq!(queue.depth(), 0);
        tokio::time::advance(ACK_TIMEOUT * 2).await;
        assert!(queue.next_batch(true).is_none(), "nothing left to send");
    }

    #[test]
    fn at_most_in_flight_batches_await_an_ack_and_acks_open_the_window() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        for n in 0..BATCH_RECORDS * (IN_FLIGHT + 2) {
            assert!(queue.push(record(n)));
        }
        let sent: Vec<u64> = std::iter::from_fn(|| queue.next_batch(true))
            .map(|batch| batch.sequence)
            .collect();
        assert_eq!(sent, (1..=IN_FLIGHT as u64).collect::<Vec<_>>());
        queue.ack(1);
        let next = queue.next_batch(true).expect("the window opened");
        assert_eq!(next.sequence, IN_FLIGHT as u64 + 1);
        assert!(queue.next_batch(true).is_none(), "full again");

        // A new stream sends the unacked batches again, within the same window.
        queue.new_stream();
        let resent: Vec<u64> = std::iter::from_fn(|| queue.next_batch(true))
            .map(|batch| batch.sequence)
            .collect();
        assert_eq!(resent, (2..=IN_FLIGHT as u64 + 1).collect::<Vec<_>>());
    }

    #[test]
    fn full_batches_go_at_once_partial_ones_on_flush() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        for n in 0..BATCH_RECORDS + 10 {
            assert!(queue.push(record(n)));
        }
        let batch = queue.next_batch(false).expect("a full batch");
        assert_eq!((batch.sequence, batch.records.len()), (1, BATCH_RECORDS));
        assert_eq!(ids(&batch), (0, BATCH_RECORDS - 1));
        assert!(
            queue.next_batch(false).is_none(),
            "10 records wait for the flush"
        );
        let batch = queue.next_batch(true).expect("flushed");
        assert_eq!((batch.sequence, batch.records.len()), (2, 10));
        assert!(queue.next_batch(true).is_none());
        // Unacked records still count.
        assert_eq!(queue.depth(), BATCH_RECORDS + 10);
        assert_eq!(metrics.audit_queue_depth.get(), (BATCH_RECORDS + 10) as i64);
    }

    #[test]
    fn acked_batches_are_forgotten_and_unacked_ones_resent_first() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        for n in 0..3 {
            queue.push(record(n));
        }
        let first = queue.next_batch(true).unwrap();
        queue.push(record(3));
        let second = queue.next_batch(true).unwrap();
        queue.ack(first.sequence);
        assert_eq!(queue.depth(), 1);
        assert_eq!(metrics.audit_queue_depth.get(), 1);
        // A new stream: the unacked batch again, as it was, then the new records.
        queue.push(record(4));
        queue.new_stream();
        assert_eq!(queue.next_batch(false), Some(second.clone()));
        let third = queue.next_batch(true).unwrap();
        assert_eq!(third.sequence, second.sequence + 1);
        assert_eq!(ids(&third), (4, 4));
        queue.ack(second.sequence);
        queue.ack(third.sequence);
        queue.ack(third.sequence);
        assert_eq!(queue.depth(), 0);
        assert_eq!(metrics.audit_queue_depth.get(), 0);
    }

    #[test]
    fn a_full_queue_drops_new_records_and_reports_them_once() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        for n in 0..CAPACITY {
            assert!(queue.push(record(n)));
        }
        assert!(!queue.push(record(CAPACITY)));
        assert!(!queue.push(record(CAPACITY + 1)));
        assert_eq!(metrics.audit_dropped.get(), 2);
        assert_eq!(queue.depth(), CAPACITY);
        let batch = queue.next_batch(false).unwrap();
        assert_eq!(batch.dropped, 2);
        assert_eq!(ids(&batch).0, 0, "the oldest records are kept");
        // Sent but unacked: still no room.
        assert!(!queue.push(record(0)));
        queue.ack(batch.sequence);
        assert!(queue.push(record(0)));
        let next = queue.next_batch(false).unwrap();
        assert_eq!(next.dropped, 1, "only drops since the previous batch");
    }

    #[test]
    fn a_smaller_capacity_drops_sooner() {
        let metrics = Metrics::new();
        let queue = Queue::with_capacity(&metrics, 3);
        let kept = (0..5).filter(|n| queue.push(record(*n))).count();
        assert_eq!((kept, metrics.audit_dropped.get()), (3, 2));
    }

    #[test]
    fn a_control_plane_that_never_acks_holds_a_bounded_number_of_batches() {
        let metrics = Metrics::new();
        let queue = Queue::new(&metrics);
        let mut sequences = std::collections::BTreeSet::new();
        for stream in 0..3 {
            queue.new_stream();
            for n in 0..IN_FLIGHT + 5 {
                queue.push(record(stream * 100 + n));
                if let Some(batch) = queue.next_batch(true) {
                    sequences.insert(batch.sequence);
                }
            }
        }
        assert_eq!(sequences.len(), IN_FLIGHT, "{sequences:?}");
        assert_eq!(queue.depth(), 3 * (IN_FLIGHT + 5));
    }
}
