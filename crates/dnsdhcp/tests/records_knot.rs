//! Static records against a real knotd: apply, idempotence, prune, ownership, PTRs, validation,
//! safety limit, and transactions that fail half-way.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::sync::atomic::{AtomicUsize, Ordering};

use dnsdhcp::records::{
    self, ApplyOptions, RecordsError, SafetyLimit, Values, apply, apply_plan, apply_plan_with,
    apply_with, load_values, plan_from_knot,
};
use knot_ctl::Client;
use tempfile::TempDir;
use test_support::knot::KnotServer;

const HOME: &str = "\
$TTL 3600
@   IN SOA ns1 hostmaster 1 3600 900 604800 300
@   IN NS  ns1
ns1 IN A   192.0.2.1
";

const REVERSE: &str = "\
$TTL 3600
@   IN SOA ns1.home.arpa. hostmaster.home.arpa. 1 3600 900 604800 300
@   IN NS  ns1.home.arpa.
";

const V4_24: &str = "1.168.192.in-addr.arpa";
const V4_16: &str = "16.172.in-addr.arpa";
const V6_64: &str = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
const V6_48: &str = "1.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";

fn knot() -> KnotServer {
    KnotServer::builder()
        .zone("home.arpa", HOME)
        .zone(V4_24, REVERSE)
        .zone(V4_16, REVERSE)
        .zone(V6_64, REVERSE)
        .zone(V6_48, REVERSE)
        .start()
}

/// Values files written into a temporary directory.
struct ValuesDir {
    dir: TempDir,
}

impl ValuesDir {
    fn new() -> Self {
        ValuesDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `name` with the standard zones and `records` (YAML list items) and returns its path.
    fn write(&self, name: &str, records: &str) -> PathBuf {
        let text = format!(
            "replicaCount: 1\nzones:\n  - name: home.arpa\n  - name: {V4_24}\n  - name: {V4_16}\n  \
             - name: {V6_64}\n  - name: {V6_48}\nstaticRecords:\n{records}"
        );
        self.write_raw(name, &text)
    }

    fn write_raw(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn load(&self, name: &str, records: &str) -> Values {
        load_values(&[self.write(name, records)]).unwrap()
    }
}

fn client(k: &KnotServer) -> Client<std::os::unix::net::UnixStream> {
    Client::connect(k.socket_path()).unwrap()
}

fn serial(k: &KnotServer, zone: &str) -> u32 {
    let mut c = client(k);
    c.zone_read(zone, Some("@"), Some("SOA"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .data
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// `owner TTL TYPE data` lines of a zone (sorted, SOA left out).
fn zone_lines(k: &KnotServer, zone: &str) -> Vec<String> {
    let mut c = client(k);
    let mut v: Vec<String> = c
        .zone_read(zone, None, None)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.rtype != "SOA")
        .map(|r| format!("{} {} {} {}", r.owner, r.ttl.unwrap_or(0), r.rtype, r.data))
        .collect();
    v.sort();
    v
}

fn has(k: &KnotServer, zone: &str, line: &str) -> bool {
    zone_lines(k, zone).iter().any(|l| l == line)
}

/// Applies as the CLI and post-start do: with more connections to fill zones side by side
/// where knotd serves them (Knot 3.4 and later).
fn apply_ok(k: &KnotServer, values: &Values) -> records::ApplyOutcome {
    let connect = || Client::connect(k.socket_path());
    apply_with(
        &mut client(k),
        Some(&connect),
        values,
        &ApplyOptions::default(),
    )
    .unwrap()
}

const BASIC: &str = "  - \"router IN A 192.168.1.1\"
  - name: nas
    type: AAAA
    ttl: 300
    data: fd00::10
  - \"@ IN MX 10 mail\"
  - \"mail 600 IN A 192.168.1.2\"
  - 'txt TXT \"hello world\" x'
  - \"www CNAME router\"
";

#[test]
fn apply_then_second_apply_is_empty_and_keeps_the_serial() {
    let k = knot();
    let v = ValuesDir::new();
    let values = v.load("values.yaml", BASIC);
    let before = serial(&k, "home.arpa");
    let out = apply_ok(&k, &values);
    assert_eq!(out.committed.len(), 3, "home.arpa + two reverse zones");
    for line in [
        "router.home.arpa. 3600 A 192.168.1.1",
        "nas.home.arpa. 300 AAAA fd00::10",
        "home.arpa. 3600 MX 10 mail.home.arpa.",
        "mail.home.arpa. 600 A 192.168.1.2",
        "txt.home.arpa. 3600 TXT \"hello world\" \"x\"",
        "www.home.arpa. 3600 CNAME router.home.arpa.",
    ] {
        assert!(
            has(&k, "home.arpa", line),
            "{line} missing: {:#?}",
            zone_lines(&k, "home.arpa")
        );
    }
    let after_first = serial(&k, "home.arpa");
    assert!(after_first > before);
    // Ownership is in the zone.
    assert!(
        zone_lines(&k, "home.arpa")
            .iter()
            .any(|l| l.contains("._dnsdhcp-owned.home.arpa. 3600 TXT ")
                && l.contains("\"router\" \"A\"")),
        "{:#?}",
        zone_lines(&k, "home.arpa")
    );

    let (_, plan) = plan_from_knot(&mut client(&k), &values).unwrap();
    assert!(plan.is_empty(), "{}", records::render_plan(&plan, false));
    let out = apply_ok(&k, &values);
    assert!(out.committed.is_empty());
    assert_eq!(serial(&k, "home.arpa"), after_first);
    assert_eq!(serial(&k, V4_24), serial(&k, V4_24));
}

#[test]
fn removed_records_are_pruned_and_ttl_changes_apply() {
    let k = knot();
    let v = ValuesDir::new();
    apply_ok(&k, &v.load("v1.yaml", BASIC));
    let fewer = "  - \"router 120 IN A 192.168.1.1\"
  - \"@ IN MX 10 mail\"
  - \"mail 600 IN A 192.168.1.2\"
";
    let out = apply_ok(&k, &v.load("v2.yaml", fewer));
    assert!(out.committed.contains(&"home.arpa.".to_owned()));
    let lines = zone_lines(&k, "home.arpa");
    assert!(
        has(&k, "home.arpa", "router.home.arpa. 120 A 192.168.1.1"),
        "{lines:#?}"
    );
    for gone in ["nas.home.arpa.", "txt.home.arpa.", "www.home.arpa."] {
        assert!(
            !lines.iter().any(|l| l.starts_with(gone)),
            "{gone} not pruned: {lines:#?}"
        );
    }
    // The PTR of the pruned AAAA is gone too; router's PTR follows the new TTL.
    assert!(zone_lines(&k, V6_64).iter().all(|l| !l.contains("PTR")));
    assert!(has(
        &k,
        V4_24,
        "1.1.168.192.in-addr.arpa. 120 PTR router.home.arpa."
    ));
    // Base records untouched.
    assert!(has(&k, "home.arpa", "ns1.home.arpa. 3600 A 192.0.2.1"));
    let (_, plan) = plan_from_knot(&mut client(&k), &v.load("v2.yaml", fewer)).unwrap();
    assert!(plan.is_empty());
}

/// Lets 127.0.0.1 send dynamic updates to `zone` (runtime configuration through knotc).
fn allow_updates(k: &KnotServer, zone: &str) {
    k.knotc_ok(&["conf-begin"]);
    k.knotc_ok(&["conf-set", "acl[upd]"]);
    k.knotc_ok(&["conf-set", "acl[upd].address", "127.0.0.1"]);
    k.knotc_ok(&["conf-set", "acl[upd].action", "update"]);
    k.knotc_ok(&["conf-set", &format!("zone[{zone}.].acl"), "upd"]);
    k.knotc_ok(&["conf-commit"]);
}

fn nsupdate(k: &KnotServer, script: &str) {
    let mut child = Command::new("knsupdate")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knsupdate (Debian package knot-dnsutils)");
    let full = format!("server 127.0.0.1 {}\n{script}\nsend\nquit\n", k.dns_port());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(full.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "knsupdate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn records_the_tool_does_not_own_survive() {
    let k = knot();
    allow_updates(&k, "home.arpa");
    let v = ValuesDir::new();
    apply_ok(&k, &v.load("v1.yaml", BASIC));
    // A DDNS-style dynamic update, and a record made by hand through the control socket.
    nsupdate(
        &k,
        "zone home.arpa.\nupdate add laptop.home.arpa. 300 A 192.168.1.50",
    );
    assert!(has(&k, "home.arpa", "laptop.home.arpa. 300 A 192.168.1.50"));
    k.knotc_ok(&["zone-begin", "home.arpa"]);
    k.knotc_ok(&["zone-set", "home.arpa", "manual", "900", "TXT", "by-hand"]);
    k.knotc_ok(&["zone-commit", "home.arpa"]);

    // The values now manage nothing at all: every owned RRset goes, nothing else.
    let out = apply(
        &mut client(&k),
        &v.load("v2.yaml", "  []\n"),
        &ApplyOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!out.plan.is_empty());
    let lines = zone_lines(&k, "home.arpa");
    assert!(
        has(&k, "home.arpa", "laptop.home.arpa. 300 A 192.168.1.50"),
        "{lines:#?}"
    );
    assert!(
        has(&k, "home.arpa", "manual.home.arpa. 900 TXT \"by-hand\""),
        "{lines:#?}"
    );
    assert!(has(&k, "home.arpa", "ns1.home.arpa. 3600 A 192.0.2.1"));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("router") || l.contains("_dnsdhcp-owned")),
        "{lines:#?}"
    );
}

#[test]
fn ptrs_for_v4_24_16_and_v6_64_48() {
    let k = knot();
    let v = ValuesDir::new();
    let recs = "  - \"router A 192.168.1.1\"
  - \"gw A 172.16.5.9\"
  - \"nas AAAA fd00::10\"
  - \"lab AAAA fd00:0:1::abcd\"
  - name: cam
    type: A
    data: 192.168.1.30
    ptr: false
  - \"far A 10.0.0.1\"
";
    let out = apply_ok(&k, &v.load("v.yaml", recs));
    assert!(
        out.plan.notes.iter().any(|n| n.contains("10.0.0.1")),
        "{:?}",
        out.plan.notes
    );
    assert!(has(
        &k,
        V4_24,
        "1.1.168.192.in-addr.arpa. 3600 PTR router.home.arpa."
    ));
    assert!(has(
        &k,
        V4_16,
        "9.5.16.172.in-addr.arpa. 3600 PTR gw.home.arpa."
    ));
    assert!(has(
        &k,
        V6_64,
        &format!("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{V6_64}. 3600 PTR nas.home.arpa.")
    ));
    assert!(has(
        &k,
        V6_48,
        &format!("d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{V6_48}. 3600 PTR lab.home.arpa.")
    ));
    assert!(zone_lines(&k, V4_24).iter().all(|l| !l.contains("cam")));
}

#[test]
fn invalid_values_are_rejected_with_their_line_and_nothing_is_applied() {
    let k = knot();
    let v = ValuesDir::new();
    let path = v.write(
        "bad.yaml",
        "  - \"router A 192.168.1.1\"\n  - \"broken A 192.168.1.300\"\n",
    );
    let values = load_values(&[&path]).unwrap();
    let before = zone_lines(&k, "home.arpa");
    let serial_before = serial(&k, "home.arpa");
    let err = apply(&mut client(&k), &values, &ApplyOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RecordsError::Invalid(_)));
    assert!(
        text.contains(&format!("{}:10:5: invalid record", path.display())),
        "{text}"
    );
    assert_eq!(zone_lines(&k, "home.arpa"), before);
    assert_eq!(serial(&k, "home.arpa"), serial_before);

    // A zone the server does not have is rejected too, naming the zones entry.
    let p2 = v.write_raw(
        "nozone.yaml",
        "zones:\n  - name: home.arpa\n  - name: missing.test\nstaticRecords:\n  - \"x A 192.0.2.5\"\n",
    );
    let err = apply(
        &mut client(&k),
        &load_values(&[&p2]).unwrap(),
        &ApplyOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!(
            "{}:3:5: zone missing.test. does not exist",
            p2.display()
        )),
        "{err}"
    );
    assert_eq!(serial(&k, "home.arpa"), serial_before);
}

#[test]
fn safety_limit_stops_mass_deletion_unless_forced() {
    let k = knot();
    let v = ValuesDir::new();
    let mut all = String::new();
    for i in 0..20 {
        all.push_str(&format!(
            "  - name: h{i}\n    type: A\n    data: 192.168.1.{}\n    ptr: false\n",
            10 + i
        ));
    }
    apply_ok(&k, &v.load("all.yaml", &all));
    let mut few = String::new();
    for i in 0..5 {
        few.push_str(&format!(
            "  - name: h{i}\n    type: A\n    data: 192.168.1.{}\n    ptr: false\n",
            10 + i
        ));
    }
    let values = v.load("few.yaml", &few);
    let serial_before = serial(&k, "home.arpa");
    let err = apply(&mut client(&k), &values, &ApplyOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RecordsError::SafetyLimit { .. }), "{text}");
    assert!(
        text.contains("15 of 20 managed records (75%, limit 30%)"),
        "{text}"
    );
    assert_eq!(serial(&k, "home.arpa"), serial_before);
    assert!(has(&k, "home.arpa", "h19.home.arpa. 3600 A 192.168.1.29"));

    // A configurable limit: 80% lets it through; so does force with the default.
    let loose = ApplyOptions {
        force: false,
        limit: SafetyLimit {
            max_share: 0.8,
            min_records: 10,
        },
    };
    let (_, plan) = plan_from_knot(&mut client(&k), &values).unwrap();
    loose.limit.check(&plan).unwrap();
    let out = apply(
        &mut client(&k),
        &values,
        &ApplyOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.committed, ["home.arpa."]);
    assert!(!has(&k, "home.arpa", "h19.home.arpa. 3600 A 192.168.1.29"));
    assert!(has(&k, "home.arpa", "h4.home.arpa. 3600 A 192.168.1.14"));
}

#[test]
fn a_failing_commit_leaves_the_zone_as_it_was() {
    let k = knot();
    let v = ValuesDir::new();
    apply_ok(&k, &v.load("v1.yaml", "  - \"router A 192.168.1.1\"\n"));
    let values = v.load(
        "v2.yaml",
        "  - \"router A 192.168.1.1\"\n  - \"alias CNAME router\"\n  - \"extra A 192.168.1.9\"\n",
    );
    let (_, plan) = plan_from_knot(&mut client(&k), &values).unwrap();
    assert!(!plan.is_empty());
    // Between plan and apply, someone puts an A record at `alias`: the CNAME now breaks the
    // semantic check at commit.
    k.knotc_ok(&["zone-begin", "home.arpa"]);
    k.knotc_ok(&["zone-set", "home.arpa", "alias", "300", "A", "192.168.1.99"]);
    k.knotc_ok(&["zone-commit", "home.arpa"]);
    let before = zone_lines(&k, "home.arpa");
    let serial_before = serial(&k, "home.arpa");
    let err = apply_plan(&mut client(&k), plan, &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, RecordsError::Transaction { zone, message, applied }
            if zone == "home.arpa." && message.contains("zone-commit") && applied.is_empty()),
        "{err}"
    );
    assert_eq!(zone_lines(&k, "home.arpa"), before);
    assert_eq!(serial(&k, "home.arpa"), serial_before);
    assert!(
        client(&k).open_transactions(None).unwrap().is_empty(),
        "every transaction was aborted"
    );
    // The reverse zone's transaction (opened before the failing commit) was aborted as well.
    assert!(!has(
        &k,
        V4_24,
        "9.1.168.192.in-addr.arpa. 3600 PTR extra.home.arpa."
    ));

    // Replanned from the zone as it is now, the conflict is reported before anything is sent.
    let err = apply(&mut client(&k), &values, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, RecordsError::Conflict { .. }), "{err}");
}

#[test]
fn a_refused_change_aborts_the_transaction() {
    let k = knot();
    let v = ValuesDir::new();
    apply_ok(
        &k,
        &v.load(
            "v1.yaml",
            "  - \"router A 192.168.1.1\"\n  - \"old A 192.168.1.2\"\n",
        ),
    );
    let values = v.load(
        "v2.yaml",
        "  - \"router A 192.168.1.5\"\n  - \"new A 192.168.1.6\"\n",
    );
    let (_, plan) = plan_from_knot(&mut client(&k), &values).unwrap();
    // Someone removes router's record before the apply: unsetting it is refused mid-transaction.
    k.knotc_ok(&["zone-begin", "home.arpa"]);
    k.knotc_ok(&["zone-unset", "home.arpa", "router", "A", "192.168.1.1"]);
    k.knotc_ok(&["zone-commit", "home.arpa"]);
    let before = zone_lines(&k, "home.arpa");
    let serial_before = serial(&k, "home.arpa");
    let err = apply_plan(&mut client(&k), plan, &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, RecordsError::Transaction { message, .. } if message.contains("zone-unset")),
        "{err}"
    );
    assert_eq!(zone_lines(&k, "home.arpa"), before);
    assert_eq!(serial(&k, "home.arpa"), serial_before);
    assert!(client(&k).open_transactions(None).unwrap().is_empty());
}

/// Whether an apply with a connector fills zones side by side here: knotd serves several
/// control connections at once (Knot 3.4 and later) and there is more than one CPU.
fn side_by_side(k: &KnotServer) -> bool {
    let v = client(k).version().unwrap();
    (v.major, v.minor) >= (3, 4) && std::thread::available_parallelism().unwrap().get() > 1
}

/// Applies `plan` as the CLI does: with more connections where knotd serves them.
fn apply_plan_connected(
    k: &KnotServer,
    plan: records::Plan,
) -> Result<records::ApplyOutcome, RecordsError> {
    let connect = || Client::connect(k.socket_path());
    apply_plan_with(
        &mut client(k),
        Some(&connect),
        plan,
        &ApplyOptions::default(),
    )
}

#[test]
fn zones_filled_side_by_side_on_knot_3_4_all_abort_when_one_is_refused() {
    let k = knot();
    let v = ValuesDir::new();
    let many: String = (1..=40)
        .map(|i| format!("  - \"h{i} A 192.168.1.{i}\"\n"))
        .collect();
    let opened = AtomicUsize::new(0);
    let connect = || {
        opened.fetch_add(1, Ordering::SeqCst);
        Client::connect(k.socket_path())
    };
    let outcome = apply_with(
        &mut client(&k),
        Some(&connect),
        &v.load("v1.yaml", &many),
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(outcome.committed, ["home.arpa.", "1.168.192.in-addr.arpa."]);
    let side = opened.load(Ordering::SeqCst);
    if side_by_side(&k) {
        assert_eq!(side, 1, "one more connection for the second zone");
    } else {
        assert_eq!(
            side, 0,
            "a knotd before 3.4 serves one connection at a time"
        );
    }
    assert!(has(&k, "home.arpa", "h40.home.arpa. 3600 A 192.168.1.40"));
    assert!(has(
        &k,
        V4_24,
        "40.1.168.192.in-addr.arpa. 3600 PTR h40.home.arpa."
    ));

    // Next apply: h1 and h2 move; someone removes h2's PTR first, so the reverse zone's unset
    // is refused while the forward zone fills fine on the other connection.
    let moved = many
        .replace("h1 A 192.168.1.1\"", "h1 A 192.168.1.101\"")
        .replace("h2 A 192.168.1.2\"", "h2 A 192.168.1.102\"");
    let (_, plan) = plan_from_knot(&mut client(&k), &v.load("v2.yaml", &moved)).unwrap();
    k.knotc_ok(&["zone-begin", V4_24]);
    k.knotc_ok(&["zone-unset", V4_24, "2", "PTR", "h2.home.arpa."]);
    k.knotc_ok(&["zone-commit", V4_24]);
    let (home, reverse) = (zone_lines(&k, "home.arpa"), zone_lines(&k, V4_24));
    let serials = (serial(&k, "home.arpa"), serial(&k, V4_24));
    let err = apply_plan_connected(&k, plan).unwrap_err();
    assert!(
        matches!(&err, RecordsError::Transaction { zone, message, applied }
            if zone == "1.168.192.in-addr.arpa." && message.contains("zone-unset")
                && applied.is_empty()),
        "{err}"
    );
    assert_eq!(
        zone_lines(&k, "home.arpa"),
        home,
        "the forward zone is unchanged"
    );
    assert_eq!(zone_lines(&k, V4_24), reverse);
    assert_eq!((serial(&k, "home.arpa"), serial(&k, V4_24)), serials);
    assert!(
        client(&k).open_transactions(None).unwrap().is_empty(),
        "both transactions were aborted"
    );
}

#[test]
fn a_failing_commit_beside_another_zone_is_aborted_and_the_rest_reported() {
    let k = knot();
    let v = ValuesDir::new();
    apply_ok(&k, &v.load("v1.yaml", "  - \"router A 192.168.1.1\"\n"));
    let values = v.load(
        "v2.yaml",
        "  - \"router A 192.168.1.1\"\n  - \"alias CNAME router\"\n  - \"extra A 192.168.1.9\"\n",
    );
    let (_, plan) = plan_from_knot(&mut client(&k), &values).unwrap();
    // An A record at `alias` appears after the plan: home.arpa's commit fails its semantic
    // check; the reverse zone's transaction is fine.
    k.knotc_ok(&["zone-begin", "home.arpa"]);
    k.knotc_ok(&["zone-set", "home.arpa", "alias", "300", "A", "192.168.1.99"]);
    k.knotc_ok(&["zone-commit", "home.arpa"]);
    let before = zone_lines(&k, "home.arpa");
    let err = apply_plan_connected(&k, plan).unwrap_err();
    let RecordsError::Transaction {
        zone,
        message,
        applied,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(zone, "home.arpa.");
    assert!(message.contains("zone-commit"), "{message}");
    let ptr = "9.1.168.192.in-addr.arpa. 3600 PTR extra.home.arpa.";
    if side_by_side(&k) {
        // Committed side by side: the reverse zone's commit went through and is reported.
        assert_eq!(applied, &["1.168.192.in-addr.arpa.".to_owned()]);
        assert!(has(&k, V4_24, ptr));
    } else {
        // One after the other: the failure comes first and the reverse zone is aborted.
        assert!(applied.is_empty(), "{applied:?}");
        assert!(!has(&k, V4_24, ptr));
    }
    assert_eq!(zone_lines(&k, "home.arpa"), before);
    assert!(
        client(&k).open_transactions(None).unwrap().is_empty(),
        "the failed transaction was aborted"
    );
}

#[test]
fn ownership_survives_backup_and_restore() {
    let k = knot();
    let v = ValuesDir::new();
    let values = v.load("v.yaml", BASIC);
    apply_ok(&k, &values);
    let backup = k.dir().join("backup");
    k.knotc_ok(&[
        "-b",
        "zone-backup",
        "home.arpa",
        "+backupdir",
        backup.to_str().unwrap(),
    ]);
    // After the backup, the values lose a record and it is pruned.
    let fewer = v.load("v2.yaml", "  - \"router IN A 192.168.1.1\"\n");
    apply(
        &mut client(&k),
        &fewer,
        &ApplyOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!has(
        &k,
        "home.arpa",
        "www.home.arpa. 3600 CNAME router.home.arpa."
    ));
    // Restore: the zone and its ownership records come back together, so the original values
    // plan nothing for home.arpa, and the smaller values would prune again.
    k.knotc_ok(&[
        "-b",
        "zone-restore",
        "home.arpa",
        "+backupdir",
        backup.to_str().unwrap(),
    ]);
    let mut c = client(&k);
    let mut ready = false;
    for _ in 0..500 {
        if c.zone_status("home.arpa")
            .map(|s| s.serial.is_some())
            .unwrap_or(false)
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ready, "zone reloaded after restore");
    let (_, plan) = plan_from_knot(&mut c, &values).unwrap();
    let home = plan.zones.iter().find(|z| z.zone == "home.arpa.").unwrap();
    assert!(home.is_empty(), "{}", records::render_plan(&plan, false));
    let (_, plan) = plan_from_knot(&mut c, &fewer).unwrap();
    let home = plan.zones.iter().find(|z| z.zone == "home.arpa.").unwrap();
    assert_eq!(
        home.ownership_removed.len(),
        5,
        "{:?}",
        home.ownership_removed
    );
}
