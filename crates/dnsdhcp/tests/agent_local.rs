//! `dnsdhcp agent` as the chart runs it, on this host: real `knotd` and `kea-dhcp4`, a real S3
//! server (`moto`) on 127.0.0.1, a schedule of a few seconds. Runs produce backups in the
//! store, `/metrics` shows them, retention removes the oldest, `/healthz` answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::{KnotServer, free_port};
use test_support::s3::{S3Kind, S3Server};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONE: &str = "agent.test";
const ZONE_TEXT: &str = "$TTL 3600
@       IN SOA ns1 hostmaster 42 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn agent_backs_up_on_schedule_serves_metrics_and_prunes() {
    let s3 = S3Server::start(S3Kind::Moto);
    s3.create_bucket("backups");
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["agent", "--local", "--schedule", "*/3 * * * * *"])
        .args(["--to", "s3://backups/agent", "--keep-last", "2"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--scratch")
        .arg(scratch.path())
        .env("DNSDHCP_KNOT_SOCKET", knot.socket_path())
        .env("DNSDHCP_KEA_SOCKET", kea.socket_path())
        .env("DNSDHCP_KEA_LEASE_FILE", kea.lease_file())
        .env("DNSDHCP_NAME", "agent-host")
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    let mut agent = Agent(cmd.spawn().unwrap());

    // Three runs of each kind with keep-last 2: the first of each is pruned.
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        assert!(
            agent.0.try_wait().unwrap().is_none(),
            "the agent exited early"
        );
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (_, text) = get(port, "/metrics");
            if metric(&text, "dnsdhcp_backup_pruned_total").unwrap_or(0.0) >= 2.0 {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "no prune within 90 s");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        metric(&text, "dnsdhcp_backup_success_total{kind=\"zones\"}").unwrap() >= 3.0,
        "{text}"
    );
    assert!(
        metric(&text, "dnsdhcp_backup_success_total{kind=\"leases\"}").unwrap() >= 3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "dnsdhcp_backup_failures_total{kind=\"zones\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "dnsdhcp_backup_zone_serial{zone=\"agent.test.\"}"),
        Some(42.0)
    );
    assert_eq!(metric(&text, "dnsdhcp_backup_leases"), Some(0.0));
    let last = metric(
        &text,
        "dnsdhcp_backup_last_success_timestamp_seconds{kind=\"zones\"}",
    )
    .unwrap();
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!((now - last).abs() < 60.0, "last success {last}, now {now}");
    assert!(metric(&text, "dnsdhcp_backup_archive_bytes{kind=\"leases\"}").unwrap() > 0.0);
    assert_eq!(
        metric(&text, "dnsdhcp_agent_schedule_interval_seconds"),
        Some(3.0)
    );
    let (status, body) = get(port, "/healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");
    assert!(get(port, "/nope").0.contains("404"));
    drop(agent);

    // The store holds the newest two of each kind (three if a run uploaded after the metrics
    // were read and before the agent was stopped).
    let list = Command::new(BIN)
        .args(["backups", "list", "s3://backups/agent", "--json"])
        .envs(s3.env())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let kinds: Vec<&str> = entries["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manifest"]["kind"].as_str().unwrap())
        .collect();
    for kind in ["zones-full", "leases"] {
        let n = kinds.iter().filter(|k| **k == kind).count();
        assert!((2..=3).contains(&n), "{kind}: {kinds:?}");
    }
}
