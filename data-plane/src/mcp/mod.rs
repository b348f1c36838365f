//! The MCP vocabulary several features share: the methods a client may send and their
//! metrics labels (`methods`), the list kinds (`lists`), and what a message asks for as
//! the policy phases read it (`target`: message, target, subject).
//!
//! This sits at the bottom of the crate and imports nothing from it.

mod lists;
mod methods;
mod strict;
mod target;

pub(crate) use lists::ListKind;
pub(crate) use methods::{known_method, method_label};
pub(crate) use target::{Message, Subject, Target, Unreadable, names_something};
