//! A good `kea-leases.tar.gz` / `zones.tar.gz` is never replaced by an implausible backup:
//! `dnsdhcp backup` as a user runs it, against real `knotd` and `kea-dhcp4`. A drop to zero or
//! by more than `--shrink-limit` keeps the fixed-name archive byte for byte (the timestamped
//! archive is still written) and exits non-zero naming both counts; `--allow-shrink`, growth
//! and small drops replace it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dnsdhcp::archive::{self, Limits};
use dnsdhcp::backup::{LEASES_ARCHIVE, ZONES_ARCHIVE};
use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONE: &str = "home.test";

/// A zone with `hosts` A records besides its SOA, NS and the name server's address.
fn zone_text(hosts: u32) -> String {
    let mut z = String::from(
        "$TTL 3600\n@ IN SOA ns1 hostmaster 7 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    );
    for i in 0..hosts {
        z.push_str(&format!("h{i} IN A 192.0.2.{}\n", i + 10));
    }
    z
}

struct Env {
    knot: KnotServer,
    kea: KeaServer,
    dir: tempfile::TempDir,
}

impl Env {
    fn start(hosts: u32) -> Env {
        Env {
            knot: KnotServer::start(&[(ZONE, &zone_text(hosts))]),
            kea: KeaServer::start(KeaConfig::new()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--local", "-b"])
            .arg(self.dir.path())
            .env("DNSDHCP_KNOT_SOCKET", self.knot.socket_path())
            .env("DNSDHCP_KEA_SOCKET", self.kea.socket_path())
            .env("DNSDHCP_KEA_LEASE_FILE", self.kea.lease_file())
            .env("DNSDHCP_NAME", "site")
            .output()
            .expect("run dnsdhcp")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "dnsdhcp {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a backup that must be refused; returns (stdout, stderr).
    fn refused(&self, args: &[&str]) -> (String, String) {
        let o = self.run(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_eq!(o.status.code(), Some(1), "dnsdhcp {args:?}: {out}\n{err}");
        (out, err)
    }

    fn fixed(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Timestamped archives whose name starts with `prefix`.
    fn stamped(&self, prefix: &str) -> usize {
        names(self.dir.path())
            .iter()
            .filter(|n| n.starts_with(prefix))
            .count()
    }

    fn set_leases(&self, first: u32, n: u32) {
        let client = ControlClient::unix(self.kea.socket_path());
        for i in first..first + n {
            let args = format!(
                r#"{{"ip-address": "10.77.1.{}", "hw-address": "02:00:00:00:01:{:02x}", "valid-lft": 4000}}"#,
                i + 1,
                i + 1
            );
            client.call("lease4-add", Some(&args)).expect("lease4-add");
        }
    }

    fn delete_leases(&self, first: u32, n: u32) {
        let client = ControlClient::unix(self.kea.socket_path());
        for i in first..first + n {
            let args = format!(r#"{{"ip-address": "10.77.1.{}"}}"#, i + 1);
            client.call("lease4-del", Some(&args)).expect("lease4-del");
        }
    }

    /// Removes the A records `h<first>` .. `h<first+n-1>` in one transaction.
    fn delete_hosts(&self, first: u32, n: u32) {
        self.knot.knotc_ok(&["zone-begin", ZONE]);
        for i in first..first + n {
            self.knot
                .knotc_ok(&["zone-unset", ZONE, &format!("h{i}"), "A"]);
        }
        self.knot.knotc_ok(&["zone-commit", ZONE]);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn lease_count(archive: &Path) -> u64 {
    archive::read_manifest(archive, &Limits::default())
        .unwrap()
        .lease_count
}

fn record_count(archive: &Path) -> u64 {
    archive::read_manifest(archive, &Limits::default())
        .unwrap()
        .record_count()
}

#[test]
fn lease_backup_to_zero_or_a_big_drop_keeps_the_good_archive_until_allow_shrink() {
    let env = Env::start(0);
    env.set_leases(0, 12);
    env.ok(&["backup", "leases"]);
    let fixed = env.fixed(LEASES_ARCHIVE);
    let good = fs::read(&fixed).unwrap();
    assert_eq!(lease_count(&fixed), 12);

    // Every lease gone: refused, both counts named, the good file kept byte for byte, the
    // timestamped archive of the new backup written.
    env.delete_leases(0, 12);
    let (_, err) = env.refused(&["backup", "leases"]);
    assert!(
        err.contains("12 leases") && err.contains("0 leases"),
        "{err}"
    );
    assert!(err.contains("dropped to zero"), "{err}");
    assert!(err.contains(&fixed.display().to_string()), "{err}");
    assert!(err.contains("--allow-shrink"), "{err}");
    assert_eq!(fs::read(&fixed).unwrap(), good);
    assert_eq!(env.stamped("kea-leases-site-"), 2);
    assert!(
        !names(env.dir.path()).iter().any(|n| n.starts_with('.')),
        "no temporary file left: {:?}",
        names(env.dir.path())
    );

    // A drop of 75 % (12 to 3), as JSON: the error object carries both counts.
    env.set_leases(0, 3);
    let (out, _) = env.refused(&["backup", "leases", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(doc["kind"], "error");
    assert_eq!(doc["kept"][0]["old"]["leases"], 12);
    assert_eq!(doc["kept"][0]["new"]["leases"], 3);
    assert_eq!(doc["kept"][0]["kept"], fixed.display().to_string());
    assert_eq!(fs::read(&fixed).unwrap(), good);

    // Within a raised limit it replaces; so does --allow-shrink.
    env.ok(&["backup", "leases", "--shrink-limit", "80"]);
    assert_eq!(lease_count(&fixed), 3);
    env.delete_leases(0, 3);
    env.refused(&["backup", "leases"]);
    env.ok(&["backup", "leases", "--allow-shrink"]);
    assert_eq!(lease_count(&fixed), 0);

    // From zero, growth replaces; then a small drop (10 to 6, 40 %) replaces too.
    env.set_leases(0, 10);
    env.ok(&["backup", "leases"]);
    assert_eq!(lease_count(&fixed), 10);
    env.delete_leases(6, 4);
    env.ok(&["backup", "leases"]);
    assert_eq!(lease_count(&fixed), 6);
}

#[test]
fn zone_backup_with_a_big_record_drop_keeps_zones_tar_gz_and_backup_all_still_backs_up_leases() {
    let env = Env::start(20);
    env.set_leases(0, 4);
    env.ok(&["backup", "all"]);
    let zones = env.fixed(ZONES_ARCHIVE);
    let good = fs::read(&zones).unwrap();
    assert_eq!(record_count(&zones), 23);

    // 20 of 23 records gone: zones.tar.gz kept, the lease backup done all the same.
    env.delete_hosts(0, 20);
    env.set_leases(4, 4);
    let (_, err) = env.refused(&["backup", "all"]);
    assert!(err.contains("1 zones, 23 records"), "{err}");
    assert!(err.contains("1 zones, 3 records"), "{err}");
    assert!(err.contains("records dropped by 87.0 %"), "{err}");
    assert!(err.contains("knot-zones-site-"), "{err}");
    assert_eq!(fs::read(&zones).unwrap(), good);
    assert_eq!(env.stamped("knot-zones-site-"), 2);
    assert_eq!(lease_count(&env.fixed(LEASES_ARCHIVE)), 8);

    env.ok(&["backup", "zones", "--allow-shrink"]);
    assert_eq!(record_count(&zones), 3);
}

#[test]
fn shrink_limit_outside_0_to_100_is_a_usage_error() {
    for bad in ["NaN", "-5", "500", "x"] {
        let o = Command::new(BIN)
            .args(["backup", "leases", "--local", "--shrink-limit", bad])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(64), "--shrink-limit {bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("percentage from 0 to 100"), "{err}");
    }
}
