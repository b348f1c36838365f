//! The HTTP vocabulary every layer of the data plane shares: the body type of the answers
//! it gives and its error, the size limits, the header names, the event-stream check, the
//! builder of the answers the gateway makes itself and the tag they carry for audit records
//! and spans (`status`).
//!
//! This is the bottom of the crate: it imports nothing above `jsonrpc`.

mod body;
mod response;
pub(crate) mod status;

pub(crate) use body::{
    BodyError, MAX_BODY_BYTES, MCP_SESSION_ID, ProxyBody, SERVER_ID_HEADER, is_event_stream,
};
pub(crate) use response::pass_back;
pub(crate) use status::{Status, answered, tag};
