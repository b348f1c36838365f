//! Harness for the cross-process tests: starts the real binaries on 127.0.0.1.
#![forbid(unsafe_code)]
