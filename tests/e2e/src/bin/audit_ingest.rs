//! Audit-ingest load generator: speaks the config stream to a running
//! `conduit-control-plane serve` as a data plane does (bearer token, `Hello` first) and
//! ships `AuditBatch`es of realistic records as fast as the control plane acks them, with
//! at most `--in-flight` batches unacked (a data plane keeps 8 on the way), for a bounded
//! time and a bounded number of batches. Then it waits for the outstanding acks and prints
//! `key=value` lines: records sent and acked, and the time from the first send to the last
//! ack. Run through `bench/audit-ingest.sh`, which pins the control plane to one core and
//! reads its CPU time.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use conduit_proto::v1::config_discovery_client::ConfigDiscoveryClient;
use conduit_proto::v1::{
    AuditBatch, AuditRecord, DataPlaneMessage, Hello, control_plane_message, data_plane_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, Parser)]
#[command(about = "Stream audit batches to a control plane as fast as it acks them")]
struct Args {
    /// gRPC URL of the control plane (127.0.0.1 only in benches).
    #[arg(long)]
    url: String,
    /// The data-plane token (`CONDUIT_DP_TOKEN` of the control plane).
    #[arg(long, env = "CONDUIT_DP_TOKEN")]
    token: Option<String>,
    /// Node id presented in `Hello` and in every record.
    #[arg(long, default_value = "bench-dp-1")]
    node_id: String,
    /// Records per batch (a data plane sends at most 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Batches sent and not yet acked, at most (a data plane keeps at most 8).
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Stop sending new batches after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop sending new batches after this many, whatever `duration` says.
    #[arg(long, default_value_t = 20_000)]
    max_batches: u64,
    /// How long to wait for the acks of the batches still on the way at the end.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    drain: Duration,
}

fn main() -> anyhow::Result<()> {
    conduit_e2e::init();
    let args = Args::parse();
    ensure!(
        args.batch > 0 && args.in_flight > 0,
        "--batch and --in-flight must be > 0"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut client = ConfigDiscoveryClient::connect(args.url.clone())
        .await
        .context("connecting to the control plane")?;
    let (outbound, receiver) = mpsc::channel::<DataPlaneMessage>(args.in_flight + 2);
    outbound
        .send(message(data_plane_message::Kind::Hello(Hello {
            node_id: args.node_id.clone(),
            build_version: "bench".into(),
            ..Hello::default()
        })))
        .await?;
    let mut request = tonic::Request::new(ReceiverStream::new(receiver));
    if let Some(token) = &args.token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let mut inbound = client.stream(request).await?.into_inner();

    let mut records = Records::new(&args.node_id);
    let start = Instant::now();
    let mut next_sequence = 1u64;
    let mut acked_through = 0u64;
    let (mut sent_records, mut acked_records) = (0u64, 0u64);
    let mut last_ack = start;
    loop {
        let sending = start.elapsed() < args.duration && next_sequence <= args.max_batches;
        let outstanding = next_sequence - 1 - acked_through;
        if !sending && outstanding == 0 {
            break;
        }
        if sending && outstanding < args.in_flight as u64 {
            let batch = records.batch(next_sequence, args.batch);
            sent_records += batch.records.len() as u64;
            outbound
                .send(message(data_plane_message::Kind::AuditBatch(batch)))
                .await
                .context("the stream closed")?;
            next_sequence += 1;
            continue;
        }
        let wait = if sending {
            args.duration
        } else {
            args.drain.saturating_sub(last_ack.elapsed())
        };
        let next = match tokio::time::timeout(wait, inbound.message()).await {
            Ok(next) => next.context("the control plane ended the stream")?,
            Err(_) => bail!("no ack for {wait:?}; {outstanding} batches unacked"),
        };
        let Some(reply) = next else {
            bail!("the control plane closed the stream");
        };
        if let Some(control_plane_message::Kind::AuditAck(ack)) = reply.kind {
            // The control plane stores a stream's batches in order and acks each.
            ensure!(
                ack.sequence == acked_through + 1,
                "ack {} out of order (expected {})",
                ack.sequence,
                acked_through + 1
            );
            acked_through = ack.sequence;
            acked_records += args.batch as u64;
            last_ack = Instant::now();
        }
    }
    let elapsed = last_ack.duration_since(start).as_secs_f64();
    // Close the stream as a data plane does on shutdown: end of requests, then the
    // control plane ends its half.
    drop(outbound);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    println!("batches={acked_through}");
    println!("records_sent={sent_records}");
    println!("records_acked={acked_records}");
    println!("elapsed_s={elapsed:.3}");
    println!("records_per_s={:.0}", acked_records as f64 / elapsed);
    Ok(())
}

fn message(kind: data_plane_message::Kind) -> DataPlaneMessage {
    DataPlaneMessage { kind: Some(kind) }
}

/// Records as a data plane writes them for `tools/call`: random 128-bit ids and trace ids,
/// a few clients, servers and tools, redacted arguments of 100 to 400 bytes, mostly `ok`.
struct Records {
    rng: SplitMix,
    node_id: String,
}

const TOOLS: [&str; 6] = [
    "search_issues",
    "get_file_contents",
    "create_pull_request",
    "query",
    "list_channels",
    "send_message",
];
const SERVERS: [&str; 3] = ["github", "postgres", "slack"];

impl Records {
    fn new(node_id: &str) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self {
            rng: SplitMix(seed),
            node_id: node_id.to_owned(),
        }
    }

    fn batch(&mut self, sequence: u64, size: usize) -> AuditBatch {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        AuditBatch {
            sequence,
            records: (0..size).map(|_| self.record(now_ms)).collect(),
            dropped: 0,
        }
    }

    fn record(&mut self, now_ms: i64) -> AuditRecord {
        let r = self.rng.next_u64();
        let tool = TOOLS[(r % TOOLS.len() as u64) as usize];
        let server = SERVERS[((r >> 8) % SERVERS.len() as u64) as usize];
        let client = (r >> 16) % 50;
        let failed = (r >> 24).is_multiple_of(50);
        let padding = 60 + ((r >> 32) % 300) as usize;
        let arguments = format!(
            r#"{{"query":"repo:acme/app is:open label:bug {}","page":{},"per_page":50,"token":"[REDACTED]"}}"#,
            "x".repeat(padding),
            (r >> 48) % 10
        );
        AuditRecord {
            id: self.hex128(),
            time_unix_ms: now_ms - ((r >> 40) % 1000) as i64,
            trace_id: self.hex128(),
            node_id: self.node_id.clone(),
            config_version: 7,
            client_id: format!("client-{client:02}"),
            tenant_id: format!("tenant-{}", client % 5),
            server_id: server.to_owned(),
            method: "tools/call".to_owned(),
            target: tool.to_owned(),
            arguments_json: arguments,
            duration_micros: 200 + (r >> 20) % 50_000,
            status: if failed { "upstream_error" } else { "ok" }.to_owned(),
            http_status: if failed { 502 } else { 200 },
            error_code: failed.then_some(-32603),
            error_message: if failed {
                "upstream answered 503 Service Unavailable".to_owned()
            } else {
                String::new()
            },
            response_bytes: 300 + (r >> 12) % 4000,
            guardrail_rule: String::new(),
            guardrail_action: String::new(),
            acl_policy: format!("{server}-readers"),
            cache_status: String::new(),
            response_json: String::new(),
        }
    }

    /// 128 random bits as 32 lowercase hex characters, like a data plane's ids.
    fn hex128(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }
}

/// SplitMix64: a fast, well-mixed generator; the ids need spread, not secrecy.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
