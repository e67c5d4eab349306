//! The version handshake with the pod, through the FAKE API server of `kube_fake.rs` on
//! 127.0.0.1 (exec streams run local programs): a pod whose dnsdhcp is another version is
//! refused before anything runs, naming both versions.

#[path = "kube_fake.rs"]
mod kube_fake;

use std::os::unix::fs::PermissionsExt;

use kube_fake::{FakeApi, FakeConfig};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_another_dnsdhcp_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    // The pod's "dnsdhcp": an older release.
    let old = dir.path().join("dnsdhcp-old");
    std::fs::write(&old, "#!/bin/sh\necho 'dnsdhcp 0.0.1'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = FakeApi::start(
        FakeConfig::new(&old)
            .container("knot-auth", &[])
            .container("kea-dhcp4", &[]),
    )
    .await;
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: fake\n",
            fake.port
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["zones", "status", "-c", "fake"])
        .env("KUBECONFIG", &kc)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is \"dnsdhcp 0.0.1\", this is \"dnsdhcp {}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{stderr}"
    );
    // The same binary on both sides passes it: every command of kube_cli.rs goes through it.
}
