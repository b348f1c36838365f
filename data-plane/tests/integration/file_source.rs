//! `--config FILE`: apply at start and on every change, however the file is replaced.

use std::path::Path;

use conduit_config::Document;
use conduit_data_plane::lifecycle::DataPlane;

use super::support::{config_dump, eventually, file_source, settings, start, wait_for_version};

fn config(server: &str) -> String {
    format!("servers:\n  - id: {server}\n    url: http://127.0.0.1:9/mcp\n")
}

async fn served_server(data_plane: &DataPlane) -> serde_json::Value {
    config_dump(data_plane).await.expect("dump")["config"]["servers"][0]["id"].clone()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

#[tokio::test]
async fn applies_the_file_and_reloads_on_in_place_and_rename_replace_writes() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("conduit.yaml");
    write(&path, &config("one"));
    let data_plane = start(settings(file_source(&path))).await;

    let dump = wait_for_version(&data_plane, 1).await;
    assert_eq!(dump["source"], "file");
    assert_eq!(
        dump["hash"],
        Document::from_text(&config("one")).unwrap().content_hash()
    );

    write(&path, &config("two"));
    wait_for_version(&data_plane, 2).await;
    assert_eq!(served_server(&data_plane).await, "two");

    // An editor-style save: a new file renamed over the old one.
    let replacement = temp.path().join(".conduit.yaml.swp");
    write(&replacement, &config("three"));
    std::fs::rename(&replacement, &path).expect("rename");
    wait_for_version(&data_plane, 3).await;
    assert_eq!(served_server(&data_plane).await, "three");

    // Invalid content is rejected; the last good version keeps serving.
    write(
        &path,
        "servers:\n  - id: four\n    urll: http://127.0.0.1:9/mcp\n",
    );
    let rejected = || {
        data_plane
            .metrics()
            .config_applies
            .with_label_values(&["rejected"])
            .get()
    };
    eventually("the rejection", || async {
        (rejected() == 1).then_some(())
    })
    .await;
    let dump = config_dump(&data_plane).await.expect("dump");
    assert_eq!(dump["version"], 3);

    // Unchanged content is not re-applied; fixed content is.
    write(&path, &config("five"));
    wait_for_version(&data_plane, 4).await;
    assert_eq!(served_server(&data_plane).await, "five");
    assert_eq!(rejected(), 1);
    data_plane.shutdown().await;
}

#[tokio::test]
async fn follows_a_kubernetes_style_symlink_swap() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let publish = |name: &str, server: &str| {
        std::fs::create_dir(dir.join(name)).expect("create");
        write(&dir.join(name).join("conduit.yaml"), &config(server));
    };
    // ConfigMap volume layout: conduit.yaml -> ..data/conduit.yaml, ..data -> ..<timestamp>.
    publish("..2026_01", "one");
    std::os::unix::fs::symlink("..2026_01", dir.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/conduit.yaml", dir.join("conduit.yaml")).expect("symlink");
    let data_plane = start(settings(file_source(&dir.join("conduit.yaml")))).await;
    wait_for_version(&data_plane, 1).await;

    publish("..2026_02", "two");
    std::os::unix::fs::symlink("..2026_02", dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    wait_for_version(&data_plane, 2).await;
    assert_eq!(served_server(&data_plane).await, "two");
    data_plane.shutdown().await;
}

#[tokio::test]
async fn a_missing_file_fails_start_up() {
    super::support::init();
    let temp = tempfile::tempdir().expect("temp dir");
    let error = DataPlane::start(settings(file_source(&temp.path().join("absent.yaml"))))
        .await
        .expect_err("start fails");
    assert!(error.to_string().contains("absent.yaml"), "{error}");
}
