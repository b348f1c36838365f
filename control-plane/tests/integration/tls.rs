//! The gRPC listener over TLS with a self-signed certificate.

use conduit_proto::v1::FleetStatusRequest;
use tonic::transport::Endpoint;

use super::common::{Options, TestServer, config};

#[tokio::test]
async fn serves_grpc_over_tls() -> anyhow::Result<()> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let server = TestServer::start(Options {
        tls: Some((certified.cert.pem(), certified.signing_key.serialize_pem())),
        ..Options::default()
    })
    .await?;
    server.apply(&config(1)).await?;
    let mut dp = server.data_plane("dp-tls", (0, "")).await?;
    assert_eq!(dp.expect_snapshot().await?.version, 1);
    let fleet = server
        .admin()
        .await?
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    assert_eq!(fleet.current_version, 1);

    // Plaintext HTTP/2 to the TLS port does not get through.
    let addr = server.server.as_ref().unwrap().grpc_addr;
    let plain = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .map(conduit_proto::v1::admin_client::AdminClient::new);
    if let Ok(mut client) = plain {
        assert!(client.fleet_status(FleetStatusRequest {}).await.is_err());
    }
    Ok(())
}
