//! Conduit data plane: a stateless MCP proxy whose configuration comes from the control
//! plane's config stream or, standalone, from a watched local file.
//!
//! Both sources feed one apply path (`apply`) that compiles a `Runtime` and swaps it in
//! atomically; the public listener (`server`, `proxy`) serves MCP from whatever runtime is
//! current, the admin listener (`admin`) reports health, readiness, metrics and the
//! applied configuration. `lifecycle` wires it all together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod apply;
pub mod jsonrpc;
pub mod lifecycle;
pub mod metrics;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod state;

/// `error: cause: cause`; transport errors keep the useful part in their sources. Some
/// layers repeat their source's text in their own; a repeated text is written once.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::error_chain;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn joins_causes_once() {
        let refused = Layer("connection refused", None);
        let connect = Layer("tcp connect error", Some(Box::new(refused)));
        let repeated = Layer("tcp connect error", Some(Box::new(connect)));
        let top = Layer("transport error", Some(Box::new(repeated)));
        assert_eq!(
            error_chain(&top),
            "transport error: tcp connect error: connection refused"
        );
    }
}
