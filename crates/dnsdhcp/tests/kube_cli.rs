//! The `dnsdhcp` command line with the Kubernetes target (no `--local`), pointed by a kubeconfig
//! at the FAKE API server of `kube_fake.rs` on 127.0.0.1; the commands it execs run locally
//! against real `knotd` and `kea-dhcp4`. Checks the CLI wiring, output and error messages.

#[path = "kube_fake.rs"]
mod kube_fake;

use std::path::Path;

use kea_leases::ControlClient;
use kube_fake::{FakeApi, FakeConfig};
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

async fn dnsdhcp(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("DNSDHCP_CONTEXT")
        .env_remove("DNSDHCP_NAMESPACE")
        .env_remove("DNSDHCP_STATEFULSET")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_without_local_backs_up_queries_and_reports_errors_through_the_fake_api_server() {
    let knot = KnotServer::start(&[(
        "home.test",
        "$TTL 3600\n@ IN SOA ns1 hostmaster 42 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    )]);
    let kea = KeaServer::start(KeaConfig::new());
    let client = ControlClient::unix(kea.socket_path());
    for i in 1..=3 {
        let args = format!(
            r#"{{"ip-address": "10.77.1.{i}", "hw-address": "02:00:00:00:02:{i:02x}", "valid-lft": 4000}}"#
        );
        client.call("lease4-add", Some(&args)).unwrap();
    }
    let fake = FakeApi::start(
        FakeConfig::new(BIN)
            .container(
                "knot-auth",
                &[
                    (
                        "DNSDHCP_KNOT_SOCKET",
                        knot.socket_path().display().to_string(),
                    ),
                    ("DNSDHCP_ZONES_DIR", knot.zones_dir().display().to_string()),
                ],
            )
            .container(
                "kea-dhcp4",
                &[
                    (
                        "DNSDHCP_KEA_SOCKET",
                        kea.socket_path().display().to_string(),
                    ),
                    (
                        "DNSDHCP_KEA_LEASE_FILE",
                        kea.lease_file().display().to_string(),
                    ),
                ],
            ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: fake\n",
            fake.port
        ),
    )
    .unwrap();
    let backups = dir.path().join("backups");
    let b = backups.to_str().unwrap();

    let (code, stdout, stderr) =
        dnsdhcp(&kc, &["backup", "all", "-c", "fake", "-b", b, "--json"]).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for p in [
        &v["zones"]["full"]["path"],
        &v["zones"]["zones"]["path"],
        &v["leases"]["archive"]["path"],
        &v["leases"]["latest"]["path"],
    ] {
        let p = Path::new(p.as_str().unwrap());
        assert_eq!(p.parent().unwrap(), backups);
        let (code, out, _) = dnsdhcp(&kc, &["verify", p.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{out}");
    }
    assert!(
        v["zones"]["full"]["path"]
            .as_str()
            .unwrap()
            .contains("knot-zones-unified-dns-dhcp-")
    );
    assert_eq!(v["leases"]["latest"]["manifest"]["lease_count"], 3);
    assert!(
        stderr.contains("backing up zones in dns-dhcp/unified-dns-dhcp-0"),
        "{stderr}"
    );

    let (code, stdout, stderr) = dnsdhcp(&kc, &["zones", "status", "-c", "fake", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("home.test") && stdout.contains("42"),
        "{stdout}"
    );

    let (code, stdout, stderr) = dnsdhcp(&kc, &["leases", "count"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "3");

    let (code, _, stderr) = dnsdhcp(&kc, &["backup", "zones", "-s", "other", "-b", b]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("pod dns-dhcp/other-0 not found: no such pod or namespace"),
        "{stderr}"
    );

    let (code, _, stderr) = dnsdhcp(&kc, &["backup", "zones", "-c", "nope", "-b", b]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown context \"nope\""), "{stderr}");
}
