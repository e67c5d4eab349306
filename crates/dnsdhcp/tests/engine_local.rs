//! The backup/restore engine against real daemons: `knotd` and `kea-dhcp4` from Debian, started
//! in temporary directories by `test_support`. Covers the full backup → destroy → restore cycle
//! for `--local` and for the in-pod roles, crash safety of `init-leases`, and backups killed with
//! SIGKILL.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dnsdhcp::archive::{self, Limits};
use dnsdhcp::backup::{self, LEASES_ARCHIVE, ZONES_ARCHIVE};
use dnsdhcp::pod::{self, LeasesInit, PostStartConfig};
use dnsdhcp::records::ApplyOptions;
use dnsdhcp::restore;
use dnsdhcp::target::LocalTarget;
use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const ZONE: &str = "home.test";
const ZONE_TEXT: &str = r#"$TTL 3600
@       IN SOA ns1 hostmaster 7 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.10
www     IN A   192.0.2.11
mail    300 IN AAAA 2001:db8::25
@       IN MX  10 mail
txt     IN TXT "semi;colon" "quote\"d" "back\\slash"
"#;

fn target(knot: &KnotServer, kea: Option<&KeaServer>) -> LocalTarget {
    LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        kea_socket: kea.map(|k| k.socket_path()).unwrap_or_default(),
        kea_lease_file: kea.map(|k| k.lease_file()).unwrap_or_default(),
        name: "test".into(),
    }
}

/// `pod post-start` for `knot` (its zones volume, the default apply options).
fn post_start_config(knot: &KnotServer, values_files: Vec<PathBuf>) -> PostStartConfig {
    PostStartConfig {
        target: target(knot, None),
        zones_dir: knot.zones_dir().to_owned(),
        values_files,
        timeout: Duration::from_secs(30),
        apply: ApplyOptions::default(),
    }
}

/// Every record the zone serves, one line each, sorted (TTL included).
fn served(t: &LocalTarget, zone: &str) -> BTreeSet<String> {
    let mut client = t.knot().expect("connect to knotd");
    client
        .zone_read(zone, None, None)
        .expect("zone-read")
        .map(|r| r.expect("record").to_string())
        .collect()
}

/// `records` with the SOA's serial replaced by `N`.
fn without_serial(records: BTreeSet<String>) -> BTreeSet<String> {
    records
        .into_iter()
        .map(|r| {
            let mut f: Vec<&str> = r.split(' ').collect();
            if f.get(2) == Some(&"SOA") && f.len() > 5 {
                f[5] = "N";
            }
            f.join(" ")
        })
        .collect()
}

fn serial(t: &LocalTarget, zone: &str) -> Option<u32> {
    t.knot().unwrap().zone_status(zone).unwrap().serial
}

/// Every lease Kea holds, as JSON, sorted by address.
fn held(t: &LocalTarget) -> Vec<String> {
    let mut leases = t.kea().lease4_get_all_paged(100).expect("lease4-get-page");
    leases.sort_by_key(|l| l.ip_address);
    leases
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

fn add_leases(kea: &KeaServer, n: u32) {
    let client = ControlClient::unix(kea.socket_path());
    for i in 0..n {
        // Hostnames with a comma, an ampersand and a non-ASCII byte: they must round-trip.
        let args = format!(
            r#"{{"ip-address": "10.77.1.{}", "hw-address": "02:00:00:00:01:{:02x}", "valid-lft": 4000, "hostname": "host{i},a&b\u00e9"}}"#,
            i + 1,
            i + 1
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
}

fn knotc(knot: &KnotServer, args: &[&str]) {
    knot.knotc_ok(args);
}

/// Changes the zone in ways a restore must undo: a record removed, one added, a TTL changed.
fn damage_zone(knot: &KnotServer) {
    knotc(knot, &["zone-begin", ZONE]);
    knotc(knot, &["zone-unset", ZONE, "www", "A", "192.0.2.11"]);
    knotc(
        knot,
        &["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"],
    );
    knotc(knot, &["zone-unset", ZONE, "mail", "AAAA"]);
    knotc(
        knot,
        &["zone-set", ZONE, "mail", "7200", "AAAA", "2001:db8::25"],
    );
    knotc(knot, &["zone-commit", ZONE]);
}

#[test]
fn local_backup_destroy_restore_cycle_with_real_knotd_and_kea() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 25);
    let t = target(&knot, Some(&kea));
    let out = tempfile::tempdir().unwrap();

    // A change through the control socket (like a dynamic update) must be in the backup.
    knotc(&knot, &["zone-begin", ZONE]);
    knotc(&knot, &["zone-set", ZONE, "dyn", "60", "A", "192.0.2.99"]);
    knotc(&knot, &["zone-commit", ZONE]);
    let zone_before = served(&t, ZONE);
    let serial_before = serial(&t, ZONE).unwrap();
    let leases_before = held(&t);
    assert_eq!(leases_before.len(), 25);
    assert!(zone_before.iter().any(|r| r.contains("dyn.home.test.")));

    let zb = backup::backup_zones(&t, out.path()).expect("backup zones");
    let lb = backup::backup_leases(&t, out.path()).expect("backup leases");
    for w in [&zb.full, &zb.zones, &lb.archive, &lb.latest] {
        let report = archive::verify(&w.path, &Limits::default());
        assert!(report.ok, "{}: {:?}", w.path.display(), report.problems);
        let mode = fs::metadata(&w.path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
    assert_eq!(zb.zones.path, out.path().join(ZONES_ARCHIVE));
    assert_eq!(lb.latest.path, out.path().join(LEASES_ARCHIVE));
    assert_eq!(zb.full.manifest.zones[0].serial, serial_before);
    assert_eq!(lb.archive.manifest.lease_count, 25);
    assert!(
        zb.full
            .manifest
            .files
            .iter()
            .any(|f| f.path == "knot_backup.label")
    );
    // Nothing but the four archives is left in the backup directory.
    let names: BTreeSet<String> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // Destroy, then restore from the full archive (Knot's zone-restore).
    damage_zone(&knot);
    t.kea().lease4_wipe(None).unwrap();
    assert_ne!(served(&t, ZONE), zone_before);
    assert!(held(&t).is_empty());
    let r = restore::restore_zones(&t, &zb.full.path).expect("restore full");
    assert_eq!(r.method, "zone-restore");
    assert_eq!(
        without_serial(served(&t, ZONE)),
        without_serial(zone_before.clone())
    );
    // The serial moves past the one served before (the damage's) and the archived one.
    let after_full = serial(&t, ZONE).unwrap();
    assert!(
        after_full > serial_before + 1,
        "{after_full} vs {serial_before}"
    );
    assert_eq!(r.zones[0].serial, after_full);

    // Destroy again, restore from zones.tar.gz (one transaction).
    damage_zone(&knot);
    let r = restore::restore_zones(&t, &zb.zones.path).expect("restore zones-only");
    assert_eq!(r.method, "transaction");
    assert_eq!(
        without_serial(served(&t, ZONE)),
        without_serial(zone_before.clone())
    );
    assert_eq!(serial(&t, ZONE), Some(after_full + 2));
    // With --keep-serial a second restore serves the archived serial exactly (below the served
    // one: reached RFC 1982-style), and then changes nothing.
    let keep = restore::ZoneRestoreOptions { keep_serial: true };
    restore::restore_zones_with(&t, &zb.zones.path, &keep).unwrap();
    assert_eq!(served(&t, ZONE), zone_before);
    assert_eq!(serial(&t, ZONE), Some(serial_before));
    restore::restore_zones_with(&t, &zb.zones.path, &keep).unwrap();
    assert_eq!(serial(&t, ZONE), Some(serial_before));
    // The zone takes changes again (the archived serial is below the one before the restore:
    // Knot's journal must not get in the way).
    knotc(&knot, &["zone-begin", ZONE]);
    knotc(&knot, &["zone-set", ZONE, "after", "60", "A", "192.0.2.77"]);
    knotc(&knot, &["zone-commit", ZONE]);
    assert_eq!(serial(&t, ZONE), Some(serial_before + 1));

    let r = restore::restore_leases(&t, &lb.latest.path).expect("restore leases");
    assert_eq!((r.archived, r.held), (25, 25));
    assert_eq!(held(&t), leases_before);
}

#[test]
fn restore_refuses_a_damaged_archive_before_changing_anything() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let t = target(&knot, None);
    let out = tempfile::tempdir().unwrap();
    let zb = backup::backup_zones(&t, out.path()).unwrap();
    damage_zone(&knot);
    let damaged = served(&t, ZONE);

    // Flip one byte of the compressed zone data (past the 10-byte gzip header).
    let mut bytes = fs::read(&zb.zones.path).unwrap();
    bytes[40] ^= 0xff;
    let bad = out.path().join("bad.tar.gz");
    fs::write(&bad, &bytes).unwrap();
    let err = restore::restore_zones(&t, &bad).expect_err("a damaged archive must be refused");
    assert!(matches!(err, restore::RestoreError::Verify { .. }), "{err}");
    assert_eq!(served(&t, ZONE), damaged, "the zone must be untouched");

    // An archive for a zone Knot does not serve is refused too.
    let other = KnotServer::start(&[("other.test", test_support::knot::MINIMAL_ZONE)]);
    let err = restore::restore_zones(&target(&other, None), &zb.full.path).unwrap_err();
    assert!(err.to_string().contains("home.test."), "{err}");
}

#[test]
fn pod_roles_restore_zones_and_leases_and_merge_static_records() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let mut kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 10);
    let t = target(&knot, Some(&kea));
    let out = tempfile::tempdir().unwrap();
    let zone_before = served(&t, ZONE);
    let serial_before = serial(&t, ZONE).unwrap();
    let leases_before = held(&t);
    backup::backup_zones(&t, out.path()).unwrap();
    backup::backup_leases(&t, out.path()).unwrap();

    // The original design's way: archives copied into the volumes, daemons restarted.
    damage_zone(&knot);
    t.kea().lease4_wipe(None).unwrap();
    kea.stop();
    let lease_file = kea.lease_file();
    let lease_dir = lease_file.parent().unwrap();
    fs::copy(
        out.path().join(LEASES_ARCHIVE),
        lease_dir.join(LEASES_ARCHIVE),
    )
    .unwrap();
    // Leftovers from an earlier LFC run that must not survive a restore.
    fs::write(format!("{}.2", lease_file.display()), "garbage\n").unwrap();
    fs::write(format!("{}.pid", lease_file.display()), "1\n").unwrap();
    let init = pod::init_leases(&lease_file).expect("init-leases");
    assert_eq!(init, LeasesInit::Restored { leases: 10 });
    assert!(!lease_dir.join(LEASES_ARCHIVE).exists(), "archive consumed");
    assert!(!Path::new(&format!("{}.2", lease_file.display())).exists());
    assert!(!Path::new(&format!("{}.pid", lease_file.display())).exists());
    assert_eq!(
        pod::init_leases(&lease_file).unwrap(),
        LeasesInit::NothingToRestore
    );
    kea.restart();
    assert_eq!(held(&t), leases_before);

    // post-start: a stale transaction, zones.tar.gz in the zones volume, static records.
    fs::copy(
        out.path().join(ZONES_ARCHIVE),
        knot.zones_dir().join(ZONES_ARCHIVE),
    )
    .unwrap();
    knotc(&knot, &["zone-begin", ZONE]);
    let values = out.path().join("values.yaml");
    fs::write(
        &values,
        "zones:\n  - name: home.test\nstaticRecords:\n  - \"router IN A 192.0.2.254\"\n",
    )
    .unwrap();
    let cfg = post_start_config(&knot, vec![values.clone()]);
    let mut log = Vec::new();
    pod::post_start(&cfg, &mut |l| log.push(l)).expect("post-start");
    let log = log.join("\n");
    assert!(
        log.contains("aborting a transaction left open on home.test."),
        "{log}"
    );
    assert!(!knot.zones_dir().join(ZONES_ARCHIVE).exists(), "{log}");
    let after = served(&t, ZONE);
    // Exactly the archive, plus the static record and the tool's ownership record.
    let extra: Vec<&String> = after.difference(&zone_before).collect();
    let missing: Vec<&String> = zone_before.difference(&after).collect();
    assert!(
        missing.iter().all(|r| r.contains(" SOA ")),
        "missing {missing:?}\n{log}"
    );
    assert!(
        extra
            .iter()
            .any(|r| r.starts_with("router.home.test. 3600 A 192.0.2.254")),
        "{extra:?}\n{log}"
    );
    assert!(
        extra.iter().all(|r| r.contains("router.home.test.")
            || r.contains(" SOA ")
            || r.contains("_dnsdhcp")),
        "unexpected records {extra:?}"
    );
    assert!(serial(&t, ZONE).unwrap() > serial_before);

    // Running post-start again (a container restart) changes nothing.
    let serial_now = serial(&t, ZONE);
    pod::post_start(&cfg, &mut |_| {}).expect("post-start again");
    assert_eq!(serial(&t, ZONE), serial_now);
}

#[test]
fn post_start_leaves_an_archive_this_knot_cannot_take_in_place_and_changes_nothing() {
    // The archive holds two zones; the Knot that starts serves only one of them.
    let both = KnotServer::builder()
        .zone(ZONE, ZONE_TEXT)
        .zone(
            "other.test",
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.9\n",
        )
        .start();
    let out = tempfile::tempdir().unwrap();
    backup::backup_zones(&target(&both, None), out.path()).unwrap();
    drop(both);

    let knot = KnotServer::builder().zone(ZONE, ZONE_TEXT).start();
    let t = target(&knot, None);
    damage_zone(&knot);
    let before = served(&t, ZONE);
    let archive = knot.zones_dir().join(ZONES_ARCHIVE);
    fs::copy(out.path().join(ZONES_ARCHIVE), &archive).unwrap();
    let cfg = post_start_config(&knot, Vec::new());
    let mut log = Vec::new();
    pod::post_start(&cfg, &mut |l| log.push(l)).expect("post-start");
    let log = log.join("\n");
    assert!(
        log.contains("archive left in place") && log.contains("other.test"),
        "{log}"
    );
    assert!(archive.exists(), "kept for the next start: {log}");
    assert_eq!(served(&t, ZONE), before, "home.test not touched: {log}");
}

#[test]
fn init_leases_completes_an_interrupted_restore_and_never_applies_an_archive_twice() {
    let mut kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 5);
    let t = LocalTarget {
        kea_socket: kea.socket_path(),
        kea_lease_file: kea.lease_file(),
        ..LocalTarget::default()
    };
    let out = tempfile::tempdir().unwrap();
    let archived = backup::backup_leases(&t, out.path()).unwrap();
    let before = held(&t);
    add_leases_from(&kea, 100, 3);
    kea.stop();
    let lease_file = kea.lease_file();
    let in_volume = lease_file.parent().unwrap().join(LEASES_ARCHIVE);
    fs::copy(&archived.latest.path, &in_volume).unwrap();

    // A crash right after the restore was committed (staged, archive not yet removed).
    dnsdhcp::leases::stage(&in_volume, &lease_file).unwrap();
    assert_eq!(
        pod::init_leases(&lease_file).unwrap(),
        LeasesInit::Completed
    );
    assert!(!in_volume.exists(), "the consumed archive must be removed");
    assert_eq!(
        pod::init_leases(&lease_file).unwrap(),
        LeasesInit::NothingToRestore
    );
    kea.restart();
    assert_eq!(held(&t), before);

    // A corrupt archive is moved aside; the lease files stay as they are.
    add_leases_from(&kea, 200, 2);
    let current = held(&t);
    kea.stop();
    let mut bytes = fs::read(&archived.latest.path).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 20);
    fs::write(&in_volume, bytes).unwrap();
    match pod::init_leases(&lease_file).unwrap() {
        LeasesInit::Rejected { moved_to, .. } => assert!(moved_to.exists()),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!in_volume.exists());
    kea.restart();
    assert_eq!(held(&t), current);
}

fn add_leases_from(kea: &KeaServer, first: u32, n: u32) {
    let client = ControlClient::unix(kea.socket_path());
    for i in first..first + n {
        let args = format!(
            r#"{{"ip-address": "10.77.2.{i}", "hw-address": "02:00:00:00:02:{:02x}", "valid-lft": 4000}}"#,
            i % 256
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
}

#[test]
fn init_zones_copies_only_missing_zone_files() {
    let dir = tempfile::tempdir().unwrap();
    let initial = dir.path().join("initial");
    let zones = dir.path().join("zones");
    fs::create_dir_all(&initial).unwrap();
    fs::create_dir_all(initial.join("..data")).unwrap();
    fs::create_dir_all(&zones).unwrap();
    fs::write(initial.join("a.test.zone"), "new a").unwrap();
    fs::write(initial.join("b.test.zone"), "new b").unwrap();
    fs::write(zones.join("a.test.zone"), "existing a").unwrap();
    let copied = pod::init_zones(&initial, &zones).unwrap();
    assert_eq!(copied, vec![zones.join("b.test.zone")]);
    assert_eq!(
        fs::read_to_string(zones.join("a.test.zone")).unwrap(),
        "existing a"
    );
    assert_eq!(
        fs::read_to_string(zones.join("b.test.zone")).unwrap(),
        "new b"
    );
    assert!(pod::init_zones(&initial, &zones).unwrap().is_empty());
    assert_eq!(
        fs::read_dir(&zones).unwrap().count(),
        2,
        "no temporaries left"
    );
}

/// A large zone, so that a backup takes long enough to be killed in the middle.
fn big_zone(records: usize) -> String {
    let mut text = String::from(ZONE_TEXT);
    for i in 0..records {
        text.push_str(&format!(
            "h{i} IN A 10.{}.{}.{}\n",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        ));
    }
    text
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn backup_killed_with_sigkill_leaves_previous_archives_intact() {
    let knot = KnotServer::start(&[(ZONE, &big_zone(30_000))]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 20);
    let out = tempfile::tempdir().unwrap();
    let run = |kill_after: Option<Duration>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnsdhcp"));
        cmd.args(["backup", "all", "--local", "--name", "test", "-b"])
            .arg(out.path())
            .arg("--knot-socket")
            .arg(knot.socket_path())
            .arg("--kea-socket")
            .arg(kea.socket_path())
            .arg("--kea-lease-file")
            .arg(kea.lease_file())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        match kill_after {
            None => {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Some(d) => {
                std::thread::sleep(d);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    };
    run(None);
    let zones = out.path().join(ZONES_ARCHIVE);
    let leases = out.path().join(LEASES_ARCHIVE);

    for ms in [0, 10, 40, 100, 250, 500] {
        run(Some(Duration::from_millis(ms)));
        // Every file under a final name is a complete archive; hidden temporaries are allowed.
        for f in files_in(out.path()) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            assert!(
                name.ends_with(".tar.gz"),
                "unexpected file {name} after a kill at {ms} ms"
            );
            let report = archive::verify(&f, &Limits::default());
            assert!(
                report.ok,
                "{name} after a kill at {ms} ms: {:?}",
                report.problems
            );
        }
        // zones.tar.gz and kea-leases.tar.gz are always there: the previous ones or new ones,
        // complete either way (verified above).
        assert!(zones.exists() && leases.exists(), "after a kill at {ms} ms");
    }
    // The knot staging directories of killed runs are hidden; a normal run still works.
    run(None);
}
