//! `load_effective` against kea-dhcp4 itself: a lease directory with tricky rows over `.2`, `.1`
//! and the current file; Kea loads it at start-up and must hold exactly the set this crate
//! computes, and skip exactly the rows this crate reports as malformed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kea_leases::control::{ControlClient, KeaLease};
use kea_leases::load::{Role, load_effective, load_effective_with, pid_path};
use kea_leases::snapshot::Snapshot;
use test_support::kea::{KeaConfig, KeaServer};

const H10: &str =
    "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n";
const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";

/// Writes `.2` (older 10-column header), `.1` and (if `with_current`) the current file, full
/// of rows Kea treats specially; returns the lease file path.
fn write_tricky(dir: &Path, with_current: bool) -> PathBuf {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let e = now + 86_400; // expire for a one-day lease with cltt = now
    let inf = now + 4_294_967_295;
    let x = dir.join("kea-leases4.csv");

    // .2 with the older 10-column header (state, no user_context).
    fs::write(
        Role::Previous.path_for(&x),
        format!(
            "{H10}\
10.77.1.1,00:0c:01:02:03:01,,86400,{e},1,0,0,one,0\n\
10.77.1.2,00:0c:01:02:03:02,01:00:0c:01:02:03:02,86400,{e},1,1,1,two,0\n\
10.77.1.3,0:C:1:2:3:A3,,86400,{e},1,0,0,UPPER,0\n\
\n\
10.77.1.4,000c01020304,,86400,{e},1,0,0,nocolon,0\n\
10.77.1.12,00:0c:01:02:03:0c,,86400,{e},1,0,0,cr,0\r\n"
        ),
    )
    .unwrap();
    // .1 (Kea 2.2 header).
    fs::write(
        Role::Rotated.path_for(&x),
        format!(
            "{H11}\
10.77.1.2,00:0c:01:02:03:02,01:00:0c:01:02:03:02,0,{e},1,1,1,two,0,\n\
10.77.1.5,,,86400,{e},1,0,0,,1,\n\
10.77.1.6,,,86400,{e},1,0,0,,0,\n\
10.77.1.7,00:0c:01:02:03:07,,86400,{e},1,0,0,a&#x2cb&#x26c&#x4A&#x4a&#xZZ,0,\n\
10.77.1.8,00:0c:01:02:03:08,,4294967295,{inf},1,0,0,forever,0,\n\
10.77.1.9,00:0c:01:02:03:09,,86400,{e},1,0,0,ctx,0,{{ \"a\": \"b&#x2cc \\u00c3\\u00a9\" }}\n\
10.77.1.10,00:0c:01:02:03:0a,,86400,{e},1,0,0,badctx,0,[ 1 ]\n\
10.77.1.17,00:0c:01:02:03:11,,86400,{e},1,0,0,Caf\u{e9}-CTX,0,{{\"z\":1&#x2c\"a\":{{\"y\":[true&#x2cnull&#x2c\"x\\u00e9\\/\u{e9}\"]}}&#x2c\"m\":{{}}}}\n"
        ),
    )
    .unwrap();
    if with_current {
        // The current file, its last row torn (no line feed) but complete.
        fs::write(
            &x,
            format!(
                "{H11}\
10.77.1.1,00:0c:01:02:03:01,,86400,{e},1,0,0,one-renewed,0,\n\
10.77.1.13,00:0c:01:02:03:0d,,86400,{e},1,2,0,badfqdn,0,\n\
10.77.1.14,00:0c:01:02:03:0e,01,86400,{e},1,0,0,shortcid,0,\n\
10.77.1.15,,01:02:03,86400,{e},1,0,0,cidonly,0,\n\
10.77.1.16,00:0c:01:02:03:10,,86400,{e},1,0,0,torn,0,"
            ),
        )
        .unwrap();
    }
    x
}

#[test]
fn kea_loads_exactly_the_effective_set_and_skips_exactly_the_reported_rows() {
    let dir = tempfile::tempdir().unwrap();
    let x = write_tricky(dir.path(), true);
    let expected = load_effective(&x).unwrap();
    let bad: Vec<String> = expected
        .errors
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.file.file_name().unwrap().to_string_lossy(),
                e.line
            )
        })
        .collect();
    assert_eq!(
        bad,
        [
            "kea-leases4.csv.2:6",
            "kea-leases4.csv.2:7",
            "kea-leases4.csv.1:4",
            "kea-leases4.csv.1:8",
            "kea-leases4.csv:3",
            "kea-leases4.csv:4"
        ],
        "{:#?}",
        expected.errors
    );

    let kea = KeaServer::start(KeaConfig::new().data_dir(dir.path()));
    let c = ControlClient::unix(kea.socket_path());
    let api = c.lease4_get_all_paged(100).unwrap();
    let ours: Vec<KeaLease> = expected.leases.values().map(KeaLease::from_lease).collect();
    let fmt = |v: &[KeaLease]| serde_json::to_string_pretty(v).unwrap();
    assert_eq!(ours, api, "ours: {}\nkea: {}", fmt(&ours), fmt(&api));

    // Kea logged one discarded row per malformed row we reported.
    let log = fs::read_to_string(kea.dir().join("kea-dhcp4.log")).unwrap();
    let discarded = log.matches("LEASE_LOAD_ROW_ERROR").count();
    assert_eq!(discarded, expected.errors.len(), "{log}");
}

#[test]
fn compaction_matches_kea_lfc_output_byte_for_byte() {
    let kea = KeaServer::start(KeaConfig::new());
    let dir = tempfile::tempdir().unwrap();
    let x = write_tricky(dir.path(), false);
    let snap = Snapshot::take(&x).unwrap();
    let comp = snap.compact().unwrap();
    let mut ours = Vec::new();
    comp.write_to(&mut ours).unwrap();
    drop(comp);
    drop(snap);
    let status = test_support::kea::lfc_command()
        .arg("-4")
        .arg("-x")
        .arg(Role::Previous.path_for(&x))
        .arg("-i")
        .arg(Role::Rotated.path_for(&x))
        .arg("-o")
        .arg(dir.path().join("kea-leases4.csv.output"))
        .arg("-f")
        .arg(Role::Completed.path_for(&x))
        .arg("-p")
        .arg(pid_path(&x))
        .arg("-c")
        .arg(kea.dir().join("kea-dhcp4.conf"))
        .env("KEA_LOCKFILE_DIR", dir.path())
        .env("KEA_PIDFILE_DIR", dir.path())
        .status()
        .expect("kea-lfc (Debian package kea-common) is missing");
    assert!(status.success());
    let lfc = fs::read(Role::Previous.path_for(&x)).unwrap();
    if kea.daemons().kea_2_6() {
        // Kea 2.6's kea-lfc writes its own 12-column schema (pool_id last, 0 here) whatever the
        // input's: the same rows, re-serialised with that header. (Our compaction keeps the
        // newest file's header; on a running 2.6 that is the 12-column one.)
        let parsed = kea_leases::csv::LeaseFile::parse(&ours, "ours").unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let upgraded = kea_leases::csv::LeaseFile {
            header: Some(kea_leases::csv::Header::kea_2_4()),
            ..parsed
        };
        ours = upgraded.to_bytes();
    }
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&lfc),
        "compaction differs from kea-lfc's output"
    );
}

/// Rows Kea reads its own way, in `.2` (10-column header) and the current file (11 columns):
/// more values than the header (Kea 2.2 ignores them, 2.4+ reads a twelfth as `pool_id`),
/// fewer (skipped), CRLF line ends (a CR sticks to the last field), signs on numbers (`-1` wraps
/// around), a blank in a field, states and subnets no configuration names.
fn write_odd(dir: &Path) -> PathBuf {
    let e = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let x = dir.join("kea-leases4.csv");
    let mac = |i: u32| format!("00:0c:01:02:{:02x}:{:02x}", i >> 8, i & 255);
    let row = |i: u32, rest: &str| format!("10.77.2.{i},{},,86400,{e},1,0,0,{rest}\n", mac(i));
    let mut old = String::from(H10);
    old.push_str(&row(1, "ten,0"));
    old.push_str(&row(2, "eleven,0,{ \"x\": 1 }"));
    old.push_str(&row(3, "nine"));
    old.push_str(&row(4, "crlf,0\r"));
    fs::write(Role::Previous.path_for(&x), old).unwrap();
    let mut cur = String::from(H11);
    for (i, rest) in [
        (10, "ok,0,"),
        (11, "twelve,0,,7"),
        (12, "thirteen,0,,7,x"),
        (13, "twelve-bad,0,,abc"),
        (14, "twelve-empty,0,,"),
        (15, "ten,0"),
        (16, "nine"),
        (17, "crlf,0,\r"),
        (18, "crlf-ctx,0,{ \"a\": 1 }\r"),
        (19, "state9,9,"),
    ] {
        cur.push_str(&row(i, rest));
    }
    cur.push_str(&format!("10.77.2.20,{},,-1,{e},1,0,0,minus,0,\n", mac(20)));
    cur.push_str(&format!(
        "10.77.2.21,{},,+3600,{e},0,0,0,plus-subnet0,0,\n",
        mac(21)
    ));
    cur.push_str(&format!(
        "10.77.2.22, {},,3600,{e},1,0,0,blank,0,\n",
        mac(22)
    ));
    cur.push_str(&format!(
        "10.77.2.23,{},,4294967296,{e},1,0,0,overflow,0,\n",
        mac(23)
    ));
    fs::write(&x, cur).unwrap();
    x
}

#[test]
fn odd_rows_load_exactly_as_kea_loads_them_and_a_backup_keeps_them() {
    let kea_columns = if test_support::daemons::Daemons::from_env().kea_2_6() {
        12
    } else {
        11
    };
    // What Kea will hold, computed on a copy (Kea 2.6 rewrites the files when it starts).
    let copy = tempfile::tempdir().unwrap();
    let expected = load_effective_with(&write_odd(copy.path()), Some(kea_columns)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let x = write_odd(dir.path());
    let kea = KeaServer::start(KeaConfig::new().data_dir(dir.path()));
    let c = ControlClient::unix(kea.socket_path());
    let api = c.lease4_get_all_paged(100).unwrap();
    let ours: Vec<KeaLease> = expected.leases.values().map(KeaLease::from_lease).collect();
    let fmt = |v: &[KeaLease]| serde_json::to_string_pretty(v).unwrap();
    assert_eq!(ours, api, "ours: {}\nkea: {}", fmt(&ours), fmt(&api));
    let log = fs::read_to_string(kea.dir().join("kea-dhcp4.log")).unwrap();
    let discarded = log.matches("LEASE_LOAD_ROW_ERROR").count();
    assert_eq!(
        discarded,
        expected.errors.len(),
        "{:#?}\n{log}",
        expected.errors
    );

    // A backup of the live directory (whatever Kea did to it at start-up) holds exactly the
    // leases Kea holds, as Kea holds them.
    let snap = Snapshot::take(&x).unwrap();
    let comp = snap.compact().unwrap();
    let mut bytes = Vec::new();
    comp.write_to(&mut bytes).unwrap();
    let file = kea_leases::csv::LeaseFile::parse(&bytes, "backup").unwrap();
    assert!(file.errors.is_empty(), "{:?}", file.errors);
    let backup: Vec<KeaLease> = file
        .records
        .iter()
        .map(|r| {
            let mut l = r.lease.clone();
            l.normalize();
            KeaLease::from_lease(&l)
        })
        .collect();
    assert_eq!(backup, api, "backup: {}\nkea: {}", fmt(&backup), fmt(&api));
}
