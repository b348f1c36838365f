//! Propagation-latency benchmark: how long from `Apply` until every data plane has
//! applied (ACKed) the new version, for fleets of N real data-plane processes.
//!
//! For each N it starts one control plane and N `conduit-data-plane` processes on
//! 127.0.0.1, then repeats: Apply a document that differs from the previous one, then
//! WaitRollout until CONVERGED, timing from just before Apply to the CONVERGED answer.
//! Prints p50 / p99 / max per N. Run through `bench/propagation.sh` (release build).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, wait_until};
use conduit_proto::v1::admin_client::AdminClient;
use conduit_proto::v1::wait_rollout_response::Outcome;
use conduit_proto::v1::{ApplyRequest, FleetStatusRequest, WaitRolloutRequest};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "Measure config propagation latency (apply -> all data planes ACKed)")]
struct Args {
    /// Fleet sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    sizes: Vec<usize>,
    /// Rollouts measured per fleet size.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Unmeasured rollouts before the measured ones.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Stop measuring a fleet size after this long, whatever `rounds` says.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    budget: Duration,
    /// Run the data planes without `--state-dir` (shows what persisting each snapshot
    /// before the ACK costs).
    #[arg(long)]
    no_state_dir: bool,
    /// p99 target in milliseconds for the largest fleet (reported, not enforced).
    #[arg(long, default_value_t = 50.0)]
    target_p99_ms: f64,
}

/// Latency figures of one fleet size.
struct Report {
    size: usize,
    samples: Vec<Duration>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    conduit_e2e::init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut reports = Vec::new();
    for &size in &args.sizes {
        eprintln!("== {size} data plane(s): starting the fleet");
        let report = measure(&runtime, &args, size)
            .with_context(|| format!("measuring a fleet of {size}"))?;
        eprintln!(
            "   {} rollouts, p50 {:.2} ms, p99 {:.2} ms",
            report.samples.len(),
            ms(report.percentile(50.0)),
            ms(report.percentile(99.0))
        );
        reports.push(report);
    }

    println!();
    println!("propagation latency: Apply -> every data plane ACKed (WaitRollout CONVERGED)");
    println!(
        "data planes {} --state-dir",
        if args.no_state_dir { "without" } else { "with" }
    );
    println!(
        "{:>12} {:>8} {:>10} {:>10} {:>10}",
        "data planes", "rollouts", "p50 ms", "p99 ms", "max ms"
    );
    for report in &reports {
        println!(
            "{:>12} {:>8} {:>10.2} {:>10.2} {:>10.2}",
            report.size,
            report.samples.len(),
            ms(report.percentile(50.0)),
            ms(report.percentile(99.0)),
            ms(report.percentile(100.0)),
        );
    }
    if let Some(largest) = reports.iter().max_by_key(|r| r.size) {
        let p99 = ms(largest.percentile(99.0));
        let verdict = if p99 < args.target_p99_ms {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "target p99 < {} ms at {} data planes: {verdict} ({p99:.2} ms)",
            args.target_p99_ms, largest.size
        );
    }
    Ok(())
}

fn document(round: usize) -> String {
    // The upstream need not exist: applying a snapshot does not contact it.
    format!(
        "servers:\n  - id: bench\n    url: http://127.0.0.1:9/mcp\n    headers:\n      X-Bench-Round: \"{round}\"\n"
    )
}

fn measure(runtime: &tokio::runtime::Runtime, args: &Args, size: usize) -> anyhow::Result<Report> {
    let cp = ControlPlane::start(ControlPlaneOptions::default())?;
    let mut admin = runtime.block_on(AdminClient::connect(cp.url()))?;
    let first = runtime.block_on(apply(&mut admin, 0))?;

    // Start every process first, then wait for all of them: much faster than one by one.
    let mut fleet = Vec::with_capacity(size);
    for i in 0..size {
        let mut options =
            DataPlaneOptions::for_control_plane(&cp, &format!("bench-{i:03}")).wait_ready(false);
        options.state_dir = !args.no_state_dir;
        fleet.push(DataPlane::start(options)?);
    }
    wait_until(
        Duration::from_secs(120),
        "the whole fleet on the first version",
        || {
            let status = runtime.block_on(admin.clone().fleet_status(FleetStatusRequest {}))?;
            let converged = status
                .get_ref()
                .data_planes
                .iter()
                .filter(|dp| dp.connected && dp.applied_version == first)
                .count();
            if converged < size {
                bail!("{converged} of {size} data planes on version {first}");
            }
            Ok(())
        },
    )?;

    let mut samples = Vec::with_capacity(args.rounds);
    let started = Instant::now();
    for round in 1..=(args.warmup + args.rounds) {
        let begin = Instant::now();
        let version = runtime.block_on(apply(&mut admin, round))?;
        let response = runtime
            .block_on(admin.wait_rollout(WaitRolloutRequest {
                version,
                timeout_ms: 30_000,
            }))?
            .into_inner();
        let elapsed = begin.elapsed();
        ensure!(
            response.outcome() == Outcome::Converged,
            "round {round}: rollout of version {version} ended {:?}",
            response.outcome()
        );
        let acked = response
            .data_planes
            .iter()
            .filter(|dp| dp.applied_version >= version)
            .count();
        ensure!(
            acked == size,
            "round {round}: only {acked} of {size} data planes ACKed"
        );
        if round > args.warmup {
            samples.push(elapsed);
        }
        if started.elapsed() > args.budget && !samples.is_empty() {
            eprintln!("   time budget reached after {} rollouts", samples.len());
            break;
        }
    }
    drop(fleet);
    Ok(Report { size, samples })
}

async fn apply(admin: &mut AdminClient<Channel>, round: usize) -> anyhow::Result<u64> {
    let response = admin
        .apply(ApplyRequest {
            document: document(round),
            message: format!("bench round {round}"),
            author: "bench".into(),
            dry_run: false,
        })
        .await?
        .into_inner();
    ensure!(response.changed, "round {round} did not create a version");
    Ok(response.version)
}
