//! Compiles `proto/conduit/v1/conduit.proto` with protox (pure Rust, no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/conduit/v1/conduit.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // Key material: its `Debug` is written by hand in `lib.rs`, redacted.
        .skip_debug([".conduit.v1.SessionKey"])
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
