//! `restore --local` refuses before its first change when any preflight check fails (archive
//! in the wrong slot, a daemon not answering), naming every problem; `records plan
//! --exit-code` and the JSON reports, against real knotd and kea-dhcp4.

use std::path::Path;
use std::process::{Command, Output};

use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::{KnotServer, MINIMAL_ZONE};

const ZONE: &str = "home.test";

fn run(knot: &KnotServer, kea: &Path, lease_file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnsdhcp"))
        .args(args)
        .arg("--local")
        .arg("--knot-socket")
        .arg(knot.socket_path())
        .arg("--kea-socket")
        .arg(kea)
        .arg("--kea-lease-file")
        .arg(lease_file)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn has(knot: &KnotServer, owner: &str) -> bool {
    let out = knot.knotc(&["zone-read", ZONE, owner]);
    text(&out.stdout).contains(" A ")
}

#[test]
fn restore_refuses_before_any_change_and_names_every_problem() {
    let knot = KnotServer::start(&[(ZONE, MINIMAL_ZONE)]);
    let kea = KeaServer::start(KeaConfig::new());
    let client = ControlClient::unix(kea.socket_path());
    client
        .call(
            "lease4-add",
            Some(r#"{"ip-address": "10.77.1.1", "hw-address": "02:00:00:00:02:01"}"#),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().to_str().unwrap();
    let (ks, lf) = (kea.socket_path().to_owned(), kea.lease_file().to_owned());
    let (ks, lf) = (ks.as_path(), lf.as_path());
    let out = run(&knot, ks, lf, &["backup", "all", "--name", "t", "-b", b]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let zones = dir.path().join("zones.tar.gz");
    let leases = dir.path().join("kea-leases.tar.gz");
    let (zones, leases) = (zones.to_str().unwrap(), leases.to_str().unwrap());

    // A change made after the backup: a refused restore must leave it.
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "after", "300", "A", "192.0.2.77"]);
    knot.knotc_ok(&["zone-commit", ZONE]);

    // The zone archive in the lease slot.
    let out = run(
        &knot,
        ks,
        lf,
        &["restore", "--zones", zones, "--leases", zones],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(
        stderr.contains("a zones archive cannot be restored as leases"),
        "{stderr}"
    );
    assert!(has(&knot, "after"), "the zones were touched");

    // Kea not answering (wrong socket): refused before the zones are touched, and the
    // archive problem of the same run is named too.
    let missing = dir.path().join("no-kea.sock");
    let out = run(
        &knot,
        &missing,
        lf,
        &["restore", "--zones", zones, "--leases", leases],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Kea does not answer on {}", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("is kea-dhcp4 running?"), "{stderr}");
    assert!(has(&knot, "after"), "the zones were touched");

    // All good: both restored, reported as JSON with kind and version.
    let out = run(
        &knot,
        ks,
        lf,
        &["restore", "--zones", zones, "--leases", leases, "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "restore");
    assert_eq!(v["version"], 1);
    assert_eq!(v["leases"]["held"], 1, "{v}");
    assert!(!has(&knot, "after"));

    let out = run(&knot, ks, lf, &["leases", "count", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["count"].as_u64()),
        (Some("leases-count"), Some(1))
    );
}

#[test]
fn records_plan_exit_code_says_whether_apply_would_change_anything() {
    let knot = KnotServer::start(&[(ZONE, MINIMAL_ZONE)]);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!("zones:\n  - name: {ZONE}\nstaticRecords:\n  - \"printer A 192.0.2.50\"\n"),
    )
    .unwrap();
    let v = values.to_str().unwrap();
    let nowhere = dir.path().join("kea.sock");
    let lf = dir.path().join("leases.csv");
    let plan = |extra: &[&str]| {
        let mut args = vec!["records", "plan", "-f", v];
        args.extend(extra);
        run(&knot, &nowhere, &lf, &args)
    };
    assert_eq!(plan(&["--exit-code"]).status.code(), Some(2));
    assert_eq!(plan(&[]).status.code(), Some(0), "without the flag: 0");
    let out = plan(&["--exit-code", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "records-plan");
    let out = run(&knot, &nowhere, &lf, &["records", "apply", "-f", v]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(plan(&["--exit-code"]).status.code(), Some(0));
    // --exit-code belongs to plan.
    let out = run(
        &knot,
        &nowhere,
        &lf,
        &["records", "apply", "--exit-code", "-f", v],
    );
    assert_eq!(out.status.code(), Some(64));
}
