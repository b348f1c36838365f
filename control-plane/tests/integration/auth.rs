//! Bearer tokens on both APIs, the snapshot signature, and the refusal to run an exposed
//! listener without tokens.

use std::time::Duration;

use conduit_control_plane::{ServeConfig, ServeError, start};
use conduit_proto::v1::FleetStatusRequest;
use hmac::{KeyInit, Mac};
use tonic::Code;

use super::common::{ADMIN_TOKEN, DP_TOKEN, DataPlane, Options, TestServer, config, init};

fn code<T>(result: anyhow::Result<T>) -> Code {
    let Err(error) = result else {
        panic!("the call was accepted");
    };
    error
        .downcast_ref::<tonic::Status>()
        .unwrap_or_else(|| panic!("not a gRPC status: {error:?}"))
        .code()
}

#[tokio::test]
async fn admin_calls_need_the_admin_token() -> anyhow::Result<()> {
    let server = TestServer::start(Options {
        tokens: true,
        ..Options::default()
    })
    .await?;
    for token in [None, Some("wrong"), Some(DP_TOKEN)] {
        let mut admin = server.admin_with(token).await?;
        let status = admin.fleet_status(FleetStatusRequest {}).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "token {token:?}");
    }
    let mut admin = server.admin_with(Some(ADMIN_TOKEN)).await?;
    admin.fleet_status(FleetStatusRequest {}).await?;
    Ok(())
}

#[tokio::test]
async fn data_planes_need_the_dp_token_and_get_signed_snapshots() -> anyhow::Result<()> {
    let server = TestServer::start(Options {
        tokens: true,
        ..Options::default()
    })
    .await?;
    for token in [None, Some("wrong"), Some(ADMIN_TOKEN)] {
        let refused = DataPlane::connect(&server, "dp-1", (0, ""), "", token).await;
        assert_eq!(code(refused), Code::Unauthenticated, "token {token:?}");
    }

    let applied = server.apply(&config(1)).await?;
    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    let snapshot = dp.expect_snapshot().await?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(DP_TOKEN.as_bytes())?;
    mac.update(format!("{}:{}", applied.version, applied.hash).as_bytes());
    mac.verify_slice(&hex::decode(&snapshot.signature)?)?;
    Ok(())
}

#[tokio::test]
async fn refuses_an_exposed_listener_without_both_tokens() -> anyhow::Result<()> {
    init();
    let dir = tempfile::tempdir()?;
    let config = ServeConfig {
        listen: "0.0.0.0:0".parse()?,
        http_listen: "127.0.0.1:0".parse()?,
        http_settings: Default::default(),
        data_dir: dir.path().join("data"),
        tls: None,
        heartbeat_interval: Duration::from_secs(5),
        session_keys: Default::default(),
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        admin_tokens_file: None,
        dp_token: None,
    };
    let Err(error) = start(config).await else {
        panic!("started without a DP token on 0.0.0.0");
    };
    assert!(matches!(error, ServeError::Unauthenticated(_)));
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching the disk"
    );
    Ok(())
}
