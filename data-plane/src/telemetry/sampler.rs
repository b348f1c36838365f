//! Which requests are traced, and the ids their spans carry.
//!
//! [`RatioSampler`]: a caller's *sampled* `traceparent` is followed (its trace is being
//! recorded, so the gateway's hop must be too, or the trace has a hole); every other request,
//! including one whose caller sent an unsampled `traceparent`, is sampled by
//! `observability.opentelemetry.sample_rate` on its trace id. Deciding on the trace id (not a
//! coin toss) gives every data plane the same answer for one trace. Many clients send an
//! unsampled `traceparent` only because they propagate a context without recording
//! anything; following it would make the gateway's `sample_rate` meaningless for them.
//! Spans inside the request (auth, policy, upstream) have a local parent and share its
//! decision.
//!
//! [`RequestIds`]: a request without a caller's `traceparent` already has a trace id (from
//! `X-Conduit-Trace-Id` or generated, see `trace_context`), returned to the caller and
//! written into audit records. The exported trace must carry that same id, but the SDK
//! draws the trace id of a root span from its id generator; so the request span's id is
//! handed to the generator through a thread-local slot, set just before the (synchronous)
//! span start and taken by it.

use std::cell::Cell;

use opentelemetry::trace::{Link, SpanId, SpanKind, TraceContextExt as _, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SamplingResult, ShouldSample,
};

/// Follows a sampled parent, else samples `rate` of the trace ids.
#[derive(Debug, Clone)]
pub(crate) struct RatioSampler {
    ratio: Sampler,
}

impl RatioSampler {
    /// `rate` is clamped to 0..=1 (the config is validated; this keeps the sampler total).
    pub(crate) fn new(rate: f64) -> RatioSampler {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        RatioSampler {
            ratio: Sampler::TraceIdRatioBased(rate),
        }
    }
}

impl ShouldSample for RatioSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone())
            .filter(|parent| parent.is_valid());
        match parent {
            Some(parent) if parent.is_sampled() => SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            },
            // A local parent that was not sampled: its children are not either.
            Some(parent) if !parent.is_remote() => SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            },
            _ => {
                let mut result = self.ratio.should_sample(
                    parent_context,
                    trace_id,
                    name,
                    span_kind,
                    attributes,
                    links,
                );
                if let Some(parent) = parent {
                    result.trace_state = parent.trace_state().clone();
                } else {
                    result.trace_state = TraceState::NONE;
                }
                result
            }
        }
    }
}

thread_local! {
    /// The trace id the next root span started on this thread must have.
    static NEXT_TRACE_ID: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Random span ids; trace ids from [`with_trace_id`] when one is set.
#[derive(Debug, Default)]
pub(super) struct RequestIds {
    random: RandomIdGenerator,
}

impl IdGenerator for RequestIds {
    fn new_trace_id(&self) -> TraceId {
        match NEXT_TRACE_ID.with(Cell::take) {
            Some(id) => TraceId::from(id),
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

/// Run `start` (a synchronous span start) so that a root span it creates has `trace_id`.
/// The slot is cleared afterwards, so a span that did not need it (one with a parent, or
/// one a shut-down provider refused) cannot leak the id into another request.
pub(super) fn with_trace_id<T>(trace_id: u128, start: impl FnOnce() -> T) -> T {
    NEXT_TRACE_ID.with(|slot| slot.set(Some(trace_id)));
    let started = start();
    NEXT_TRACE_ID.with(|slot| slot.set(None));
    started
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, TraceFlags};

    use super::*;

    fn decide(sampler: &RatioSampler, parent: Option<SpanContext>, trace_id: u128) -> bool {
        let cx = match parent {
            Some(parent) => Context::new().with_remote_span_context(parent),
            None => Context::new(),
        };
        let result = sampler.should_sample(
            Some(&cx),
            TraceId::from(trace_id),
            "mcp.request",
            &SpanKind::Server,
            &[],
            &[],
        );
        result.decision == SamplingDecision::RecordAndSample
    }

    fn remote(sampled: bool, remote: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            remote,
            TraceState::NONE,
        )
    }

    #[test]
    fn a_sampled_parent_is_followed_whatever_the_rate() {
        let never = RatioSampler::new(0.0);
        assert!(decide(&never, Some(remote(true, true)), 7));
        assert!(!decide(&never, Some(remote(false, true)), 7));
        assert!(!decide(&never, None, u128::MAX));
    }

    #[test]
    fn an_unsampled_remote_parent_is_decided_by_the_rate() {
        let always = RatioSampler::new(1.0);
        assert!(decide(&always, Some(remote(false, true)), 7));
        assert!(decide(&always, None, 7));
        // A local unsampled parent keeps its children out too.
        assert!(!decide(&always, Some(remote(false, false)), 7));
    }

    #[test]
    fn the_rate_decides_on_the_trace_id() {
        let half = RatioSampler::new(0.5);
        // The SDK compares the low 64 bits of the trace id (shifted to 63) against
        // rate × 2^63: small ids are sampled, large ones are not, on every call.
        let low = 1u128;
        let high = u128::from(u64::MAX);
        for _ in 0..3 {
            assert!(decide(&half, None, low));
            assert!(!decide(&half, None, high));
        }
        let sampled = (0..2000u128)
            .filter(|_| decide(&half, None, rand::random::<u128>()))
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 2000 sampled");
        // Out-of-range rates are clamped, not errors.
        assert!(decide(&RatioSampler::new(7.0), None, high));
        assert!(!decide(&RatioSampler::new(f64::NAN), None, low));
    }

    #[test]
    fn a_root_span_gets_the_requested_trace_id_once() {
        let ids = RequestIds::default();
        let id = with_trace_id(0xabc, || ids.new_trace_id());
        assert_eq!(id, TraceId::from(0xabcu128));
        // Unused slots are cleared: the next trace id is random.
        with_trace_id(0xdef, || ());
        assert_ne!(ids.new_trace_id(), TraceId::from(0xdefu128));
    }
}
