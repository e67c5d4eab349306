//! The chart's `backup` container (`dnsdhcp agent`) in the chart's pod, run on this machine by
//! `test_support::pod::PodRunner` with real knotd and kea-dhcp4 (Debian 12's, or Debian 13's
//! with `DNSDHCP_TEST_DAEMONS=trixie`) and the dnsdhcp binary under test. With a schedule of a
//! few seconds and `keepLast: 2`, backups of both kinds appear in the store, `/metrics` counts
//! them, and retention removes the oldest. The store is `file://` on the zones volume (the pod
//! has its own network namespace, so a server on the host's 127.0.0.1 is out of its reach).
//! Without `backup.enabled` the container is there all the same, serving /healthz only, and
//! carries the in-pod work the Kubernetes target execs there: a backup of both kinds and live
//! restores, with Knot reading and writing through the paths the containers share.
//! Needs root (namespaces, mounts).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::daemons::Daemons;
use test_support::pod::{HostBinaries, PodNetwork, PodRunner, helm_template};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const CURL: &str = "/usr/bin/curl";
/// The store, inside the pod: a directory on the zones volume.
const STORE_IN_POD: &str = "/var/lib/knot/agent-store";

const VALUES: &str = r#"
zones:
  - name: home.arpa
staticRecords:
  - "router IN A 192.168.1.1"
backup:
  enabled: true
  schedule: "*/4 * * * * *"
  to: "file:///var/lib/knot/agent-store"
  requireEncryption: false
  retention:
    keepLast: 2
    keepHourly: 0
    keepDaily: 0
    keepWeekly: 0
    keepMonthly: 0
"#;

fn render(dir: &Path) -> String {
    render_values(dir, VALUES)
}

fn render_values(dir: &Path, values: &str) -> String {
    let f = dir.join("values.yaml");
    fs::write(&f, values).unwrap();
    let mut sets = vec![
        "postStart.timeoutSeconds=30",
        "terminationGracePeriodSeconds=5",
    ];
    if Daemons::from_env() == Daemons::Host {
        sets.extend([
            "ddns.tsig.secretFile=false",
            "dhcp.hooksDir=/usr/lib/x86_64-linux-gnu/kea/hooks",
        ]);
    }
    helm_template(&[f.as_path()], &sets)
}

/// The zone backups in the store, by name, read with `dnsdhcp backups list` on the host.
fn listed(store: &Path, kind: &str) -> BTreeSet<String> {
    if !store.exists() {
        return BTreeSet::new();
    }
    let out = Command::new(BIN)
        .args(["backups", "list", "--json"])
        .arg(format!("file://{}", store.display()))
        .stdin(Stdio::null())
        .output()
        .expect("dnsdhcp backups list");
    assert!(
        out.status.success(),
        "backups list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manifest"]["kind"] == kind)
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// One sample of `name{labels}` from the exposition text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn pod_runner_agent_backs_up_on_schedule_shows_metrics_and_prunes_the_oldest() {
    test_support::pod::require_root();
    assert!(
        Path::new(CURL).exists(),
        "{CURL} not found: install the Debian package curl"
    );
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path());
    assert!(
        rendered.contains("name: backup"),
        "no backup container rendered"
    );
    let mut pod = PodRunner::new(
        &rendered,
        HostBinaries::for_daemons(Daemons::from_env(), BIN),
        PodNetwork::default(),
    );
    pod.start().unwrap();
    let store = pod
        .pvc_dir("zones")
        .join(STORE_IN_POD.trim_start_matches("/var/lib/knot/"));

    // Watch the store until a third zone backup has been taken and retention has run after it.
    let mut seen: Vec<String> = Vec::new();
    let mut max_at_once = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    let now = loop {
        let now = listed(&store, "zones-full");
        for n in &now {
            if !seen.contains(n) {
                seen.push(n.clone());
            }
        }
        max_at_once = max_at_once.max(now.len());
        if seen.len() >= 3 && now.len() == 2 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "no third zone backup pruned to two within 90 s (seen {seen:?}, now {now:?}); agent:\n{}",
            pod.logs("backup")
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    seen.sort();
    assert!(
        max_at_once >= 2,
        "two backups were never in the store together"
    );
    assert!(
        !now.contains(&seen[0]),
        "the oldest backup {} was kept: {now:?}",
        seen[0]
    );
    assert!(
        now.iter().all(|n| seen[seen.len() - 2..].contains(n)),
        "kept {now:?}, not the two newest of {seen:?}"
    );
    // Its object went with its entry.
    assert!(!store.join(&seen[0]).exists());
    assert!(!store.join(format!("{}.entry.json", seen[0])).exists());
    let leases = listed(&store, "leases");
    assert!(
        (1..=2).contains(&leases.len()),
        "lease backups kept: {leases:?}"
    );

    // /metrics, from inside the pod's network namespace.
    let out = pod
        .pod_net_cmd(CURL)
        .args(["-sf", "--max-time", "5", "http://127.0.0.1:9464/metrics"])
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET /metrics failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let ok_zones = metric(&text, "dnsdhcp_backup_success_total{kind=\"zones\"}").unwrap();
    let ok_leases = metric(&text, "dnsdhcp_backup_success_total{kind=\"leases\"}").unwrap();
    assert!(ok_zones >= 3.0 && ok_leases >= 2.0, "{text}");
    assert_eq!(
        metric(&text, "dnsdhcp_backup_failures_total{kind=\"zones\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "dnsdhcp_backup_pruned_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "dnsdhcp_backup_zone_records{zone=\"home.arpa.\"}")
            .or_else(|| metric(&text, "dnsdhcp_backup_zone_records{zone=\"home.arpa\"}"))
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    let last = metric(
        &text,
        "dnsdhcp_backup_last_success_timestamp_seconds{kind=\"zones\"}",
    )
    .unwrap();
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        unix_now - last < 30.0,
        "last success {last}, now {unix_now}"
    );
    let health = pod
        .pod_net_cmd(CURL)
        .args(["-sf", "--max-time", "5", "http://127.0.0.1:9464/healthz"])
        .stdin(Stdio::null())
        .status()
        .expect("curl");
    assert!(health.success(), "GET /healthz failed");
    pod.check_alive().unwrap();
}

/// `GET path` on the agent's port inside the pod: the status code curl saw.
fn http_code(pod: &PodRunner, path: &str) -> String {
    let out = pod
        .pod_net_cmd(CURL)
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://127.0.0.1:9464{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pod_runner_backup_container_without_a_schedule_serves_healthz_and_carries_the_in_pod_work() {
    test_support::pod::require_root();
    assert!(
        Path::new(CURL).exists(),
        "{CURL} not found: install the Debian package curl"
    );
    let dir = tempfile::tempdir().unwrap();
    let values = "zones:\n  - name: home.arpa\nstaticRecords:\n  - \"router IN A 192.168.1.1\"\n";
    let rendered = render_values(dir.path(), values);
    let mut pod = PodRunner::new(
        &rendered,
        HostBinaries::for_daemons(Daemons::from_env(), BIN),
        PodNetwork::default(),
    );
    pod.start().unwrap();
    assert_eq!(http_code(&pod, "/healthz"), "200");
    let log = pod.logs("backup");
    assert!(log.contains("serving /healthz"), "backup container:\n{log}");

    // What `dnsdhcp backup all -c ... -n ... -s ...` runs there: both kinds in one container.
    let tool = "/dnsdhcp/bin/dnsdhcp";
    let out = pod
        .exec_ok(
            "backup",
            &[
                tool,
                "backup",
                "all",
                "--local",
                "-b",
                "/tmp/dnsdhcp-t",
                "--json",
                "--name",
                "t",
            ],
        )
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let full = report["zones"]["full"]["path"].as_str().unwrap().to_owned();
    let leases = report["leases"]["archive"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    // /tmp is knot-auth's tmp-knot: the archives are there for knot-auth too.
    assert!(full.starts_with("/tmp/dnsdhcp-t/"), "{full}");
    assert!(
        pod.empty_dir("tmp-knot")
            .join(full.trim_start_matches("/tmp/"))
            .is_file()
    );

    // Live restores (`restore --live`), Knot reading the staged backup through /tmp.
    let out = pod
        .exec_ok(
            "backup",
            &[tool, "restore", "--local", "--zones", &full, "--json"],
        )
        .unwrap();
    assert!(out.contains("home.arpa"), "{out}");
    pod.exec_ok("backup", &[tool, "restore", "--local", "--leases", &leases])
        .unwrap();
    let status = pod
        .exec_ok("backup", &[tool, "zones", "status", "--local", "--json"])
        .unwrap();
    assert!(status.contains("home.arpa"), "{status}");
    // The exec'd commands do not upload: the container's environment names no store.
    assert!(!out.contains("uploaded"), "{out}");
    pod.check_alive().unwrap();
}
