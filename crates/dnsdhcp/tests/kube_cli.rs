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

/// Top-level keys of a JSON object, and those of the objects under `path`.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_archives_through_the_fake_api_server_record_their_kubernetes_source_and_restore_json_has_one_shape()
 {
    let knot = KnotServer::start(&[(
        "home.test",
        "$TTL 3600\n@ IN SOA ns1 hostmaster 42 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    )]);
    let kea = std::sync::Arc::new(std::sync::Mutex::new(KeaServer::start(KeaConfig::new())));
    let kea_socket = kea.lock().unwrap().socket_path().to_owned();
    let lease_file = kea.lock().unwrap().lease_file();
    let client = ControlClient::unix(&kea_socket);
    for i in 1..=3 {
        let args = format!(
            r#"{{"ip-address": "10.77.1.{i}", "hw-address": "02:00:00:00:02:{i:02x}", "valid-lft": 4000}}"#
        );
        client.call("lease4-add", Some(&args)).unwrap();
    }
    let knot_env = vec![
        (
            "DNSDHCP_KNOT_SOCKET",
            knot.socket_path().display().to_string(),
        ),
        ("DNSDHCP_ZONES_DIR", knot.zones_dir().display().to_string()),
    ];
    let kea_env = vec![
        ("DNSDHCP_KEA_SOCKET", kea_socket.display().to_string()),
        ("DNSDHCP_KEA_LEASE_FILE", lease_file.display().to_string()),
    ];
    let config = if dnsdhcp::kube::KNOT_CONTAINER == dnsdhcp::kube::KEA_CONTAINER {
        let env: Vec<_> = knot_env.iter().chain(&kea_env).cloned().collect();
        FakeConfig::new(BIN).container(dnsdhcp::kube::KNOT_CONTAINER, &env)
    } else {
        FakeConfig::new(BIN)
            .container(dnsdhcp::kube::KNOT_CONTAINER, &knot_env)
            .container(dnsdhcp::kube::KEA_CONTAINER, &kea_env)
    };
    // Once armed, Kea dies as a live restore of the leases starts.
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, k) = (armed.clone(), kea.clone());
    let mut config = config;
    config.on_exec = Some(std::sync::Arc::new(move |_, cmd| {
        if a.load(std::sync::atomic::Ordering::SeqCst)
            && cmd.iter().any(|x| x == "restore")
            && cmd.iter().any(|x| x == "--leases")
        {
            k.lock().unwrap().stop();
        }
    }));
    let fake = FakeApi::start(config).await;
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
    let store = format!("file://{}", dir.path().join("store").display());
    let source = "kubernetes:fake/dns-dhcp/unified-dns-dhcp";

    // The current context is named in the source when -c is not given.
    let (code, stdout, stderr) = dnsdhcp(&kc, &["backup", "all", "-b", b, "--to", &store]).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let zones = backups.join("zones.tar.gz");
    let leases = backups.join("kea-leases.tar.gz");
    let (code, out, _) = dnsdhcp(
        &kc,
        &["verify", zones.to_str().unwrap(), leases.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches(&format!("archive from {source},")).count(),
        2,
        "{out}"
    );
    let (code, out, stderr) = dnsdhcp(&kc, &["backups", "list", &store]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out.matches(source).count(), 2, "{out}");

    // `restore --json`: one shape whatever the target.
    let (z, l) = (zones.to_str().unwrap(), leases.to_str().unwrap());
    let (code, stdout, stderr) = dnsdhcp(
        &kc,
        &[
            "restore", "--live", "--zones", z, "--leases", l, "-c", "fake", "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let kube: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let knot_socket = knot.socket_path().display().to_string();
    let kea_socket = kea_socket.display().to_string();
    let lease_file = lease_file.display().to_string();
    let (code, stdout, stderr) = dnsdhcp(
        &kc,
        &[
            "restore",
            "--local",
            "--knot-socket",
            &knot_socket,
            "--kea-socket",
            &kea_socket,
            "--kea-lease-file",
            &lease_file,
            "--zones",
            z,
            "--leases",
            l,
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let local: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(keys(&kube), keys(&local), "{kube}\n{local}");
    for part in ["zones", "leases"] {
        assert_eq!(keys(&kube[part]), keys(&local[part]), "{kube}\n{local}");
        assert_eq!(kube[part]["archive"], local[part]["archive"]);
    }
    assert_eq!(
        keys(&kube["zones"]["zones"][0]),
        keys(&local["zones"]["zones"][0])
    );
    assert_eq!(kube["kind"], "restore");
    assert_eq!(kube["version"], local["version"]);
    assert_eq!(kube["target"], source);
    assert!(
        local["target"].as_str().unwrap().starts_with("local:"),
        "{local}"
    );
    assert_eq!(kube["pod"]["name"], "unified-dns-dhcp-0");
    assert!(
        kube["pod"]["new_uid"].is_null(),
        "--live does not restart: {kube}"
    );
    assert!(local["pod"].is_null(), "{local}");
    assert_eq!(kube["leases"]["held"], 3);
    assert_eq!(local["leases"]["held"], 3);

    // A live restore that stops after the zones: the JSON error object says what is restored,
    // what is not, and the command that finishes it.
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (code, stdout, stderr) = dnsdhcp(
        &kc,
        &[
            "restore", "--live", "--zones", z, "--leases", l, "-c", "fake", "--json",
        ],
    )
    .await;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("restore incomplete"), "{stderr}");
    let e: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(e["kind"], "error");
    let inc = &e["incomplete"];
    assert!(
        inc["restored"][0]
            .as_str()
            .unwrap()
            .starts_with("zone home.test"),
        "{e}"
    );
    assert_eq!(inc["not_restored"][0], format!("leases from {l}"), "{e}");
    assert_eq!(
        inc["finish"],
        format!("dnsdhcp restore --live --leases {l} -c fake -n dns-dhcp -s unified-dns-dhcp")
    );
}
