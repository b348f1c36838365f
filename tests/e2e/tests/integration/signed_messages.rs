//! What the control plane signs verifies with the data plane's checks: a real control
//! plane (with a data-plane token) streams a snapshot and a grant set to a client that
//! opens the config stream as a data plane does, and `conduit_signing`, which the data
//! plane verifies with, accepts every signature in them and refuses each under another
//! token or key; a real data plane of the same fleet applied the same version.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use conduit_proto::v1::config_discovery_client::ConfigDiscoveryClient;
use conduit_proto::v1::{self, DataPlaneMessage, Hello, control_plane_message, data_plane_message};
use conduit_signing::session_keys::KeyLine;
use conduit_signing::{MacError, approval_key, grant_set, session_keys, snapshot};
use tokio_stream::wrappers::ReceiverStream;

use super::common::Fleet;

/// How long the control plane gets to send the first snapshot and grant set.
const PATIENCE: Duration = Duration::from_secs(30);

/// The first snapshot and grant set the control plane at `url` sends a data plane.
async fn first_messages(url: String, token: &str) -> anyhow::Result<(v1::Snapshot, v1::GrantSet)> {
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    let mut client = ConfigDiscoveryClient::new(channel);
    let (outbound, receiver) = tokio::sync::mpsc::channel(1);
    outbound
        .send(DataPlaneMessage {
            kind: Some(data_plane_message::Kind::Hello(Hello {
                node_id: "signature-check".into(),
                build_version: "e2e".into(),
                ..Default::default()
            })),
        })
        .await?;
    let mut request = tonic::Request::new(ReceiverStream::new(receiver));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut inbound = client.stream(request).await?.into_inner();
    let (mut snapshot, mut grants) = (None, None);
    while snapshot.is_none() || grants.is_none() {
        let message = inbound
            .message()
            .await?
            .context("the control plane closed the stream")?;
        match message.kind {
            Some(control_plane_message::Kind::Snapshot(sent)) => snapshot = Some(sent),
            Some(control_plane_message::Kind::GrantSet(sent)) => grants = Some(sent),
            _ => {}
        }
    }
    // Keeps the stream open until both arrived.
    drop(outbound);
    Ok((
        snapshot.expect("loop condition"),
        grants.expect("loop condition"),
    ))
}

#[test]
fn what_the_control_plane_signs_verifies_on_the_data_plane() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let token = fleet
        .cp
        .options()
        .dp_token
        .clone()
        .context("the fleet runs with a data-plane token")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (sent, grants) = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, first_messages(fleet.cp.url(), &token)).await?
    })?;
    ensure!(sent.version == fleet.first_version, "{}", sent.version);

    // The snapshot: content hash and signature.
    snapshot::check_hash(&sent.config_json, &sent.hash)?;
    snapshot::verify(&token, sent.version, &sent.hash, &sent.signature)?;
    ensure!(
        snapshot::verify("another-token", sent.version, &sent.hash, &sent.signature)
            == Err(MacError::BadSignature)
    );

    // The session keys it carries.
    let keys = sent.session_keys.as_ref().context("no session keys")?;
    ensure!(!keys.keys.is_empty());
    let lines = || {
        keys.keys.iter().map(|key| KeyLine {
            id: &key.id,
            key: &key.key,
            created_at: key.created_at,
            activates_at: key.activates_at,
        })
    };
    session_keys::verify(
        &token,
        sent.version,
        keys.max_age_seconds,
        lines(),
        &keys.signature,
    )?;
    ensure!(
        session_keys::verify(
            &token,
            sent.version + 1,
            keys.max_age_seconds,
            lines(),
            &keys.signature
        ) == Err(MacError::BadSignature),
        "session keys are bound to their snapshot's version"
    );

    // The grant-set key it carries, and the grant set that key verifies.
    let key = sent.approval_key.as_ref().context("no approval key")?;
    approval_key::verify(&token, sent.version, &key.public_key, &key.signature)?;
    ensure!(
        approval_key::verify(
            "another-token",
            sent.version,
            &key.public_key,
            &key.signature
        ) == Err(MacError::BadSignature)
    );
    let list = grant_set::verify(&grants, &key.public_key)?;
    ensure!(list.issued_at_ms > 0, "{list:?}");
    let mut tampered = grants.clone();
    tampered.grants.push(0);
    ensure!(
        grant_set::verify(&tampered, &key.public_key)
            == Err(grant_set::GrantSetError::BadSignature)
    );

    // The data plane's own checks passed on the same messages: it serves this version.
    let dump = fleet.dps[0].config_dump()?;
    ensure!(dump["hash"].as_str() == Some(sent.hash.as_str()), "{dump}");
    let status = fleet.cp.status()?;
    let entry = status.require(fleet.dps[0].node_id())?;
    ensure!(entry.rejected().is_none(), "{entry:?}");
    Ok(())
}
