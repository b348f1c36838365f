use conduit_proto::v1::{DataPlaneMessage, data_plane_message};
use prost::Message as _;

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

/// A record whose arguments take `bytes` bytes.
fn sized(n: usize, bytes: usize) -> AuditRecord {
    AuditRecord {
        arguments_json: "x".repeat(bytes),
        ..record(n)
    }
}

/// Encoded bytes of `batch` in its stream message, as the control plane decodes it.
fn on_the_wire(batch: &AuditBatch) -> usize {
    DataPlaneMessage {
        kind: Some(data_plane_message::Kind::AuditBatch(batch.clone())),
    }
    .encoded_len()
}

#[test]
fn the_byte_bound_drops_records_and_counts_them() {
    let metrics = Metrics::new();
    let one = framed_len(&sized(0, 20_000));
    let small = framed_len(&record(4));
    let queue = Queue::with_limits(&metrics, CAPACITY, 3 * one + small);
    for n in 0..3 {
        assert!(queue.push(sized(n, 20_000)), "record {n} fits");
    }
    assert!(!queue.push(sized(3, 20_000)), "a fourth is over the bytes");
    assert!(queue.push(record(4)), "a small one still fits");
    assert_eq!(metrics.audit_dropped.get(), 1);
    assert_eq!(queue.depth(), 4);
    assert_eq!(queue.depth_bytes(), 3 * one + small);
    assert_eq!(metrics.audit_queue_bytes.get(), queue.depth_bytes() as i64);
    // Sent and unacked still count; the ack makes room.
    let batch = queue.next_batch(true).expect("a batch");
    assert_eq!((batch.records.len(), batch.dropped), (4, 1));
    assert!(!queue.push(sized(5, 20_000)));
    queue.ack(batch.sequence);
    assert_eq!((queue.depth(), queue.depth_bytes()), (0, 0));
    assert_eq!(metrics.audit_queue_bytes.get(), 0);
    assert!(queue.push(sized(6, 20_000)));
}

#[test]
fn batches_are_split_by_encoded_size_well_under_the_limit() {
    let metrics = Metrics::new();
    let queue = Queue::new(&metrics);
    // Records of the largest bounded size: far fewer than BATCH_RECORDS fill a batch.
    let big = AUDIT_RECORD_MAX_BYTES - 100;
    let count = 3 * BATCH_BYTES / big;
    for n in 0..count {
        assert!(queue.push(sized(n, big)));
    }
    let mut sent = 0;
    // Full batches go without a flush: the bytes alone make them full.
    while let Some(batch) = queue.next_batch(false) {
        let bytes = on_the_wire(&batch);
        assert!(
            bytes <= BATCH_BYTES,
            "batch {} is {bytes} bytes",
            batch.sequence
        );
        assert!(
            bytes > BATCH_BYTES - 2 * AUDIT_RECORD_MAX_BYTES,
            "batch {} is only {bytes} bytes",
            batch.sequence
        );
        assert!(batch.records.len() < BATCH_RECORDS);
        sent += batch.records.len();
        queue.ack(batch.sequence);
    }
    assert!(
        sent >= count - BATCH_BYTES / big,
        "{sent} of {count} went as full batches"
    );
    let rest = queue
        .next_batch(true)
        .map_or(0, |batch| batch.records.len());
    assert_eq!(sent + rest, count);
}

#[test]
fn a_record_too_large_for_any_batch_is_dropped_and_counted() {
    let metrics = Metrics::new();
    let queue = Queue::new(&metrics);
    assert!(!queue.push(sized(1, BATCH_BYTES)));
    assert_eq!(metrics.audit_undeliverable.get(), 1);
    assert_eq!(metrics.audit_dropped.get(), 0, "not a full queue");
    assert_eq!(queue.depth(), 0);
    queue.push(record(2));
    let batch = queue.next_batch(true).expect("a batch");
    assert_eq!(
        (batch.records.len(), batch.dropped),
        (1, 1),
        "the drop is reported"
    );
}

#[test]
fn a_refused_batch_is_probed_alone_split_and_its_record_dropped() {
    let metrics = Metrics::new();
    let queue = Queue::new(&metrics);
    for n in 0..4 {
        queue.push(record(n));
    }
    queue.push(record(9));
    let first = queue.next_batch(true).expect("a batch");
    assert_eq!(first.records.len(), 5);
    // Refused while on the way with nothing else: a suspect, sent alone next time.
    assert_eq!(queue.stream_refused(), 0);
    queue.new_stream();
    queue.push(record(10));
    assert_eq!(queue.next_batch(true), Some(first.clone()));
    assert_eq!(queue.next_batch(true), None, "suspects go one at a time");
    // Refused again, alone: split in halves (2 + 3), new sequences.
    assert_eq!(queue.stream_refused(), 0);
    queue.new_stream();
    let half = queue.next_batch(true).expect("the first half");
    assert_eq!((half.sequence, ids(&half)), (2, (0, 1)));
    assert_eq!(half.dropped, first.dropped);
    assert_eq!(queue.next_batch(true), None);
    queue.ack(half.sequence);
    let other = queue.next_batch(true).expect("the second half");
    assert_eq!((other.sequence, ids(&other)), (3, (2, 9)));
    assert_eq!(queue.stream_refused(), 0);
    queue.new_stream();
    let quarter = queue.next_batch(true).expect("a quarter");
    assert_eq!((quarter.sequence, quarter.records.len()), (4, 1));
    queue.ack(quarter.sequence);
    let culprit = queue.next_batch(true).expect("the last suspect");
    assert_eq!((culprit.sequence, culprit.records.len()), (5, 2));
    assert_eq!(queue.stream_refused(), 0);
    queue.new_stream();
    let alone = queue.next_batch(true).expect("one record");
    assert_eq!(ids(&alone), (3, 3));
    assert_eq!(queue.next_batch(true), None);
    queue.ack(alone.sequence);
    let last = queue.next_batch(true).expect("record 9 alone");
    assert_eq!(ids(&last), (9, 9));
    // Record 9 is what the control plane refuses: dropped, counted, reported.
    assert_eq!(queue.stream_refused(), 1);
    assert_eq!(metrics.audit_undeliverable.get(), 1);
    assert_eq!(queue.depth(), 1, "record 10 waits");
    queue.new_stream();
    let after = queue
        .next_batch(true)
        .expect("the new records, in a normal window");
    assert_eq!((ids(&after), after.dropped), ((10, 10), 1));
    queue.ack(after.sequence);
    assert_eq!((queue.depth(), queue.depth_bytes()), (0, 0));
    assert_eq!(metrics.audit_queue_depth.get(), 0);
    assert_eq!(metrics.audit_queue_bytes.get(), 0);
}

#[test]
fn a_refusal_with_several_batches_on_the_way_only_marks_them() {
    let metrics = Metrics::new();
    let queue = Queue::new(&metrics);
    for n in 0..BATCH_RECORDS * 2 {
        queue.push(record(n));
    }
    let a = queue.next_batch(false).expect("a");
    let b = queue.next_batch(false).expect("b");
    assert_eq!(queue.stream_refused(), 0);
    queue.new_stream();
    assert_eq!(queue.next_batch(true), Some(a.clone()));
    assert_eq!(queue.next_batch(true), None);
    queue.ack(a.sequence);
    assert_eq!(queue.next_batch(true), Some(b.clone()));
    queue.ack(b.sequence);
    assert_eq!(metrics.audit_undeliverable.get(), 0);
    assert_eq!(queue.depth(), 0);
}
