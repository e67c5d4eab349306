//! The chart's DNS towards the outside, run by `test_support::pod::PodRunner` with Debian's
//! daemons: zone transfers and NOTIFY to a real secondary (a `knotd` in the client namespace),
//! TSIG-signed RFC 2136 updates from outside confined to their subtree, checked with `kdig` and
//! `knsupdate` against the pod. Every namespace is the test's own. Needs root.
//!
//! `DNSDHCP_TEST_DAEMONS` chooses the pod's daemons, as in `pod_e2e` (host: Debian 12's with two
//! overrides; trixie: Debian 13's, the chart's pinned versions, with the chart's defaults). The
//! test's own peers (relay, client, secondary, stub server) are the host's.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::daemons::Daemons;
use test_support::pod::{HostBinaries, PodNetwork, PodRunner, helm_template};

const KDIG: &str = "/usr/bin/kdig";
const KNSUPDATE: &str = "/usr/bin/knsupdate";
const KNOTD: &str = "/usr/sbin/knotd";

/// Overrides for the host's daemons (Debian 12: Knot 3.2, Kea 2.2, no `secret-file`).
const HOST_SETS: &[&str] = &[
    "ddns.tsig.secretFile=false",
    "dhcp.hooksDir=/usr/lib/x86_64-linux-gnu/kea/hooks",
];
/// Overrides for both variants: shorter waits.
const TEST_SETS: &[&str] = &[
    "postStart.timeoutSeconds=30",
    "terminationGracePeriodSeconds=5",
];

/// The pod's daemons: `DNSDHCP_TEST_DAEMONS` (host: Debian 12's; trixie: Debian 13's, the
/// chart's pinned versions, with the chart's defaults).
fn binaries() -> HostBinaries {
    HostBinaries::for_daemons(Daemons::from_env(), env!("CARGO_BIN_EXE_dnsdhcp"))
}

/// The pod's address (PodNetwork's default) and the client namespace's.
const POD: &str = "192.168.1.53";
const CLIENT: &str = "192.168.1.250";
/// A second address of the client namespace: a secondary allowed by address alone.
const CLIENT2: &str = "192.168.1.251";

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install the Debian package {package}"
    );
}

/// A random TSIG secret (base64 of 32 bytes).
fn secret() -> String {
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn render(dir: &Path, values: &str) -> String {
    let f = dir.join("values.yaml");
    fs::write(&f, values).unwrap();
    let host: &[&str] = if Daemons::from_env() == Daemons::Host {
        HOST_SETS
    } else {
        &[]
    };
    let sets: Vec<&str> = host.iter().chain(TEST_SETS).copied().collect();
    helm_template(&[f.as_path()], &sets)
}

fn start(pod: &mut PodRunner) {
    if let Err(e) = pod.start() {
        panic!("the pod did not start:\n{e}");
    }
}

/// `kdig` in `cmd`'s namespace: the answer lines (no comments), sorted, and whether it succeeded.
fn kdig(mut cmd: Command, args: &[&str]) -> (Vec<String>, String) {
    let out = cmd
        .args(["+time=2", "+retry=1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kdig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut v: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    v.sort();
    (v, text)
}

/// `knsupdate` in `cmd`'s namespace with `script`; whether the update was accepted.
fn knsupdate(mut cmd: Command, key: Option<&str>, script: &str) -> bool {
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knsupdate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().status.success()
}

fn update(name: &str, rtype: &str, data: &str) -> String {
    format!("server {POD} 53\nzone home.arpa.\nupdate add {name} 60 {rtype} {data}\nsend\n")
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool, ctx: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
knot:
  secondaries:
    - address: 192.168.1.250
      key: xfr
    - address: 192.168.1.251
  externalUpdates:
    allowFrom: ["192.168.1.0/24"]
    key: external-dns
    ownerNames: [k8s]
  tsigKeys:
    existingSecret: dns-extra-keys
"#;

/// Transfers to a secondary (TSIG) and by address; NOTIFY and IXFR keep the secondary current
/// after an outside update; outside updates are signed and stay in their subtree and types.
#[test]
fn pod_dns_transfers_notify_and_confined_external_updates() {
    test_support::pod::require_root();
    require(KDIG, "knot-dnsutils");
    require(KNSUPDATE, "knot-dnsutils");
    require(KNOTD, "knot");
    let dir = tempfile::tempdir().unwrap();
    let (xfr, ext) = (secret(), secret());
    let keys = format!(
        "key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {xfr}\n  - id: external-dns\n    algorithm: hmac-sha256\n    secret: {ext}\n"
    );
    // The Secret the operator creates (knot.tsigKeys.existingSecret), beside the rendering.
    let mut rendered = render(dir.path(), VALUES);
    rendered.push_str(&format!(
        "\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: dns-extra-keys\nstringData:\n  keys.conf: |\n{}",
        keys.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    ));
    let mut pod = PodRunner::new(&rendered, binaries(), PodNetwork::default());
    start(&mut pod);
    let client = || pod.client_cmd(KDIG);
    let xfr_key = format!("hmac-sha256:xfr:{xfr}");
    let ext_key = format!("hmac-sha256:external-dns:{ext}");
    Command::new("/usr/sbin/ip")
        .args([
            "-n",
            pod.client_netns(),
            "addr",
            "add",
            &format!("{CLIENT2}/24"),
            "dev",
            "eth0",
        ])
        .status()
        .unwrap();

    // AXFR: signed from the keyed secondary; refused unsigned from it; by address from the
    // other one; refused from any other address.
    let (axfr, text) = kdig(
        client(),
        &[
            "-y",
            &xfr_key,
            &format!("@{POD}"),
            "-t",
            "AXFR",
            "home.arpa.",
        ],
    );
    assert!(
        axfr.iter()
            .any(|l| l.starts_with("router.home.arpa. ") && l.ends_with(" A 192.168.1.1")),
        "signed AXFR:\n{text}"
    );
    let (unsigned, text) = kdig(client(), &[&format!("@{POD}"), "-t", "AXFR", "home.arpa."]);
    assert!(
        !unsigned.iter().any(|l| l.contains(" SOA ")),
        "unsigned AXFR from the keyed secondary:\n{text}"
    );
    let (by_addr, text) = kdig(
        client(),
        &[
            "-b",
            CLIENT2,
            &format!("@{POD}"),
            "-t",
            "AXFR",
            "home.arpa.",
        ],
    );
    assert!(
        by_addr.iter().any(|l| l.starts_with("router.home.arpa. ")),
        "AXFR by address:\n{text}"
    );
    let (other, text) = kdig(
        pod.pod_net_cmd(KDIG),
        &["@127.0.0.1", "-t", "AXFR", "home.arpa."],
    );
    assert!(
        !other.iter().any(|l| l.contains(" SOA ")),
        "AXFR from an unlisted address:\n{text}"
    );

    // A real secondary in the client namespace: gets the zone by AXFR, then NOTIFY + IXFR.
    let sdir = dir.path().join("secondary");
    fs::create_dir_all(sdir.join("zones")).unwrap();
    fs::write(
        sdir.join("knot.conf"),
        format!(
            "server:\n  rundir: {d}\n  listen: {CLIENT}@53\nlog:\n  - target: stderr\n    any: info\ndatabase:\n  storage: {d}\n{keys}remote:\n  - id: primary\n    address: {POD}@53\n    key: xfr\nacl:\n  - id: notify-from-primary\n    address: {POD}\n    key: xfr\n    action: notify\ntemplate:\n  - id: default\n    storage: {d}/zones\nzone:\n  - domain: home.arpa.\n    master: primary\n    acl: notify-from-primary\n",
            d = sdir.display()
        ),
    )
    .unwrap();
    let log = sdir.join("knotd.log");
    let _secondary = Daemon(
        pod.client_cmd(KNOTD)
            .arg("-c")
            .arg(sdir.join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("knotd"),
    );
    let at_secondary = |name: &str| kdig(client(), &[&format!("@{CLIENT}"), "+short", name, "A"]).0;
    let slog = || {
        format!(
            "secondary:\n{}\nprimary:\n{}",
            fs::read_to_string(&log).unwrap_or_default(),
            pod.logs("knot-auth")
        )
    };
    wait_for(
        "the secondary's AXFR",
        Duration::from_secs(20),
        || at_secondary("router.home.arpa") == ["192.168.1.1"],
        slog,
    );

    // Outside updates: signed, from the allowed network, inside k8s.<zone> and of allowed types.
    let upd = || pod.client_cmd(KNSUPDATE);
    assert!(
        knsupdate(
            upd(),
            Some(&ext_key),
            &update("web.k8s.home.arpa.", "A", "192.168.1.80")
        ),
        "{}",
        pod.logs("knot-auth")
    );
    assert!(
        !knsupdate(
            upd(),
            None,
            &update("web2.k8s.home.arpa.", "A", "192.168.1.81")
        ),
        "unsigned update accepted"
    );
    assert!(
        !knsupdate(
            upd(),
            Some(&ext_key),
            &update("laptop.home.arpa.", "A", "192.168.1.82")
        ),
        "update outside k8s accepted"
    );
    assert!(
        !knsupdate(
            upd(),
            Some(&ext_key),
            &update("router.home.arpa.", "A", "192.168.1.83")
        ),
        "update of a static name accepted"
    );
    assert!(
        !knsupdate(
            upd(),
            Some(&ext_key),
            &update("mx.k8s.home.arpa.", "MX", "10 mail.home.arpa.")
        ),
        "update of a type not listed accepted"
    );
    assert!(
        !knsupdate(
            upd(),
            Some(&xfr_key),
            &update("web3.k8s.home.arpa.", "A", "192.168.1.84")
        ),
        "update signed with another key accepted"
    );
    let (served, _) = kdig(
        pod.pod_net_cmd(KDIG),
        &["@127.0.0.1", "+short", "router.home.arpa", "A"],
    );
    assert_eq!(served, ["192.168.1.1"]);
    let (gone, _) = kdig(
        pod.pod_net_cmd(KDIG),
        &["@127.0.0.1", "+short", "laptop.home.arpa", "A"],
    );
    assert!(gone.is_empty());

    // The primary notified the secondary, which caught up incrementally.
    wait_for(
        "NOTIFY and IXFR to the secondary",
        Duration::from_secs(20),
        || at_secondary("web.k8s.home.arpa") == ["192.168.1.80"],
        slog,
    );
    let slog_text = fs::read_to_string(&log).unwrap_or_default().to_lowercase();
    assert!(
        slog_text.contains("notify, incoming"),
        "no NOTIFY at the secondary:\n{slog_text}"
    );
    assert!(
        slog_text.contains("ixfr, incoming"),
        "no IXFR at the secondary:\n{slog_text}"
    );
    pod.check_alive().unwrap();
}
