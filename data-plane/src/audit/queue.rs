//! Audit records waiting for the control plane, and the batches sent but not yet acked.
//!
//! The request path only [`push`](Queue::push)es: a short lock, never a wait. The config
//! stream session takes batches off the queue, of at most [`BATCH_RECORDS`] records and
//! [`BATCH_BYTES`] encoded bytes (far under what the control plane decodes), keeps each
//! one until the control plane acks its sequence (it stores the records first), and sends
//! the unacked ones again, first, on the next stream: one sent just before a stream broke
//! may never have arrived, and the control plane ignores record ids it already has.
//! Waiting and unacked records together are bounded in number and in encoded bytes; beyond
//! either bound new records are dropped and counted, reported with the next batch.
//!
//! Nothing is retried forever. A record too large for any batch is dropped at once. When
//! a stream ends because the control plane refused a message as too large, the batches
//! that were on the way become suspects and go again one at a time; a suspect refused
//! while alone on the way is split in halves, and a single record refused alone is
//! dropped. Both count as undeliverable (`conduit_dp_audit_undeliverable_total`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use conduit_proto::limits::{AUDIT_BATCH_MAX_BYTES, AUDIT_RECORD_MAX_BYTES};
use conduit_proto::v1::{AuditBatch, AuditRecord};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Records held (waiting or sent and unacked) before new ones are dropped, by default.
pub const CAPACITY: usize = 10_000;
/// Encoded bytes of the records held before new ones are dropped, by default.
pub const CAPACITY_BYTES: usize = 32 * 1024 * 1024;
/// Most records in one batch.
pub const BATCH_RECORDS: usize = 500;
/// Most encoded bytes of one batch, as sent in its stream message.
pub const BATCH_BYTES: usize = AUDIT_BATCH_MAX_BYTES;
/// Room for a batch's own fields and the stream message around it.
const BATCH_FRAMING: usize = 64;
/// Bytes of waiting records that make a batch as full as it gets: the next record might
/// not fit.
const BATCH_FILL_BYTES: usize = BATCH_BYTES - BATCH_FRAMING - AUDIT_RECORD_MAX_BYTES;
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

/// A record and its encoded size inside a batch.
#[derive(Debug)]
struct Waiting {
    record: AuditRecord,
    bytes: usize,
}

/// A batch sent (or to send again) and not acked.
#[derive(Debug)]
struct Unacked {
    batch: AuditBatch,
    /// Encoded bytes of its records.
    bytes: usize,
    /// It was on the way when a stream ended with a message refused as too large.
    suspect: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Waiting>,
    pending_bytes: usize,
    /// Oldest first; the first `sent_on_stream` were sent on the current stream.
    unacked: VecDeque<Unacked>,
    unacked_records: usize,
    unacked_bytes: usize,
    /// Batches of `unacked` already sent on the current stream.
    sent_on_stream: usize,
    /// Since when batches on the way have waited for an ack (reset by each ack).
    waiting_for_ack_since: Option<Instant>,
    /// Records dropped since the last batch was made.
    dropped: u64,
    next_sequence: u64,
}

impl State {
    fn held(&self) -> (usize, usize) {
        (
            self.pending.len() + self.unacked_records,
            self.pending_bytes + self.unacked_bytes,
        )
    }

    fn batch_waits(&self) -> bool {
        self.pending.len() >= BATCH_RECORDS || self.pending_bytes >= BATCH_FILL_BYTES
    }

    /// Batches may be on the way at once: one while suspects are probed.
    fn window(&self) -> usize {
        if self.unacked.front().is_some_and(|u| u.suspect) {
            1
        } else {
            IN_FLIGHT
        }
    }
}

/// The queue; shared by the request path and the stream session.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    capacity: usize,
    capacity_bytes: usize,
    /// Wakes the session when a full batch is waiting.
    full_batch: Notify,
    dropped_total: IntCounter,
    undeliverable_total: IntCounter,
    depth: IntGauge,
    depth_bytes: IntGauge,
}

/// Bytes `record` takes inside a batch (its field tag and length prefix included).
fn framed_len(record: &AuditRecord) -> usize {
    let len = prost::Message::encoded_len(record);
    1 + prost::length_delimiter_len(len) + len
}

fn gauge(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Queue {
    pub fn new(metrics: &Metrics) -> Queue {
        Queue::with_limits(metrics, CAPACITY, CAPACITY_BYTES)
    }

    /// A queue holding at most `capacity` records (at least one).
    pub fn with_capacity(metrics: &Metrics, capacity: usize) -> Queue {
        Queue::with_limits(metrics, capacity, CAPACITY_BYTES)
    }

    /// A queue holding at most `capacity` records (at least one) of at most
    /// `capacity_bytes` encoded bytes together (at least room for one record).
    pub fn with_limits(metrics: &Metrics, capacity: usize, capacity_bytes: usize) -> Queue {
        Queue {
            capacity: capacity.max(1),
            capacity_bytes: capacity_bytes.max(AUDIT_RECORD_MAX_BYTES),
            state: Mutex::new(State {
                next_sequence: 1,
                ..State::default()
            }),
            full_batch: Notify::new(),
            dropped_total: metrics.audit_dropped.clone(),
            undeliverable_total: metrics.audit_undeliverable.clone(),
            depth: metrics.audit_queue_depth.clone(),
            depth_bytes: metrics.audit_queue_bytes.clone(),
        }
    }

    /// Queue `record`; `false` when it was dropped (the queue is full, or the record is too
    /// large for any batch).
    pub fn push(&self, record: AuditRecord) -> bool {
        let bytes = framed_len(&record);
        let mut state = self.lock();
        if bytes + BATCH_FRAMING > BATCH_BYTES {
            state.dropped += 1;
            drop(state);
            self.undeliverable_total.inc();
            tracing::warn!(bytes, "an audit record too large for any batch was dropped");
            return false;
        }
        let (records, held_bytes) = state.held();
        if records >= self.capacity || held_bytes + bytes > self.capacity_bytes {
            state.dropped += 1;
            drop(state);
            self.dropped_total.inc();
            return false;
        }
        let was_full = state.batch_waits();
        state.pending.push_back(Waiting { record, bytes });
        state.pending_bytes += bytes;
        let now_full = state.batch_waits();
        drop(state);
        self.depth.inc();
        self.depth_bytes.add(gauge(bytes));
        if now_full && !was_full {
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
    /// else a new one when a full batch waits ([`BATCH_RECORDS`] or about [`BATCH_BYTES`]),
    /// or (with `flush`) when anything waits. `None` when there is nothing to send or the
    /// window ([`IN_FLIGHT`], one while suspects are probed) awaits acks.
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
        if state.sent_on_stream >= state.window() {
            return None;
        }
        let index = state.sent_on_stream;
        if let Some(unacked) = state.unacked.get(index) {
            let batch = unacked.batch.clone();
            state.sent_on_stream += 1;
            state.waiting_for_ack_since.get_or_insert(now);
            return Some(batch);
        }
        let worth_sending =
            state.batch_waits() || (flush && (!state.pending.is_empty() || state.dropped > 0));
        if !worth_sending {
            return None;
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(next) = state.pending.front() {
            let fits = records.is_empty()
                || (records.len() < BATCH_RECORDS
                    && bytes + next.bytes + BATCH_FRAMING <= BATCH_BYTES);
            if !fits {
                break;
            }
            let Waiting {
                record,
                bytes: size,
            } = state.pending.pop_front().expect("front exists");
            bytes += size;
            records.push(record);
        }
        state.pending_bytes -= bytes;
        let batch = AuditBatch {
            sequence: state.next_sequence,
            records,
            dropped: std::mem::take(&mut state.dropped),
        };
        state.next_sequence += 1;
        state.unacked_records += batch.records.len();
        state.unacked_bytes += bytes;
        state.unacked.push_back(Unacked {
            batch: batch.clone(),
            bytes,
            suspect: false,
        });
        state.sent_on_stream = state.unacked.len();
        state.waiting_for_ack_since.get_or_insert(now);
        Some(batch)
    }

    /// The control plane stored batch `sequence`: forget it.
    pub fn ack(&self, sequence: u64) {
        let (records, bytes) = {
            let mut state = self.lock();
            let Some(index) = state
                .unacked
                .iter()
                .position(|u| u.batch.sequence == sequence)
            else {
                return;
            };
            let unacked = state.unacked.remove(index).expect("index is in range");
            if index < state.sent_on_stream {
                state.sent_on_stream -= 1;
            }
            state.waiting_for_ack_since = (state.sent_on_stream > 0).then(Instant::now);
            state.unacked_records -= unacked.batch.records.len();
            state.unacked_bytes -= unacked.bytes;
            (unacked.batch.records.len(), unacked.bytes)
        };
        self.depth.sub(gauge(records));
        self.depth_bytes.sub(gauge(bytes));
    }

    /// The stream ended because the control plane refused one of its messages as too
    /// large. The batches that were on the way become suspects (sent again one at a
    /// time); a suspect that was alone on the way is the refused message: split in halves,
    /// or dropped when it holds one record. Returns the records dropped.
    pub fn stream_refused(&self) -> u64 {
        let (records, bytes) = {
            let mut state = self.lock();
            let on_way = state.sent_on_stream.min(state.unacked.len());
            state.sent_on_stream = 0;
            state.waiting_for_ack_since = None;
            if on_way == 0 {
                return 0;
            }
            if on_way > 1 || !state.unacked[0].suspect {
                for unacked in state.unacked.iter_mut().take(on_way) {
                    unacked.suspect = true;
                }
                return 0;
            }
            let culprit = state.unacked.pop_front().expect("one is on the way");
            if culprit.batch.records.len() > 1 {
                let (first, second) = split(&mut state, culprit);
                state.unacked.push_front(second);
                state.unacked.push_front(first);
                tracing::warn!("an audit batch refused as too large is split in halves");
                return 0;
            }
            let records = culprit.batch.records.len();
            state.unacked_records -= records;
            state.unacked_bytes -= culprit.bytes;
            state.dropped += records as u64 + culprit.batch.dropped;
            (records, culprit.bytes)
        };
        self.undeliverable_total.inc_by(records as u64);
        self.depth.sub(gauge(records));
        self.depth_bytes.sub(gauge(bytes));
        tracing::warn!(
            records,
            bytes,
            "an audit record the control plane refused as too large was dropped"
        );
        records as u64
    }

    /// Records waiting or sent and unacked.
    pub fn depth(&self) -> usize {
        self.lock().held().0
    }

    /// Encoded bytes of the records waiting or sent and unacked.
    pub fn depth_bytes(&self) -> usize {
        self.lock().held().1
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only plain queue operations happen under the lock; a panic cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Two suspect batches of new sequences holding the halves of `batch`'s records.
fn split(state: &mut State, batch: Unacked) -> (Unacked, Unacked) {
    let mut records = batch.batch.records;
    let second = records.split_off(records.len() / 2);
    let mut half = |records: Vec<AuditRecord>, dropped: u64| {
        let bytes = records.iter().map(framed_len).sum();
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        Unacked {
            batch: AuditBatch {
                sequence,
                records,
                dropped,
            },
            bytes,
            suspect: true,
        }
    };
    let first = half(records, batch.batch.dropped);
    let second = half(second, 0);
    (first, second)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
