//! The allow-list against real files: directories, symlinks out, FIFOs, devices, sizes,
//! variable names, and the limit on resolutions left running.

use super::*;

fn policy(dirs: &[&Path]) -> ReferencePolicy {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    ReferencePolicy::new(&dirs, Vec::new(), 64, Duration::from_secs(5)).unwrap()
}

fn message(result: io::Result<String>) -> String {
    result.expect_err("refused").to_string()
}

#[test]
fn without_a_secret_dir_files_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret").unwrap();
    let text = message(ReferencePolicy::default().file(file.to_str().unwrap()));
    assert!(text.contains("--secret-dir"), "{text}");
    assert!(!text.contains("s3cret"));
}

#[test]
fn only_regular_files_under_a_secret_dir_are_read() {
    let root = tempfile::tempdir().unwrap();
    let secrets = root.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("token"), "s3cret\n").unwrap();
    std::fs::write(root.path().join("outside"), "not yours").unwrap();
    std::os::unix::fs::symlink(root.path().join("outside"), secrets.join("escape")).unwrap();
    std::os::unix::fs::symlink(secrets.join("token"), root.path().join("alias")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(secrets.join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(secrets.join("big"), "x".repeat(65)).unwrap();
    std::fs::write(secrets.join("binary"), [0xff, 0xfe]).unwrap();
    let policy = policy(&[&secrets]);
    let path = |p: PathBuf| p.display().to_string();

    assert_eq!(
        policy.file(&path(secrets.join("token"))).unwrap(),
        "s3cret\n"
    );
    // A symlink from outside into the directory is fine: the real path counts.
    assert_eq!(
        policy.file(&path(root.path().join("alias"))).unwrap(),
        "s3cret\n"
    );
    for (file, needle) in [
        (root.path().join("outside"), "outside every --secret-dir"),
        (secrets.join("escape"), "outside every --secret-dir"),
        (secrets.join("../outside"), "outside every --secret-dir"),
        (PathBuf::from("/dev/zero"), "outside every --secret-dir"),
        (secrets.join("fifo"), "not a regular file"),
        (
            secrets.join("big"),
            "larger than --secret-max-bytes (64 bytes)",
        ),
        (secrets.join("binary"), "not UTF-8"),
        (secrets.clone(), "not a regular file"),
        (secrets.join("missing"), "No such file"),
    ] {
        let text = message(policy.file(&path(file.clone())));
        assert!(text.contains(needle), "{}: {text}", file.display());
        assert!(!text.contains("not yours"), "{text}");
    }
}

#[test]
fn devices_are_refused_even_in_an_allowed_directory() {
    let policy = policy(&[Path::new("/dev")]);
    for device in ["/dev/zero", "/dev/null"] {
        let text = message(policy.file(device));
        assert!(text.contains("not a regular file"), "{device}: {text}");
    }
}

#[test]
fn a_secret_dir_must_exist() {
    let error = ReferencePolicy::new(
        &[PathBuf::from("/surely/not/here")],
        Vec::new(),
        1,
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(error.to_string().contains("--secret-dir /surely/not/here"));
}

#[test]
fn variables_need_an_allowed_prefix_and_never_the_own_token() {
    let default = ReferencePolicy::default();
    assert_eq!(default.refuse_env("CONDUIT_SECRET_GITHUB"), None);
    let refused = default.refuse_env("HOME").unwrap();
    assert!(refused.contains("CONDUIT_SECRET_"), "{refused}");
    assert!(refused.contains("--secret-env-prefix"), "{refused}");
    let any = ReferencePolicy::new(&[], vec![String::new()], 1, Duration::from_secs(1)).unwrap();
    assert_eq!(any.refuse_env("HOME"), None);
    assert!(any.refuse_env("CONDUIT_DP_TOKEN").is_some());
    let two = ReferencePolicy::new(
        &[],
        vec!["APP_".into(), "MCP_".into()],
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(two.refuse_env("MCP_TOKEN"), None);
    assert!(
        two.refuse_env("CONDUIT_SECRET_X")
            .unwrap()
            .contains("APP_ or MCP_")
    );
}

#[test]
fn errors_about_resolved_values_never_show_them() {
    let dir = tempfile::tempdir().unwrap();
    // A recognisable secret where a URL belongs.
    std::fs::write(dir.path().join("url"), "sk-live-4f9a8b7c6d5e").unwrap();
    let text = format!(
        "servers:\n  - id: a\n    url: \"${{file:{}}}\"\n",
        dir.path().join("url").display()
    );
    let document = Document::from_text(&text).unwrap();
    let errors = policy(&[dir.path()]).resolve(&document).unwrap_err();
    let shown = errors.to_string();
    assert!(!shown.contains("sk-live"), "{shown}");
    assert!(shown.contains("servers[0].url"), "{shown}");
    assert!(shown.contains("${file:"), "{shown}");
}

#[test]
fn no_new_resolution_while_too_many_are_left_running() {
    let policy = ReferencePolicy::default();
    let document = Document::from_text("servers: []\n").unwrap();
    assert!(policy.resolve(&document).is_ok());
    assert_eq!(policy.running.load(Ordering::Acquire), 0);
    policy.running.store(MAX_RUNNING, Ordering::Release);
    let refused = policy.resolve(&document).unwrap_err().to_string();
    assert!(refused.contains("--secret-read-timeout"), "{refused}");
}
