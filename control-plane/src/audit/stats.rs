//! AuditStats arithmetic: request and error counts are exact (every matching record); latency
//! percentiles are computed here from the durations of the matching records.
//!
//! The work is bounded: percentiles use at most [`SAMPLE_CAP`] durations (the newest
//! matching records) and at most [`MAX_GROUPS`] groups are returned (most requests first).
//! Counts always cover the whole window; only the latency figures of a window larger than
//! the cap describe its newest part.

use std::collections::HashMap;

use super::db::GroupCount;

/// Most durations read for one stats query (8 bytes each plus the key; a few MB).
pub const SAMPLE_CAP: u32 = 200_000;
/// Most groups one stats query returns.
pub const MAX_GROUPS: u32 = 1_000;

/// One row of an AuditStats answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    pub key: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// The whole AuditStats answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub total: StatsRow,
    pub groups: Vec<StatsRow>,
}

/// Combine the exact counts with percentiles of the sampled `(key, duration µs)` pairs.
pub fn assemble(total: GroupCount, groups: Vec<GroupCount>, samples: Vec<(String, u64)>) -> Stats {
    let mut all: Vec<u64> = samples.iter().map(|(_, micros)| *micros).collect();
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    for (key, micros) in samples {
        by_key.entry(key).or_default().push(micros);
    }
    let total = row(total, &mut all);
    let groups = groups
        .into_iter()
        .map(|count| {
            let mut durations = by_key.remove(&count.key).unwrap_or_default();
            row(count, &mut durations)
        })
        .collect();
    Stats { total, groups }
}

fn row(count: GroupCount, durations: &mut [u64]) -> StatsRow {
    durations.sort_unstable();
    StatsRow {
        key: count.key,
        requests: count.requests,
        errors: count.errors,
        p50_ms: percentile_ms(durations, 50),
        p95_ms: percentile_ms(durations, 95),
        p99_ms: percentile_ms(durations, 99),
    }
}

/// Nearest-rank percentile `p` (1..=100) of sorted microsecond durations, in ms; 0 when
/// there are none.
pub fn percentile_ms(sorted_micros: &[u64], p: usize) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_micros.len()).div_ceil(100).max(1);
    sorted_micros[rank - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let micros: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&micros, 50), 50.0);
        assert_eq!(percentile_ms(&micros, 95), 95.0);
        assert_eq!(percentile_ms(&micros, 99), 99.0);
        assert_eq!(percentile_ms(&[1500], 99), 1.5);
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 50), 2.0);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }

    #[test]
    fn groups_get_their_own_samples() {
        let count = |key: &str, requests, errors| GroupCount {
            key: key.to_owned(),
            requests,
            errors,
        };
        let samples = vec![
            ("a".to_owned(), 3000),
            ("b".to_owned(), 10_000),
            ("a".to_owned(), 1000),
            ("a".to_owned(), 2000),
        ];
        let stats = assemble(
            count("", 4, 1),
            vec![count("a", 3, 0), count("b", 1, 1)],
            samples,
        );
        assert_eq!(stats.total.requests, 4);
        assert_eq!(stats.total.p50_ms, 2.0);
        assert_eq!(stats.total.p99_ms, 10.0);
        assert_eq!(stats.groups[0].key, "a");
        assert_eq!((stats.groups[0].p50_ms, stats.groups[0].p99_ms), (2.0, 3.0));
        assert_eq!((stats.groups[1].errors, stats.groups[1].p50_ms), (1, 10.0));
    }
}
