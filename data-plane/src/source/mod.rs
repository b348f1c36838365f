//! Where configuration comes from: the control plane's config stream or a local file.
//! Both hand candidates to the one apply path in `crate::apply`.

pub mod control_plane;
pub mod file;
pub mod reconnect;
pub mod session;
