//! `dnsdhcp import` of the original chart's `restore-scripts/` archives, generated exactly as
//! its backup scripts (`scripts/backup-knot-zones.ts`, `scripts/backup-kea-leases.ts`) write
//! them from the real `knotc zone-status` / `knotc zone-read` and `lease4-get-all` output, then
//! restored into real `knotd` / `kea-dhcp4`: `restore --local` and the in-pod roles.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dnsdhcp::archive::{self, ArchiveKind, Limits};
use dnsdhcp::backup::{LEASES_ARCHIVE, ZONES_ARCHIVE};
use dnsdhcp::legacy;
use dnsdhcp::pod::{self, LeasesInit, PostStartConfig};
use dnsdhcp::records::ApplyOptions;
use dnsdhcp::restore;
use dnsdhcp::target::LocalTarget;
use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const ZONE: &str = "home.test";
const ZONE_TEXT: &str = r#"$TTL 3600
@       IN SOA ns1 hostmaster 41 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.10
www     IN A   192.0.2.11
mail    300 IN AAAA 2001:db8::25
@       IN MX  10 mail
txt     IN TXT "two words" "semi;colon"
sub     IN NS  ns.sub
ns.sub  IN A   192.0.2.53
"#;
/// The target zone of a new install: its own SOA and NS, other data.
const TARGET_TEXT: &str = r#"$TTL 3600
@       IN SOA ns9 admin 2025010100 3600 900 604800 300
@       IN NS  ns9
ns9     IN A   192.0.2.9
old     IN A   192.0.2.200
"#;

/// `backup-knot-zones.ts` at the original chart's commit 092b784, line for line: the zone
/// list from `knotc zone-status`, one script per zone from `knotc zone-read`, SOA and NS
/// left out, owners made relative, rdata between double quotes as printed.
fn original_zone_scripts(knot: &KnotServer, dir: &Path) {
    let scripts = dir.join("restore-scripts");
    fs::create_dir_all(&scripts).unwrap();
    let status = knot.knotc_ok(&["zone-status"]);
    let zones: Vec<String> = status
        .lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| Some(l[1..].split(']').next()?.to_owned()))
        .collect();
    assert!(!zones.is_empty(), "{status}");
    let generated = "2025-11-14T10:00:00.000Z";
    for zone in &zones {
        let read = knot.knotc_ok(&["zone-read", zone]);
        let mut script =
            format!("#!/bin/sh\n# Restore script for zone: {zone}\n# Generated: {generated}\n\n");
        script.push_str(&format!("set -e\n\necho \"Restoring zone: {zone}\"\n"));
        script.push_str(&format!(
            "knotc zone-begin \"{zone}\" 2>/dev/null || true\n\n"
        ));
        let mut count = 0;
        for line in read.lines().filter(|l| !l.trim().is_empty()) {
            // /^\[([^\]]+)\]\s+(\S+)\s+(\d+)\s+(\S+)\s+(.+)$/
            let Some(rest) = line.strip_prefix('[') else {
                continue;
            };
            let Some((_, rest)) = rest.split_once(']') else {
                continue;
            };
            let mut it = rest.trim_start().splitn(2, char::is_whitespace);
            let owner = it.next().unwrap();
            let mut it = it
                .next()
                .unwrap()
                .trim_start()
                .splitn(2, char::is_whitespace);
            let ttl = it.next().unwrap();
            assert!(ttl.chars().all(|c| c.is_ascii_digit()), "{line}");
            let mut it = it
                .next()
                .unwrap()
                .trim_start()
                .splitn(2, char::is_whitespace);
            let rtype = it.next().unwrap();
            let rdata = it.next().unwrap().trim_start();
            if rtype == "SOA" || rtype == "NS" {
                continue;
            }
            let relative = if let Some(r) = owner.strip_suffix(&format!(".{zone}")) {
                r.to_owned()
            } else if owner == format!("{zone}.") {
                "@".to_owned()
            } else {
                owner.to_owned()
            };
            script.push_str(&format!(
                "knotc zone-set \"{zone}\" \"{relative}\" \"{ttl}\" \"IN\" \"{rtype}\" \"{rdata}\" 2>/dev/null || true\n"
            ));
            count += 1;
        }
        script.push_str(&format!(
            "\nknotc zone-commit \"{zone}\" 2>/dev/null || true\n"
        ));
        script.push_str(&format!("echo \"✓ Restored {count} records to {zone}\"\n"));
        fs::write(
            scripts.join(format!("restore-{}.sh", zone.replace('.', "_"))),
            script,
        )
        .unwrap();
    }
    let mut master = format!("#!/bin/sh\n# Master restore script\n# Generated: {generated}\n\n");
    master.push_str(&format!(
        "set -e\n\necho \"=== Restoring {} zones ===\"\n\n",
        zones.len()
    ));
    for zone in &zones {
        master.push_str(&format!(
            "sh ./restore-scripts/restore-{}.sh\n",
            zone.replace('.', "_")
        ));
    }
    master.push_str("\necho \"✓ All zones restored\"\n");
    fs::write(scripts.join("restore-all.sh"), master).unwrap();
}

/// `backup-kea-leases.ts` at 092b784: `lease4-get-all`, one `wget --post-data='<JSON>'` line
/// per lease (JSON.stringify of the lease4-add command, `'` escaped as `'\''`), progress
/// `echo`s every 10 leases.
fn original_lease_scripts(kea: &KeaServer, dir: &Path) -> usize {
    let scripts = dir.join("restore-scripts");
    fs::create_dir_all(&scripts).unwrap();
    let reply = kea.command(r#"{"command": "lease4-get-all"}"#);
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    let leases = v["arguments"]["leases"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut script = String::from(
        "#!/bin/sh\n# Restore script for Kea DHCP leases\n# Generated: 2025-11-14T10:00:00.000Z\n\nset -e\n\n",
    );
    script.push_str("echo \"=== Restoring Kea DHCP Leases ===\"\n");
    script.push_str(&format!(
        "echo \"Total leases to restore: {}\"\n\n",
        leases.len()
    ));
    for (i, l) in leases.iter().enumerate() {
        // JSON.stringify keeps insertion order: build the object in the script's order.
        let mut args = serde_json::Map::new();
        args.insert("ip-address".into(), l["ip-address"].clone());
        args.insert("hw-address".into(), l["hw-address"].clone());
        args.insert("subnet-id".into(), l["subnet-id"].clone());
        args.insert("valid-lft".into(), l["valid-lft"].clone());
        args.insert("cltt".into(), l["cltt"].clone());
        args.insert("fqdn-fwd".into(), l["fqdn-fwd"].clone());
        args.insert("fqdn-rev".into(), l["fqdn-rev"].clone());
        args.insert(
            "hostname".into(),
            l.get("hostname").cloned().unwrap_or("".into()),
        );
        args.insert("state".into(), l["state"].clone());
        if let Some(c) = l.get("client-id").filter(|c| c.as_str() != Some("")) {
            args.insert("client-id".into(), c.clone());
        }
        let mut cmd = serde_json::Map::new();
        cmd.insert("command".into(), "lease4-add".into());
        cmd.insert("service".into(), serde_json::json!(["dhcp4"]));
        cmd.insert("arguments".into(), serde_json::Value::Object(args));
        let json = serde_json::to_string(&cmd).unwrap().replace('\'', "'\\''");
        script.push_str(&format!(
            "wget -q -O /dev/null --post-data='{json}' --header='Content-Type: application/json' http://127.0.0.1:8000/ 2>/dev/null || echo \"  Warning: Failed to add lease {}\"\n",
            l["ip-address"].as_str().unwrap()
        ));
        if (i + 1) % 10 == 0 {
            script.push_str(&format!(
                "echo \"  Restored {}/{} leases...\"\n",
                i + 1,
                leases.len()
            ));
        }
    }
    script.push_str(&format!("\necho \"✓ Restored {} leases\"\n", leases.len()));
    fs::write(scripts.join("restore-leases.sh"), script).unwrap();
    fs::write(
        scripts.join("restore-all.sh"),
        "#!/bin/sh\n# Master restore script for Kea leases\n# Generated: 2025-11-14T10:00:00.000Z\n\nset -e\n\necho \"=== Restoring Kea DHCP Leases ===\"\n\nsh ./restore-scripts/restore-leases.sh\n\necho \"✓ All leases restored\"\n",
    )
    .unwrap();
    leases.len()
}

fn tar_scripts(archive: &Path, dir: &Path) {
    let st = Command::new("tar")
        .arg("czf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg("restore-scripts")
        .status()
        .unwrap();
    assert!(st.success());
}

fn served(t: &LocalTarget, zone: &str) -> BTreeSet<String> {
    let mut client = t.knot().expect("connect to knotd");
    client
        .zone_read(zone, None, None)
        .expect("zone-read")
        .map(|r| r.expect("record").to_string())
        .collect()
}

fn serial(t: &LocalTarget, zone: &str) -> u32 {
    t.knot().unwrap().zone_status(zone).unwrap().serial.unwrap()
}

fn held(t: &LocalTarget) -> Vec<String> {
    let mut leases = t.kea().lease4_get_all_paged(100).expect("lease4-get-page");
    leases.sort_by_key(|l| l.ip_address);
    leases
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

#[test]
fn imported_zone_scripts_restore_keeping_the_target_soa_and_ns() {
    let source = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let st = LocalTarget {
        knot_socket: source.socket_path().to_owned(),
        ..LocalTarget::default()
    };
    let work = tempfile::tempdir().unwrap();
    original_zone_scripts(&source, work.path());
    let archive = work
        .path()
        .join("knot-zones-unified-dns-dhcp-2025-11-14-10-00-00.tar.gz");
    tar_scripts(&archive, work.path());
    let copy = work.path().join("zones-restore.tar.gz");
    fs::copy(&archive, &copy).unwrap();
    let original: BTreeSet<String> = served(&st, ZONE)
        .into_iter()
        .filter(|r| !r.contains(" SOA ") && !r.contains(" NS "))
        .collect();
    drop(source);

    // verify tells what it is; restore refuses it until imported.
    let report = archive::verify(&archive, &Limits::default());
    assert!(report.legacy && !report.ok);
    assert!(
        report.problems[0].to_string().contains("dnsdhcp import"),
        "{:?}",
        report.problems
    );

    let out = work.path().join("backups");
    let r = legacy::import(&archive, &out).expect("import");
    assert_eq!(r.format, "restore-scripts");
    assert!(r.unconverted.is_empty(), "{:?}", r.unconverted);
    assert_eq!(r.written.len(), 1);
    let imported = &r.written[0];
    assert!(imported.report.ok, "{:?}", imported.report.problems);
    assert_eq!(imported.report.kind, Some(ArchiveKind::Zones));
    assert!(imported.report.zones[0].apex_from_target);
    assert_eq!(imported.report.zones[0].records, original.len() as u64);

    // restore --local into a new install's zone: its SOA (serial advanced) and NS are kept,
    // everything else is the backed-up data.
    let target = KnotServer::start(&[(ZONE, TARGET_TEXT)]);
    let t = LocalTarget {
        knot_socket: target.socket_path().to_owned(),
        ..LocalTarget::default()
    };
    let apex_before: BTreeSet<String> = served(&t, ZONE)
        .into_iter()
        .filter(|r| r.contains(" NS "))
        .collect();
    let serial_before = serial(&t, ZONE);
    restore::restore_zones(&t, &imported.path).expect("restore imported zones");
    let after = served(&t, ZONE);
    let expected: BTreeSet<String> = original.union(&apex_before).cloned().collect();
    let got: BTreeSet<String> = after
        .iter()
        .filter(|r| !r.contains(" SOA "))
        .cloned()
        .collect();
    assert_eq!(got, expected);
    assert!(
        after
            .iter()
            .any(|r| r.contains(" SOA ns9.home.test. admin.home.test. "))
    );
    assert_eq!(serial(&t, ZONE), serial_before.wrapping_add(1));

    // The in-pod role, from the copy named zones-restore.tar.gz, imported and put in the
    // zones volume as zones.tar.gz.
    target.knotc_ok(&["zone-begin", ZONE]);
    target.knotc_ok(&["zone-unset", ZONE, "www", "A"]);
    target.knotc_ok(&["zone-commit", ZONE]);
    let r = legacy::import(&copy, &out).expect("import the copy");
    fs::copy(&r.written[0].path, target.zones_dir().join(ZONES_ARCHIVE)).unwrap();
    let cfg = PostStartConfig {
        target: t.clone(),
        zones_dir: target.zones_dir().to_owned(),
        values_files: Vec::new(),
        timeout: Duration::from_secs(30),
        apply: ApplyOptions::default(),
    };
    let mut log = Vec::new();
    pod::post_start(&cfg, &mut |l| log.push(l)).expect("post-start");
    let got: BTreeSet<String> = served(&t, ZONE)
        .into_iter()
        .filter(|r| !r.contains(" SOA "))
        .collect();
    assert_eq!(got, expected, "{}", log.join("\n"));
}

#[test]
fn imported_lease_scripts_restore_the_same_leases_and_list_what_is_not_converted() {
    let kea = KeaServer::start(KeaConfig::new());
    let client = ControlClient::unix(kea.socket_path());
    for i in 1..=23u32 {
        let client_id = if i % 3 == 0 {
            format!(r#", "client-id": "01:02:03:{i:02x}""#)
        } else {
            String::new()
        };
        let args = format!(
            r#"{{"ip-address": "10.77.1.{i}", "hw-address": "02:00:00:00:01:{i:02x}", "valid-lft": 4000, "hostname": "o'neil{i}.home.test.", "fqdn-fwd": true{client_id}}}"#
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
    let t = LocalTarget {
        kea_socket: kea.socket_path(),
        kea_lease_file: kea.lease_file(),
        ..LocalTarget::default()
    };
    let before = held(&t);
    let work = tempfile::tempdir().unwrap();
    let n = original_lease_scripts(&kea, work.path());
    assert_eq!(n, 23);
    // A line the tool cannot convert (hand-edited): listed, the rest converted.
    let script = work.path().join("restore-scripts/restore-leases.sh");
    let mut text = fs::read_to_string(&script).unwrap();
    text.push_str("curl http://example.invalid/\n");
    fs::write(&script, text).unwrap();
    let archive = work
        .path()
        .join("kea-leases-unified-dns-dhcp-2025-11-14-10-00-00.tar.gz");
    tar_scripts(&archive, work.path());

    let out = work.path().join("backups");
    let r = legacy::import(&archive, &out).expect("import");
    assert_eq!(r.unconverted.len(), 1, "{:?}", r.unconverted);
    assert!(r.unconverted[0].reason.contains("curl"));
    let imported = &r.written[0];
    assert!(imported.report.ok, "{:?}", imported.report.problems);
    assert_eq!(imported.report.kind, Some(ArchiveKind::Leases));
    assert_eq!(imported.report.lease_count, 23);

    // restore --local into a wiped Kea: the same leases.
    t.kea().lease4_wipe(None).unwrap();
    let res = restore::restore_leases(&t, &imported.path).expect("restore imported leases");
    assert_eq!((res.archived, res.held), (23, 23));
    assert_eq!(held(&t), before);

    // The in-pod role.
    let mut kea = kea;
    t.kea().lease4_wipe(None).unwrap();
    kea.stop();
    let lease_file = kea.lease_file();
    fs::copy(
        &imported.path,
        lease_file.parent().unwrap().join(LEASES_ARCHIVE),
    )
    .unwrap();
    assert_eq!(
        pod::init_leases(&lease_file).unwrap(),
        LeasesInit::Restored { leases: 23 }
    );
    kea.restart();
    assert_eq!(held(&t), before);

    // The CLI: `dnsdhcp import ARCHIVE -b DIR` lists what it could not convert.
    let cli_out = work.path().join("cli");
    let o = Command::new(env!("CARGO_BIN_EXE_dnsdhcp"))
        .arg("import")
        .arg(&archive)
        .arg("-b")
        .arg(&cli_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("not converted (1)"), "{text}");
    assert!(text.contains("restore-leases.sh:"), "{text}");
    assert!(
        cli_out
            .join("kea-leases-unified-dns-dhcp-2025-11-14-10-00-00-imported.tar.gz")
            .exists()
    );
}
