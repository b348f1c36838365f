//! In-process integration tests of the data plane: a real `DataPlane` on 127.0.0.1 with a
//! fake control plane (a tonic `ConfigDiscovery` server), a small HTTP upstream and a shell
//! script as a stdio upstream.
#![forbid(unsafe_code)]

mod integration {
    pub mod support;

    mod audit;
    mod control_plane;
    mod file_source;
    mod proxy;
    mod rate_limit_redis;
    mod state_dir;
    mod stdio;
}
