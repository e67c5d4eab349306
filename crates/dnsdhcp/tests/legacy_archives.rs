//! Archives written the original chart's way, without a manifest, built with the real tools
//! (`knotc zone-backup` + `tar czf`, `tar czf` of a real Kea lease directory with rotated
//! files) and restored into real `knotd` / `kea-dhcp4`: `restore --local` and the in-pod roles.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dnsdhcp::archive::{self, ArchiveKind, Limits};
use dnsdhcp::backup::{LEASES_ARCHIVE, ZONES_ARCHIVE};
use dnsdhcp::legacy::NO_MANIFEST_NOTE;
use dnsdhcp::pod::{self, LeasesInit, PostStartConfig};
use dnsdhcp::records::ApplyOptions;
use dnsdhcp::restore;
use dnsdhcp::target::LocalTarget;
use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const ZONE: &str = "home.test";
const REVERSE: &str = "2.0.192.in-addr.arpa";
const ZONE_TEXT: &str = r#"$TTL 3600
@       IN SOA ns1 hostmaster 41 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.10
mail    300 IN AAAA 2001:db8::25
@       IN MX  10 mail
txt     IN TXT "two words" "semi;colon"
"#;
const REVERSE_TEXT: &str = r#"$TTL 3600
@       IN SOA ns1.home.test. hostmaster.home.test. 9 3600 900 604800 300
@       IN NS  ns1.home.test.
10      IN PTR www.home.test.
"#;

fn knot_target(knot: &KnotServer) -> LocalTarget {
    LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        name: "test".into(),
        ..LocalTarget::default()
    }
}

fn kea_target(kea: &KeaServer) -> LocalTarget {
    LocalTarget {
        kea_socket: kea.socket_path(),
        kea_lease_file: kea.lease_file(),
        name: "test".into(),
        ..LocalTarget::default()
    }
}

/// Every record the zone serves, one line each, sorted.
/// Every record the zone serves, the SOA's serial replaced by `N` (a restore moves the serial
/// forward; [`serial`] checks it).
fn served(t: &LocalTarget, zone: &str) -> BTreeSet<String> {
    let mut client = t.knot().expect("connect to knotd");
    client
        .zone_read(zone, None, None)
        .expect("zone-read")
        .map(|r| {
            let mut r = r.expect("record");
            if r.rtype == "SOA" {
                let mut f: Vec<&str> = r.data.split_whitespace().collect();
                f[2] = "N";
                r.data = f.join(" ");
            }
            r.to_string()
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

/// `tar czf ARCHIVE -C DIR MEMBERS...` with GNU tar, as the original scripts ran it.
fn tar_czf(archive: &Path, dir: &Path, members: &[&str]) {
    let out = Command::new("tar")
        .arg("czf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .args(members)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn damage_zone(knot: &KnotServer) {
    for args in [
        &["zone-begin", ZONE][..],
        &["zone-unset", ZONE, "www", "A"],
        &["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"],
        &["zone-commit", ZONE],
    ] {
        knot.knotc_ok(args);
    }
}

fn assert_legacy_ok(archive: &Path, kind: ArchiveKind) -> archive::VerifyReport {
    let report = archive::verify(archive, &Limits::default());
    assert!(report.ok, "{}: {:?}", archive.display(), report.problems);
    assert!(report.legacy, "{}", archive.display());
    assert_eq!(report.kind, Some(kind));
    assert!(
        report.notes.iter().any(|n| n == NO_MANIFEST_NOTE),
        "{:?}",
        report.notes
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["legacy"], true);
    report
}

#[test]
fn zone_archives_made_with_knotc_zone_backup_and_tar_restore_locally_and_in_the_pod() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT), (REVERSE, REVERSE_TEXT)]);
    let t = knot_target(&knot);
    // A dynamic change, so the backup is Knot's memory, not the initial files.
    for args in [
        &["zone-begin", ZONE][..],
        &["zone-set", ZONE, "dyn", "60", "A", "192.0.2.99"],
        &["zone-commit", ZONE],
    ] {
        knot.knotc_ok(args);
    }
    let before = served(&t, ZONE);
    let reverse_before = served(&t, REVERSE);
    let serial_before = serial(&t, ZONE).unwrap();

    // The original backup: knotc zone-backup into a directory, then tar czf of it.
    let work = tempfile::tempdir().unwrap();
    let backup_dir = work.path().join("knot-backup-2025");
    knot.knotc_ok(&[
        "-b",
        "zone-backup",
        "+backupdir",
        backup_dir.to_str().unwrap(),
    ]);
    assert!(backup_dir.join("zonefiles").is_dir());
    let archives: Vec<PathBuf> = [
        (
            "knot-zones-unified-dns-dhcp-2025-01-01-10-00-00.tar.gz",
            backup_dir.as_path(),
            ".",
        ),
        ("top-dir.tar.gz", work.path(), "knot-backup-2025"),
        ("zonefiles-only.tar.gz", backup_dir.as_path(), "zonefiles"),
        (
            "zonefiles-content.tar.gz",
            &backup_dir.join("zonefiles"),
            ".",
        ),
    ]
    .iter()
    .map(|(name, dir, member)| {
        let path = work.path().join(name);
        tar_czf(&path, dir, &[member]);
        path
    })
    .collect();
    for a in &archives {
        let report = assert_legacy_ok(a, ArchiveKind::Zones);
        let zones: BTreeSet<&str> = report.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            zones,
            BTreeSet::from(["home.test.", "2.0.192.in-addr.arpa."]),
            "{}",
            a.display()
        );
        let z = report
            .zones
            .iter()
            .find(|z| z.name == "home.test.")
            .unwrap();
        assert_eq!(z.serial, serial_before);
    }

    // restore --local, from each form.
    for a in &archives {
        damage_zone(&knot);
        assert_ne!(served(&t, ZONE), before);
        let r = restore::restore_zones(&t, a).expect("restore a legacy zone archive");
        assert_eq!(r.archive, *a);
        assert_eq!(r.method, "transaction");
        assert_eq!(served(&t, ZONE), before, "{}", a.display());
        assert_eq!(served(&t, REVERSE), reverse_before);
        assert!(serial(&t, ZONE).unwrap() > serial_before + 1);
    }

    // The in-pod role: zones.tar.gz in the zones volume, as the original restore script put it.
    damage_zone(&knot);
    fs::copy(&archives[2], knot.zones_dir().join(ZONES_ARCHIVE)).unwrap();
    let cfg = PostStartConfig {
        target: t.clone(),
        zones_dir: knot.zones_dir().to_owned(),
        values_files: Vec::new(),
        timeout: Duration::from_secs(30),
        apply: ApplyOptions::default(),
    };
    let mut log = Vec::new();
    pod::post_start(&cfg, &mut |l| log.push(l)).expect("post-start");
    let log = log.join("\n");
    assert!(log.contains(NO_MANIFEST_NOTE), "{log}");
    assert!(!knot.zones_dir().join(ZONES_ARCHIVE).exists(), "{log}");
    assert_eq!(served(&t, ZONE), before, "{log}");
    // Nothing of the conversion is left in the volume.
    let leftovers: Vec<_> = fs::read_dir(knot.zones_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".dnsdhcp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn legacy_zone_archives_with_a_bad_zone_file_or_a_truncated_stream_are_refused() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let t = knot_target(&knot);
    let work = tempfile::tempdir().unwrap();
    let zonefiles = work.path().join("zonefiles");
    fs::create_dir(&zonefiles).unwrap();
    let bad = ZONE_TEXT.replace("192.0.2.10", "192.0.2.300");
    fs::write(zonefiles.join("home.test.zone"), bad).unwrap();
    let archive = work.path().join(ZONES_ARCHIVE);
    tar_czf(&archive, work.path(), &["zonefiles"]);
    let report = archive::verify(&archive, &Limits::default());
    assert!(!report.ok);
    assert!(report.legacy);
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("zonefiles/home.test.zone:5: "),
        "{:?}",
        report.problems
    );
    let before = served(&t, ZONE);
    assert!(restore::restore_zones(&t, &archive).is_err());
    assert_eq!(served(&t, ZONE), before);

    // A good archive cut short: refused (no end-of-archive blocks), nothing changed.
    fs::write(zonefiles.join("home.test.zone"), ZONE_TEXT).unwrap();
    for i in 0..40 {
        fs::write(
            zonefiles.join(format!("filler{i}.zone")),
            format!("{ZONE_TEXT}; {}\n", "x".repeat(4000 + i)),
        )
        .unwrap();
    }
    tar_czf(&archive, work.path(), &["zonefiles"]);
    let bytes = fs::read(&archive).unwrap();
    let cut = work.path().join("cut.tar.gz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(!archive::verify(&cut, &Limits::default()).ok);
    assert!(restore::restore_zones(&t, &cut).is_err());

    // Members escaping the extraction directory are refused like in any archive.
    let evil_dir = work.path().join("evil");
    fs::create_dir(&evil_dir).unwrap();
    fs::write(evil_dir.join("x.zone"), ZONE_TEXT).unwrap();
    let evil = work.path().join("evil.tar.gz");
    let out = Command::new("tar")
        .arg("czf")
        .arg(&evil)
        .arg("-P")
        .arg("--transform=s,^,../,")
        .arg("-C")
        .arg(&evil_dir)
        .arg("x.zone")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = archive::verify(&evil, &Limits::default());
    assert!(!report.ok);
    assert!(
        report.problems[0].to_string().contains(".."),
        "{:?}",
        report.problems
    );
    assert_eq!(served(&t, ZONE), before);
}

fn add_leases(kea: &KeaServer, first: u32, n: u32, subnet: &str) {
    let client = ControlClient::unix(kea.socket_path());
    for i in first..first + n {
        let args = format!(
            r#"{{"ip-address": "10.77.1.{i}", "hw-address": "02:00:00:00:01:{i:02x}", "valid-lft": 4000, "hostname": "host{i},a&b"{subnet}}}"#
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
}

fn del_lease(kea: &KeaServer, ip: &str) {
    ControlClient::unix(kea.socket_path())
        .call("lease4-del", Some(&format!(r#"{{"ip-address": "{ip}"}}"#)))
        .expect("lease4-del");
}

/// A lease directory as the original chart had it: Kea's files under the original name
/// `dhcp4.leases`, rotated by a real LFC run, with a `.1` from an interrupted LFC, a `.pid`,
/// lock files and unrelated files beside. Returns (the directory, the leases Kea held).
fn original_lease_dir(work: &Path) -> (PathBuf, Vec<String>) {
    let data = work.join("kea-data");
    let mut kea = KeaServer::start(KeaConfig::new().lfc_interval(1).data_dir(&data));
    add_leases(&kea, 1, 12, "");
    // Wait for a real LFC run to produce X.2.
    let lease_file = kea.lease_file();
    let previous = PathBuf::from(format!("{}.2", lease_file.display()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !previous.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no LFC run: {}",
            kea.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rows after the LFC run go to a fresh X.
    add_leases(&kea, 30, 2, "");
    del_lease(&kea, "10.77.1.7");
    kea.stop();
    // An interrupted LFC: X renamed to X.1, Kea started again (no LFC now) appending to a new X.
    if lease_file.exists() {
        fs::rename(&lease_file, format!("{}.1", lease_file.display())).unwrap();
    }
    let mut kea = KeaServer::start(KeaConfig::new().data_dir(&data));
    let t = kea_target(&kea);
    add_leases(&kea, 20, 4, "");
    del_lease(&kea, "10.77.1.3");
    add_leases(&kea, 3, 1, "");
    del_lease(&kea, "10.77.1.5");
    let leases = held(&t);
    assert_eq!(leases.len(), 16);
    kea.stop();

    let dir = work.join("var-lib-kea");
    fs::create_dir(&dir).unwrap();
    for suffix in ["", ".1", ".2"] {
        let src = format!("{}{suffix}", lease_file.display());
        if Path::new(&src).exists() {
            fs::copy(&src, dir.join(format!("dhcp4.leases{suffix}"))).unwrap();
        }
    }
    fs::write(dir.join("dhcp4.leases.pid"), "999999\n").unwrap();
    fs::write(dir.join("kea-dhcp4.kea-dhcp4.pid"), "1\n").unwrap();
    fs::write(dir.join("logger_lockfile"), "").unwrap();
    fs::write(dir.join("notes.txt"), "not a lease file\n").unwrap();
    (dir, leases)
}

#[test]
fn lease_archives_of_the_original_lease_directory_restore_locally_and_in_the_pod() {
    let work = tempfile::tempdir().unwrap();
    let (dir, leases) = original_lease_dir(work.path());
    let archive = work
        .path()
        .join("kea-leases-unified-dns-dhcp-2025-01-01-10-00-00.tar.gz");
    tar_czf(&archive, &dir, &["."]);
    let report = assert_legacy_ok(&archive, ArchiveKind::Leases);
    assert_eq!(report.lease_count, leases.len() as u64);
    let files: BTreeSet<&str> = report.lease_files.iter().map(|f| f.file.as_str()).collect();
    assert!(files.contains("dhcp4.leases"), "{files:?}");
    assert!(files.contains("dhcp4.leases.1") && files.contains("dhcp4.leases.2"));
    assert!(!files.iter().any(|f| f.ends_with(".pid")));

    // restore --local into a running Kea (lease file kea-leases4.csv): the same lease set.
    let kea = KeaServer::start(KeaConfig::new());
    let t = kea_target(&kea);
    add_leases(&kea, 100, 3, "");
    let r = restore::restore_leases(&t, &archive).expect("restore legacy leases");
    assert_eq!((r.archived, r.held), (16, 16));
    assert_eq!(held(&t), leases);
    drop(kea);

    // The in-pod role: kea-leases.tar.gz beside the lease file, before Kea starts.
    let mut kea = KeaServer::start(KeaConfig::new());
    let t = kea_target(&kea);
    add_leases(&kea, 100, 3, "");
    kea.stop();
    let lease_file = kea.lease_file();
    let in_volume = lease_file.parent().unwrap().join(LEASES_ARCHIVE);
    tar_czf(
        &in_volume,
        &dir,
        &[
            "dhcp4.leases",
            "dhcp4.leases.1",
            "dhcp4.leases.2",
            "dhcp4.leases.pid",
        ],
    );
    assert_eq!(
        pod::init_leases(&lease_file).unwrap(),
        LeasesInit::Restored { leases: 16 }
    );
    assert!(!in_volume.exists(), "the archive is consumed");
    let names: Vec<String> = fs::read_dir(lease_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.contains("leases"))
        .collect();
    assert!(
        names.iter().all(|n| n == "kea-leases4.csv"),
        "only the restored lease file may remain: {names:?}"
    );
    kea.restart();
    assert_eq!(held(&t), leases);
}

#[test]
fn legacy_lease_archives_apply_kea_load_order_and_refuse_bad_rows() {
    let work = tempfile::tempdir().unwrap();
    let (dir, leases) = original_lease_dir(work.path());
    // X.completed present: Kea loads it instead of X.2 and X.1.
    let completed_dir = work.path().join("completed");
    fs::create_dir(&completed_dir).unwrap();
    fs::copy(
        dir.join("dhcp4.leases.2"),
        completed_dir.join("dhcp4.leases.completed"),
    )
    .unwrap();
    fs::copy(dir.join("dhcp4.leases"), completed_dir.join("dhcp4.leases")).unwrap();
    fs::write(
        completed_dir.join("dhcp4.leases.1"),
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
         10.77.1.250,02:00:00:00:01:fa,,4000,1900000000,1,0,0,stale,0,\n",
    )
    .unwrap();
    let archive = work.path().join(LEASES_ARCHIVE);
    tar_czf(&archive, work.path(), &["completed"]);
    let report = assert_legacy_ok(&archive, ArchiveKind::Leases);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("completed/dhcp4.leases.1")),
        "{:?}",
        report.notes
    );
    // What a real Kea loads from these very files is the reference.
    let reference = work.path().join("reference");
    for (from, suffix) in [
        ("dhcp4.leases.completed", ".completed"),
        ("dhcp4.leases", ""),
        ("dhcp4.leases.1", ".1"),
    ] {
        fs::create_dir_all(&reference).unwrap();
        fs::copy(
            completed_dir.join(from),
            reference.join(format!("kea-leases4.csv{suffix}")),
        )
        .unwrap();
    }
    let kea = KeaServer::start(KeaConfig::new().data_dir(&reference));
    let expected = held(&kea_target(&kea));
    drop(kea);
    assert!(!expected.iter().any(|l| l.contains("10.77.1.250")));
    assert_ne!(expected, leases, "the .1 file must make a difference");

    let kea = KeaServer::start(KeaConfig::new());
    let t = kea_target(&kea);
    restore::restore_leases(&t, &archive).expect("restore");
    assert_eq!(held(&t), expected);

    // A bad row: refused, naming the member and line; Kea's leases untouched.
    let bad_dir = work.path().join("bad");
    fs::create_dir(&bad_dir).unwrap();
    let mut text = fs::read_to_string(dir.join("dhcp4.leases.2")).unwrap();
    text.push_str("10.77.1.77,zz:00,,4000,1900000000,1,0,0,bad,0,\n");
    let line = text.lines().count();
    fs::write(bad_dir.join("dhcp4.leases"), text).unwrap();
    tar_czf(&archive, &bad_dir, &["dhcp4.leases"]);
    let report = archive::verify(&archive, &Limits::default());
    assert!(!report.ok);
    assert!(
        report.problems[0]
            .to_string()
            .starts_with(&format!("dhcp4.leases:{line}: ")),
        "{:?}",
        report.problems
    );
    let before = held(&t);
    assert!(restore::restore_leases(&t, &archive).is_err());
    assert_eq!(held(&t), before);

    // A torn last row (the file was being appended to): left out, as Kea does.
    let mut text = fs::read_to_string(dir.join("dhcp4.leases.2")).unwrap();
    text.push_str("10.77.1.78,02:00:00:0");
    fs::write(bad_dir.join("dhcp4.leases"), text).unwrap();
    tar_czf(&archive, &bad_dir, &["dhcp4.leases"]);
    let report = assert_legacy_ok(&archive, ArchiveKind::Leases);
    assert!(
        report.notes.iter().any(|n| n.contains("torn")),
        "{:?}",
        report.notes
    );
}

/// Values written for the original chart: no top-level `staticRecords`, records per segment.
const ORIGINAL_VALUES: &str = r#"global:
  namespace: dns-dhcp
segments:
  - name: "128"
    domain: seg128.test
    ipv4:
      network: 192.0.2.0/24
      dhcpRange:
        start: 192.0.2.100
        end: 192.0.2.200
    staticRecords:
      - "nas IN A 192.0.2.10"
      - "www IN CNAME nas"
"#;

fn segment_zone(name: &str) -> String {
    format!(
        "$TTL 3600\n@ IN SOA ns1.{name}. hostmaster.{name}. 1 3600 900 604800 300\n@ IN NS ns1.seg128.test.\n"
    )
}

#[test]
fn records_plan_and_apply_read_segments_static_records_into_real_knotd() {
    let (fwd, rev) = ("seg128.test", "2.0.192.in-addr.arpa");
    let knot = KnotServer::start(&[(fwd, &segment_zone(fwd)), (rev, &segment_zone(rev))]);
    let work = tempfile::tempdir().unwrap();
    let values = work.path().join("old-values.yaml");
    fs::write(&values, ORIGINAL_VALUES).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dnsdhcp"))
            .args(args)
            .arg("-f")
            .arg(&values)
            .arg("--local")
            .arg("--knot-socket")
            .arg(knot.socket_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plan = run(&["records", "plan"]);
    assert!(plan.contains("nas.seg128.test."), "{plan}");
    assert!(plan.contains("10.2.0.192.in-addr.arpa."), "{plan}");
    run(&["records", "apply"]);
    let a = knot.knotc_ok(&["zone-read", fwd, "nas", "A"]);
    assert!(a.contains("3600 A 192.0.2.10"), "{a}");
    let cname = knot.knotc_ok(&["zone-read", fwd, "www", "CNAME"]);
    assert!(cname.contains("nas.seg128.test."), "{cname}");
    let ptr = knot.knotc_ok(&["zone-read", rev, "10", "PTR"]);
    assert!(ptr.contains("nas.seg128.test."), "{ptr}");
    // Applying again changes nothing.
    let again = run(&["records", "apply"]);
    assert!(again.contains("nothing to apply"), "{again}");

    // Records under a key the tool does not read: an error naming the key, nothing applied.
    fs::write(
        &values,
        "zones:\n  - name: seg128.test\ndns:\n  staticRecords:\n    - \"lost IN A 192.0.2.99\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dnsdhcp"))
        .args(["records", "plan", "-f"])
        .arg(&values)
        .args(["--local", "--knot-socket"])
        .arg(knot.socket_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`dns.staticRecords`"), "{err}");
}
