//! W3C Trace Context for one request: which trace it belongs to, and the `traceparent`
//! the gateway sends upstream as its own span.
//!
//! The trace id comes from the caller's `traceparent` (version `00`, strictly validated),
//! else from its `X-Conduit-Trace-Id`, else it is generated. The gateway is a hop of the
//! trace: upstream it sends the same trace id with a fresh span id (its own) and the
//! caller's flags, and passes `tracestate` on only when it continues the caller's
//! `traceparent` (the specification ties the two together). Every response carries the
//! trace id in `X-Conduit-Trace-Id`, so a caller can quote it when reporting a problem.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Response header (and optional request header) carrying the 32-hex trace id.
pub(crate) const TRACE_ID_HEADER: HeaderName = HeaderName::from_static("x-conduit-trace-id");
/// The W3C `traceparent` header.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C `tracestate` header.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Flags when the caller sent none: sampled, so the gateway's span is recorded downstream.
const DEFAULT_FLAGS: u8 = 0x01;

/// The trace context of one request, fixed when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    /// The gateway's own span id, the parent id of the upstream request.
    span_id: u64,
    flags: u8,
    /// Whether the caller's `traceparent` was valid and is continued (so its `tracestate`
    /// belongs to this trace).
    continued: bool,
    /// The caller's span (the parent id of its `traceparent`), which the gateway's exported
    /// request span is a child of (`telemetry`).
    parent_id: u64,
}

impl TraceContext {
    /// The context for a request with `headers`: the caller's trace when it names a valid
    /// one, a new trace otherwise. Never fails; invalid values are ignored, as the
    /// specification asks.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let span_id = random_nonzero_u64();
        if let Some(parent) = single_value(headers, &TRACEPARENT).and_then(parse_traceparent) {
            return TraceContext {
                trace_id: parent.trace_id,
                span_id,
                flags: parent.flags,
                continued: true,
                parent_id: parent.parent_id,
            };
        }
        let trace_id = single_value(headers, &TRACE_ID_HEADER)
            .and_then(|value| parse_hex_id(value.trim(), 32))
            .unwrap_or_else(random_nonzero_u128);
        TraceContext {
            trace_id,
            span_id,
            flags: DEFAULT_FLAGS,
            continued: false,
            parent_id: 0,
        }
    }

    /// The trace id as a number (what an exported span carries).
    pub fn trace_id_value(&self) -> u128 {
        self.trace_id
    }

    /// The caller's span when its `traceparent` is continued: its span id and flags.
    pub fn remote_parent(&self) -> Option<(u64, u8)> {
        self.continued.then_some((self.parent_id, self.flags))
    }

    /// This context with `span_id` as the gateway's span and the sampled flag set to
    /// `sampled`: what is propagated when the gateway exports its own spans, so the
    /// upstream's spans are children of the exported upstream span and follow its sampling.
    pub fn with_span(self, span_id: u64, sampled: bool) -> TraceContext {
        TraceContext {
            span_id,
            flags: (self.flags & !0x01) | u8::from(sampled),
            ..self
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The `traceparent` sent upstream: this trace, the gateway's span, the caller's flags.
    pub fn traceparent(&self) -> String {
        String::from_utf8(self.traceparent_bytes().to_vec()).expect("ASCII")
    }

    /// `00-<trace id>-<span id>-<flags>`, written without the formatting machinery: it is
    /// done for every request (`format!` of a `u128` in hex costs thousands of instructions).
    fn traceparent_bytes(&self) -> [u8; 55] {
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex(self.trace_id, &mut text[3..35]);
        hex(u128::from(self.span_id), &mut text[36..52]);
        hex(u128::from(self.flags), &mut text[53..55]);
        text
    }

    /// Set `traceparent` on an upstream request's headers (replacing whatever the caller
    /// sent), and drop `tracestate` unless the caller's trace is continued.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        let value = HeaderValue::from_bytes(&self.traceparent_bytes())
            .expect("a formatted traceparent is a valid header value");
        headers.insert(TRACEPARENT, value);
        if !self.continued {
            headers.remove(TRACESTATE);
        }
    }

    /// Add `X-Conduit-Trace-Id` to a response's headers.
    pub fn tag(&self, headers: &mut HeaderMap) {
        let value = HeaderValue::from_bytes(&self.trace_id().hex())
            .expect("hex digits are a valid header value");
        headers.insert(TRACE_ID_HEADER, value);
    }
}

/// A trace id, displayed as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(u128);

impl TraceId {
    fn hex(self) -> [u8; 32] {
        let mut text = [0; 32];
        hex(self.0, &mut text);
        text
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).expect("ASCII"))
    }
}

/// The low `out.len()` hex digits of `value`, lower case, zero-padded.
fn hex(mut value: u128, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// The fields of a valid version-00 `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traceparent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower case, neither id all
/// zeros. Other versions are not continued: their layout is not known to this gateway.
fn parse_traceparent(value: &str) -> Option<Traceparent> {
    let mut fields = value.trim().split('-');
    let (version, trace_id, parent_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() || version != "00" {
        return None;
    }
    let trace_id = parse_hex_id(trace_id, 32)?;
    let parent_id = u64::try_from(parse_hex_id(parent_id, 16)?).ok()?;
    let flags = u8::try_from(parse_hex(flags, 2)?).ok()?;
    Some(Traceparent {
        trace_id,
        parent_id,
        flags,
    })
}

/// A non-zero id of exactly `digits` lower-case hex digits.
fn parse_hex_id(text: &str, digits: usize) -> Option<u128> {
    parse_hex(text, digits).filter(|id| *id != 0)
}

/// Exactly `digits` (at most 32) lower-case hex digits. Upper case is invalid in a
/// `traceparent`; accepting it would make two spellings of one trace id.
fn parse_hex(text: &str, digits: usize) -> Option<u128> {
    let valid = text.len() == digits
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !valid {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

/// The header's value when it appears exactly once and is text; a repeated `traceparent`
/// is ambiguous and starts a new trace.
fn single_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn random_nonzero_u128() -> u128 {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id;
        }
    }
}

fn random_nonzero_u64() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// (trace id, span id, flags) of a traceparent this module wrote.
    fn fields(traceparent: &str) -> (String, String, String) {
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(parts[0], "00");
        (parts[1].into(), parts[2].into(), parts[3].into())
    }

    #[test]
    fn continues_a_valid_traceparent_with_a_new_span() {
        let context = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "vendor=1"),
        ]));
        assert_eq!(context.trace_id().to_string(), TRACE);
        let (trace, span, flags) = fields(&context.traceparent());
        assert_eq!(trace, TRACE);
        assert_ne!(span, "b7ad6b7169203331");
        assert_eq!(span.len(), 16);
        assert_ne!(span, "0000000000000000");
        assert_eq!(flags, "01");

        let mut upstream = headers(&[("traceparent", PARENT), ("tracestate", "vendor=1")]);
        context.propagate(&mut upstream);
        assert_eq!(upstream[TRACEPARENT], context.traceparent());
        assert_eq!(upstream[TRACESTATE], "vendor=1");
    }

    #[test]
    fn exposes_the_callers_span_and_replaces_the_gateways() {
        let context = TraceContext::from_headers(&headers(&[("traceparent", PARENT)]));
        assert_eq!(context.remote_parent(), Some((0xb7ad6b7169203331, 0x01)));
        assert_eq!(context.trace_id_value(), 0x0af7651916cd43dd8448eb211c80319c);
        let unsampled = context.with_span(0x1234, false);
        assert_eq!(
            unsampled.traceparent(),
            format!("00-{TRACE}-0000000000001234-00")
        );
        assert_eq!(
            unsampled.with_span(0x42, true).traceparent(),
            format!("00-{TRACE}-0000000000000042-01")
        );
        // A new trace has no remote parent.
        assert_eq!(
            TraceContext::from_headers(&HeaderMap::new()).remote_parent(),
            None
        );
    }

    #[test]
    fn keeps_the_callers_flags() {
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let context = TraceContext::from_headers(&headers(&[("traceparent", unsampled)]));
        assert_eq!(fields(&context.traceparent()).2, "00");
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?} was accepted");
        }
        assert!(parse_traceparent(PARENT).is_some());
        assert!(parse_traceparent(&format!(" {PARENT} ")).is_some());
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_without_its_tracestate() {
        let context = TraceContext::from_headers(&headers(&[
            (
                "traceparent",
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            ),
            ("tracestate", "vendor=1"),
        ]));
        assert_ne!(context.trace_id().to_string(), "0".repeat(32));
        assert_eq!(fields(&context.traceparent()).2, "01");
        let mut upstream = headers(&[("tracestate", "vendor=1")]);
        context.propagate(&mut upstream);
        assert!(!upstream.contains_key(TRACESTATE));
    }

    #[test]
    fn a_repeated_traceparent_is_not_trusted() {
        let other = "00-11111111111111111111111111111111-b7ad6b7169203331-01";
        let context = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("traceparent", other),
        ]));
        assert_ne!(context.trace_id().to_string(), TRACE);
        assert_ne!(context.trace_id().to_string(), "1".repeat(32));
    }

    #[test]
    fn uses_a_valid_conduit_trace_id_when_there_is_no_traceparent() {
        let context = TraceContext::from_headers(&headers(&[("x-conduit-trace-id", TRACE)]));
        assert_eq!(context.trace_id().to_string(), TRACE);
        assert_eq!(fields(&context.traceparent()).0, TRACE);

        // A valid traceparent wins over it.
        let other = "11111111111111111111111111111111";
        let context = TraceContext::from_headers(&headers(&[
            ("x-conduit-trace-id", other),
            ("traceparent", PARENT),
        ]));
        assert_eq!(context.trace_id().to_string(), TRACE);

        for bad in ["0".repeat(32), "abc".into(), TRACE.to_uppercase()] {
            let context = TraceContext::from_headers(&headers(&[("x-conduit-trace-id", &bad)]));
            assert_ne!(context.trace_id().to_string(), bad.to_lowercase());
        }
    }

    #[test]
    fn writes_ids_as_the_formatter_would() {
        for (trace_id, span_id, flags) in [
            (1, 1, 0),
            (u128::MAX, u64::MAX, 0xff),
            (0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, 1),
        ] {
            let context = TraceContext {
                trace_id,
                span_id,
                flags,
                continued: false,
                parent_id: 0,
            };
            assert_eq!(context.trace_id().to_string(), format!("{trace_id:032x}"));
            assert_eq!(
                context.traceparent(),
                format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}")
            );
        }
    }

    #[test]
    fn generates_distinct_ids() {
        let a = TraceContext::from_headers(&HeaderMap::new());
        let b = TraceContext::from_headers(&HeaderMap::new());
        assert_ne!(a.trace_id(), b.trace_id());
        let id = a.trace_id().to_string();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let (_, span, flags) = fields(&a.traceparent());
        assert_eq!(span.len(), 16);
        assert_eq!(flags, "01");

        let mut response = HeaderMap::new();
        a.tag(&mut response);
        assert_eq!(response[TRACE_ID_HEADER], id);
    }
}
