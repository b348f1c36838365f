//! The control plane in-process on 127.0.0.1:0, driven through the generated tonic clients
//! exactly as conduitctl and data planes drive it. One test binary, one submodule per area.
#![forbid(unsafe_code)]

mod integration {
    mod common;

    mod admin;
    mod approvals;
    mod audit;
    mod auth;
    mod restart;
    mod stream;
    mod tls;
}
