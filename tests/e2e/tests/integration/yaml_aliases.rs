//! YAML aliases (the "billion laughs"): a document whose nested aliases expand to about a
//! billion values is refused by `conduitctl validate` and by the control plane's Apply (sent
//! straight over gRPC, as a client that skips local validation would), with the line of the
//! first anchor, and neither process grows: their peak resident memory (`VmHWM`) stays small.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::binaries::{self, CONDUITCTL};
use conduit_e2e::{ControlPlane, ControlPlaneOptions, procfs};
use conduit_proto::v1::ApplyRequest;
use conduit_proto::v1::admin_client::AdminClient;

/// Peak memory any of these processes may reach, in KiB. They idle around 10–30 MiB; the
/// unguarded parse of [`billion_laughs`] needed gigabytes.
const PEAK_LIMIT_KIB: u64 = 200 * 1024;

/// About 60 KB: filler values (which raise the parser's own repetition limit, counted in
/// events) and nine levels of ten aliases each over a list of ten strings.
fn billion_laughs() -> String {
    let mut text = String::from("x-filler: [");
    text.push_str(&"a,".repeat(30_000));
    text.push_str("a]\n");
    text.push_str("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let alias = format!("*l{}", level - 1);
        let items = [alias.as_str(); 10].join(", ");
        text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
    }
    text
}

/// `VmHWM` (peak resident set) of `pid`, in KiB; `None` once the process is gone.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `conduitctl ARGS`, reading its `VmHWM` until it exits; (exit code, stderr, the last
/// peak read). The peak only grows, so the last read before exit is the process's peak
/// (up to the final milliseconds, when it is printing and exiting).
fn ctl_with_peak(args: &[&str]) -> anyhow::Result<(i32, String, u64)> {
    let mut child = Command::new(binaries::binary(CONDUITCTL)?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("conduitctl did not finish; peak so far {peak} KiB");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stderr = reader.join().map_err(|_| anyhow::anyhow!("reader"))?;
    Ok((status.code().unwrap_or(-1), stderr, peak))
}

/// The pid of the control plane started by this test process.
fn control_plane_pid() -> anyhow::Result<u32> {
    procfs::children(std::process::id())?
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.contains("conduit-control-plane"))
        })
        .context("no control plane child")
}

#[test]
fn nested_aliases_are_refused_without_expanding() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("laughs.yaml");
    let text = billion_laughs();
    std::fs::write(&path, &text)?;

    let (code, stderr, peak) = ctl_with_peak(&["validate", "-f", &path.display().to_string()])?;
    ensure!(code == 2, "exit {code}: {stderr}");
    ensure!(
        stderr.contains("line 2, column 5: YAML anchor"),
        "names the first anchor: {stderr}"
    );
    ensure!(
        peak < PEAK_LIMIT_KIB,
        "conduitctl validate peaked at {peak} KiB"
    );
    eprintln!("conduitctl validate peak: {peak} KiB");

    let cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
    let pid = control_plane_pid()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let mut admin = AdminClient::connect(cp.url()).await?;
        let mut request = tonic::Request::new(ApplyRequest {
            document: text.clone(),
            message: "billion laughs".into(),
            author: "attacker".into(),
            dry_run: false,
        });
        request
            .metadata_mut()
            .insert("authorization", "Bearer e2e-admin-token".parse()?);
        anyhow::Ok(admin.apply(request).await.err())
    })?;
    let status = status.context("the control plane accepted the document")?;
    ensure!(status.code() == tonic::Code::InvalidArgument, "{status:?}");
    ensure!(
        status.message().contains("line 2, column 5: YAML anchor"),
        "{status:?}"
    );
    let cp_peak = peak_kib(pid).context("control plane gone")?;
    ensure!(
        cp_peak < PEAK_LIMIT_KIB,
        "the control plane peaked at {cp_peak} KiB"
    );
    eprintln!("control plane peak after the apply: {cp_peak} KiB");
    ensure!(cp.history()?.is_empty(), "nothing stored");
    Ok(())
}
