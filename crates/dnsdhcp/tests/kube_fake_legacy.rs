//! Archives of the original chart (no manifest, `knotc zone-backup` + `tar czf`, `tar czf` of a
//! Kea lease directory) restored through the Kubernetes target, with a FAKE API server on
//! 127.0.0.1 (`kube_fake.rs`) running the commands locally against real `knotd` and
//! `kea-dhcp4`: by a simulated pod restart (the in-pod roles) and live.

#[path = "kube_fake.rs"]
mod kube_fake;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dnsdhcp::kube::{Cluster, KubeTarget, ProgressMode};
use kea_leases::ControlClient;
use kube_fake::{FakeApi, FakeConfig};
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONE: &str = "home.test";
const ZONE_TEXT: &str = "$TTL 3600
@       IN SOA ns1 hostmaster 7 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.10
";

fn cluster(fake: &FakeApi) -> Cluster {
    let mut c = Cluster::new(
        fake.client(),
        &KubeTarget {
            context: None,
            namespace: "dns-dhcp".into(),
            statefulset: "unified-dns-dhcp".into(),
            name: None,
        },
    );
    c.progress = ProgressMode::Quiet;
    c.timeouts.poll = Duration::from_millis(100);
    c.timeouts.confirm = Duration::from_secs(30);
    c
}

fn served(knot: &KnotServer) -> String {
    let mut lines: Vec<String> = knot
        .knotc_ok(&["zone-read", ZONE])
        .lines()
        .filter(|l| !l.contains(" SOA "))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines.join("\n")
}

fn held(kea: &KeaServer) -> Vec<String> {
    let mut leases = ControlClient::unix(kea.socket_path())
        .lease4_get_all_paged(100)
        .unwrap();
    leases.sort_by_key(|l| l.ip_address);
    leases
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

fn tar_czf(archive: &Path, dir: &Path, members: &[&str]) {
    let st = Command::new("tar")
        .arg("czf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .args(members)
        .status()
        .unwrap();
    assert!(st.success());
}

fn damage(knot: &KnotServer, kea: &KeaServer) {
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-unset", ZONE, "www", "A"]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    ControlClient::unix(kea.socket_path())
        .lease4_wipe(None)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_restores_original_chart_archives_by_pod_restart_and_live() {
    let knot = Arc::new(KnotServer::start(&[(ZONE, ZONE_TEXT)]));
    let kea = Arc::new(Mutex::new(KeaServer::start(KeaConfig::new())));
    let work = tempfile::tempdir().unwrap();

    // The original backups: knotc zone-backup + tar czf; tar czf of Kea's lease directory
    // under the original chart's lease file name.
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "dyn", "60", "A", "192.0.2.99"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let zones_before = served(&knot);
    let backup_dir = work.path().join("knot-backup");
    knot.knotc_ok(&[
        "-b",
        "zone-backup",
        "+backupdir",
        backup_dir.to_str().unwrap(),
    ]);
    let zones_archive = work.path().join("knot-zones-unified-dns-dhcp-2025.tar.gz");
    tar_czf(&zones_archive, &backup_dir, &["."]);
    let (leases_before, lease_file, kenv) = {
        let mut k = kea.lock().unwrap();
        let client = ControlClient::unix(k.socket_path());
        for i in 1..=9 {
            let args = format!(
                r#"{{"ip-address": "10.77.1.{i}", "hw-address": "02:00:00:00:01:{i:02x}", "valid-lft": 4000, "hostname": "h{i}"}}"#
            );
            client.call("lease4-add", Some(&args)).unwrap();
        }
        let before = held(&k);
        k.stop();
        let dir = work.path().join("var-lib-kea");
        fs::create_dir(&dir).unwrap();
        fs::copy(k.lease_file(), dir.join("dhcp4.leases")).unwrap();
        fs::write(dir.join("dhcp4.leases.pid"), "4242\n").unwrap();
        k.restart();
        let env = vec![
            ("DNSDHCP_KEA_SOCKET", k.socket_path().display().to_string()),
            (
                "DNSDHCP_KEA_LEASE_FILE",
                k.lease_file().display().to_string(),
            ),
        ];
        (before, k.lease_file(), env)
    };
    let leases_archive = work.path().join("kea-leases.tar.gz");
    tar_czf(&leases_archive, &work.path().join("var-lib-kea"), &["."]);

    let on_delete = kube_fake::pod_restart(knot.clone(), Some(kea.clone()));
    let knot_env = vec![
        (
            "DNSDHCP_KNOT_SOCKET",
            knot.socket_path().display().to_string(),
        ),
        ("DNSDHCP_ZONES_DIR", knot.zones_dir().display().to_string()),
    ];
    let mut config = FakeConfig::new(BIN)
        .container("knot-auth", &knot_env)
        .container("kea-dhcp4", &kenv);
    config.on_delete = Some(on_delete);
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);

    // By a pod restart.
    damage(&knot, &kea.lock().unwrap());
    let r = c
        .restore(Some(&zones_archive), Some(&leases_archive), false)
        .await
        .expect("restore legacy archives by restart");
    assert!(r.new_uid.is_some());
    assert_eq!(r.leases_archived, Some(9));
    assert_eq!(r.leases_held, Some(9));
    assert_eq!(r.zones.len(), 1);
    assert_eq!(served(&knot), zones_before);
    assert_eq!(held(&kea.lock().unwrap()), leases_before);
    assert!(!knot.zones_dir().join("zones.tar.gz").exists());
    assert!(
        !lease_file
            .parent()
            .unwrap()
            .join("kea-leases.tar.gz")
            .exists()
    );

    // Live.
    damage(&knot, &kea.lock().unwrap());
    let r = c
        .restore(Some(&zones_archive), Some(&leases_archive), true)
        .await
        .expect("restore legacy archives live");
    assert_eq!(r.new_uid, None);
    assert_eq!(r.leases_held, Some(9));
    assert_eq!(served(&knot), zones_before);
    assert_eq!(held(&kea.lock().unwrap()), leases_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_restores_an_imported_restore_scripts_zone_archive_keeping_the_target_apex() {
    let knot = Arc::new(KnotServer::start(&[(ZONE, ZONE_TEXT)]));
    let work = tempfile::tempdir().unwrap();
    // A zone script as the original backup-knot-zones.ts writes it.
    let scripts = work.path().join("restore-scripts");
    fs::create_dir(&scripts).unwrap();
    fs::write(
        scripts.join("restore-home_test_.sh"),
        "#!/bin/sh\n# Restore script for zone: home.test.\n# Generated: 2025-11-14T10:00:00.000Z\n\n\
         set -e\n\necho \"Restoring zone: home.test.\"\n\
         knotc zone-begin \"home.test.\" 2>/dev/null || true\n\n\
         knotc zone-set \"home.test.\" \"ns1\" \"3600\" \"IN\" \"A\" \"192.0.2.1\" 2>/dev/null || true\n\
         knotc zone-set \"home.test.\" \"printer\" \"600\" \"IN\" \"A\" \"192.0.2.77\" 2>/dev/null || true\n\
         knotc zone-set \"home.test.\" \"txt\" \"3600\" \"IN\" \"TXT\" \"\"two words\"\" 2>/dev/null || true\n\
         \nknotc zone-commit \"home.test.\" 2>/dev/null || true\necho \"✓ Restored 3 records to home.test.\"\n",
    )
    .unwrap();
    let archive = work.path().join("zones-restore.tar.gz");
    tar_czf(&archive, work.path(), &["restore-scripts"]);
    let imported = dnsdhcp::legacy::import(&archive, &work.path().join("new")).expect("import");
    let path = imported.written[0].path.clone();

    let on_delete = kube_fake::pod_restart(knot.clone(), None);
    let knot_env = vec![
        (
            "DNSDHCP_KNOT_SOCKET",
            knot.socket_path().display().to_string(),
        ),
        ("DNSDHCP_ZONES_DIR", knot.zones_dir().display().to_string()),
    ];
    let mut config = FakeConfig::new(BIN).container("knot-auth", &knot_env);
    config.on_delete = Some(on_delete);
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    let r = c
        .restore(Some(&path), None, false)
        .await
        .expect("restore an imported zone archive by restart");
    assert_eq!(r.zones.len(), 1);
    let served = served(&knot);
    assert!(
        served.contains("printer.home.test. 600 A 192.0.2.77"),
        "{served}"
    );
    assert!(served.contains("\"two words\""), "{served}");
    // The target's NS is kept, its www record (not in the backup) is gone.
    assert!(served.contains(" NS ns1.home.test."), "{served}");
    assert!(!served.contains("www.home.test."), "{served}");
}
