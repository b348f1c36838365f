//! Generated prost/tonic code for `conduit.v1`. Nothing else lives here: other crates
//! convert these wire types into their own domain types at the boundary.
#![forbid(unsafe_code)]

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("conduit.v1");
}
