//! `dnsdhcp pod probe` (the chart's readiness and liveness probes) against real daemons: knotd
//! and kea-dhcp4 from the fixtures, kea-dhcp-ddns started here with a control socket. Each probe
//! passes while its daemon answers and fails, naming it, once the daemon is gone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_support::daemons::Daemons;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const KEA_DHCP_DDNS: &str = "/usr/sbin/kea-dhcp-ddns";
const ZONE_TEXT: &str =
    "$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n";

fn probe(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["pod", "probe"])
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run dnsdhcp")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn knot_args(knot: &KnotServer) -> Vec<String> {
    vec![
        "knot".into(),
        "--knot-socket".into(),
        knot.socket_path().display().to_string(),
        "--knot-dns".into(),
        format!("127.0.0.1:{}", knot.dns_port()),
        "--timeout-secs".into(),
        "1".into(),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn knot_probe_asks_status_falls_back_to_dns_while_the_socket_is_busy_and_fails_when_knot_is_gone() {
    let mut knot = KnotServer::start(&[("probe.test", ZONE_TEXT)]);
    let args = knot_args(&knot);
    let o = probe(&as_strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("knot answers status"), "{}", text(&o));

    // A long operation holds the control socket (Knot serves one control connection at a
    // time on 3.2): the probe still passes, through DNS.
    let mut busy = knot_ctl::Client::connect(knot.socket_path()).expect("connect");
    busy.status().expect("status");
    let txn = busy.zone_begin("probe.test").expect("zone-begin");
    let o = probe(&as_strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    txn.abort().expect("zone-abort");
    drop(busy);

    // The readiness form also needs post-start's state.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut ready = args.clone();
    ready.extend([
        "--ready".into(),
        "--state-file".into(),
        state.display().to_string(),
    ]);
    let o = probe(&as_strs(&ready));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("post-start has not finished"),
        "{}",
        text(&o)
    );
    fs::write(
        &state,
        r#"{"ready":true,"records":{"state":"merged","changes":0}}"#,
    )
    .unwrap();
    let o = probe(&as_strs(&ready));
    assert!(o.status.success(), "{}", text(&o));
    fs::write(
        &state,
        r#"{"ready":false,"records":{"state":"failed","error":"home.arpa: bad A rdata"}}"#,
    )
    .unwrap();
    let o = probe(&as_strs(&ready));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("bad A rdata"), "{}", text(&o));

    knot.stop();
    let o = probe(&as_strs(&args));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("knot does not answer"), "{}", text(&o));
}

#[test]
fn kea_dhcp4_probe_asks_status_get_and_fails_when_kea_is_gone() {
    let mut kea = KeaServer::start(KeaConfig::new());
    let socket = kea.socket_path().display().to_string();
    let args = ["kea-dhcp4", "--kea-socket", &socket, "--timeout-secs", "2"];
    let o = probe(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("kea-dhcp4 answers status-get"),
        "{}",
        text(&o)
    );
    kea.stop();
    let o = probe(&args);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("does not answer status-get"),
        "{}",
        text(&o)
    );
}

/// kea-dhcp-ddns of the chosen variant with a UNIX control socket in `dir` (mode 0750, as Kea
/// 2.6 demands), killed on drop.
struct Ddns(Child);

impl Drop for Ddns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_ddns(dir: &Path) -> (Ddns, std::path::PathBuf) {
    let daemons = Daemons::from_env();
    daemons.require(KEA_DHCP_DDNS, "kea-dhcp-ddns-server");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).unwrap();
    let socket = dir.join("d2.sock");
    let port = test_support::knot::free_port();
    let conf = dir.join("kea-dhcp-ddns.json");
    fs::write(
        &conf,
        format!(
            r#"{{"DhcpDdns": {{"ip-address": "127.0.0.1", "port": {port},
  "control-socket": {{"socket-type": "unix", "socket-name": "{}"}},
  "tsig-keys": [], "forward-ddns": {{}}, "reverse-ddns": {{}},
  "loggers": [{{"name": "kea-dhcp-ddns", "output_options": [{{"output": "stdout"}}], "severity": "INFO"}}]}}}}"#,
            socket.display()
        ),
    )
    .unwrap();
    let log = fs::File::create(dir.join("d2.log")).unwrap();
    let child = daemons
        .daemon_command(KEA_DHCP_DDNS, &[dir])
        .arg("-c")
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", dir)
        .env("KEA_LOCKFILE_DIR", "none")
        .env("KEA_CONTROL_SOCKET_DIR", dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn kea-dhcp-ddns");
    let d2 = Ddns(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "kea-dhcp-ddns did not create its control socket:\n{}",
            fs::read_to_string(dir.join("d2.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (d2, socket)
}

#[test]
fn kea_dhcp_ddns_probe_asks_status_get_and_fails_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (d2, socket) = start_ddns(dir.path());
    let socket = socket.display().to_string();
    let args = [
        "kea-dhcp-ddns",
        "--kea-ddns-socket",
        &socket,
        "--timeout-secs",
        "2",
    ];
    let o = probe(&args);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o),
        fs::read_to_string(dir.path().join("d2.log")).unwrap_or_default()
    );
    assert!(
        text(&o).contains("kea-dhcp-ddns answers status-get"),
        "{}",
        text(&o)
    );
    drop(d2);
    let o = probe(&args);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("does not answer status-get"),
        "{}",
        text(&o)
    );
}
