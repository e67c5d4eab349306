//! `dnsdhcp backup --to`, `backups list|prune`, `verify URL` and `restore --from` as a user runs
//! them: the binary, real `knotd` and `kea-dhcp4`, and a real S3 server on 127.0.0.1 (`moto`
//! and `s3s-fs`, one test each). A tampered object is rejected before anything changes; an
//! encrypted backup needs its identity.

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Output};

use age::secrecy::ExposeSecret;
use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::knot::KnotServer;
use test_support::s3::{S3Kind, S3Server};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONE: &str = "home.test";
const ZONE_TEXT: &str = "$TTL 3600
@       IN SOA ns1 hostmaster 7 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.10
";
const URL: &str = "s3://backups/site-a";

struct Env<'a> {
    s3: &'a S3Server,
    knot: &'a KnotServer,
    kea: &'a KeaServer,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("AWS_PROFILE")
            .env("HOME", "/nonexistent")
            .env("DNSDHCP_KNOT_SOCKET", self.knot.socket_path())
            .env("DNSDHCP_KEA_SOCKET", self.kea.socket_path())
            .env("DNSDHCP_KEA_LEASE_FILE", self.kea.lease_file())
            .env("DNSDHCP_NAME", "site-a");
        for (k, v) in self.s3.env() {
            cmd.env(k, v);
        }
        cmd.output().expect("run dnsdhcp")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "dnsdhcp {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "dnsdhcp {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Every record the zone serves, SOA left out: a restore moves the serial forward.
    fn served(&self) -> BTreeSet<String> {
        self.knot
            .knotc_ok(&["zone-read", ZONE])
            .lines()
            .filter(|l| !l.contains(" SOA "))
            .map(str::to_owned)
            .collect()
    }

    fn knotc(&self, args: &[&str]) {
        self.knot.knotc_ok(args);
    }

    fn lease_count(&self) -> u64 {
        self.ok(&["leases", "count", "--local"])
            .trim()
            .parse()
            .unwrap()
    }
}

fn add_leases(kea: &KeaServer, n: u32) {
    let client = ControlClient::unix(kea.socket_path());
    for i in 0..n {
        let args = format!(
            r#"{{"ip-address": "10.77.1.{}", "hw-address": "02:00:00:00:01:{:02x}", "valid-lft": 4000}}"#,
            i + 1,
            i + 1
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
}

fn tamper(s3: &S3Server, key: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    match s3.kind {
        S3Kind::S3sFs => {
            let f = s3.object_file("backups", key);
            let mut bytes = fs::read(&f).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            fs::write(&f, bytes).unwrap();
        }
        S3Kind::Moto => rt.block_on(async {
            use object_store::ObjectStoreExt;
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name("backups")
                .with_allow_http(true);
            for (k, v) in s3.env() {
                b = b.with_config(k.to_lowercase().parse().unwrap(), v);
            }
            let raw = b.build().unwrap();
            let path = object_store::path::Path::from(key);
            let mut bytes = raw
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            raw.put(&path, bytes.into()).await.unwrap();
        }),
    }
}

fn backup_restore_through_the_store(kind: S3Kind) {
    let s3 = S3Server::start(kind);
    s3.create_bucket("backups");
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 12);
    let env = Env {
        s3: &s3,
        knot: &knot,
        kea: &kea,
    };
    let zone_before = env.served();
    assert!(!zone_before.is_empty());

    // A bad URL costs no backup.
    let err = env.fails(&["backup", "all", "--local", "--to", "ftp://x/y"]);
    assert!(err.contains("unknown scheme"), "{err}");

    let out = env.ok(&["backup", "all", "--local", "--to", URL]);
    assert_eq!(
        out.matches("uploaded s3://backups/site-a/").count(),
        2,
        "{out}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["backups", "list", URL, "--json"])).unwrap();
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let kinds: BTreeSet<_> = listed
        .iter()
        .map(|e| e["manifest"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["leases".into(), "zones-full".into()])
    );
    let leases_entry = listed
        .iter()
        .find(|e| e["manifest"]["kind"] == "leases")
        .unwrap();
    assert_eq!(leases_entry["manifest"]["lease_count"], 12);
    let text = env.ok(&["backups", "list", URL]);
    assert!(
        text.contains("12 lease(s)") && text.contains("1 zone(s)"),
        "{text}"
    );
    assert!(
        env.ok(&["verify", URL])
            .lines()
            .all(|l| l.starts_with("OK "))
    );

    // Destroy, restore the newest of both from the store.
    env.knotc(&["zone-begin", ZONE]);
    env.knotc(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    env.knotc(&["zone-commit", ZONE]);
    env.ok(&["leases", "wipe", "--local", "--yes"]);
    assert_eq!(env.lease_count(), 0);
    let out = env.ok(&["restore", "--local", "--from", URL]);
    assert!(out.contains("downloaded"), "{out}");
    assert_eq!(env.served(), zone_before);
    assert_eq!(env.lease_count(), 12);

    // A tampered object is rejected before anything changes: the zone keeps a later change
    // although the (intact) zone archive would have removed it.
    env.knotc(&["zone-begin", ZONE]);
    env.knotc(&["zone-set", ZONE, "later", "60", "A", "198.51.100.2"]);
    env.knotc(&["zone-commit", ZONE]);
    let changed = env.served();
    tamper(
        &s3,
        &format!("site-a/{}", leases_entry["name"].as_str().unwrap()),
    );
    let err = env.fails(&["restore", "--local", "--from", URL]);
    assert!(err.contains("SHA-256") && err.contains("rejected"), "{err}");
    assert_eq!(env.served(), changed);
    let o = env.run(&["verify", URL]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAILED"));

    // Encrypted: the listing needs no key, the restore does.
    let id = age::x25519::Identity::generate();
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("key.txt");
    fs::write(&key_file, id.to_string().expose_secret()).unwrap();
    let recipient = id.to_public().to_string();
    let enc_url = "s3://backups/site-a-enc";
    let err = env.fails(&[
        "backup",
        "zones",
        "--local",
        "--to",
        enc_url,
        "--require-encryption",
    ]);
    assert!(err.contains("refusing to upload"), "{err}");
    env.ok(&[
        "backup",
        "zones",
        "--local",
        "--to",
        enc_url,
        "--recipient",
        &recipient,
        "--require-encryption",
    ]);
    let text = env.ok(&["backups", "list", enc_url]);
    assert!(
        text.contains("encrypted") && text.contains("1 zone(s)"),
        "{text}"
    );
    let err = env.fails(&["restore", "--local", "--from", enc_url, "--zones"]);
    assert!(err.contains("--identity"), "{err}");
    let key = key_file.to_str().unwrap();
    env.ok(&[
        "restore",
        "--local",
        "--from",
        enc_url,
        "--zones",
        "--identity",
        key,
    ]);
    assert!(env.served().iter().any(|r| r.contains("later")));
    env.ok(&["verify", enc_url, "--identity", key]);

    // Retention through the CLI: a second lease backup, keep the newest one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["backup", "leases", "--local", "--to", URL]);
    let plan = env.ok(&["backups", "prune", URL, "--keep-last", "1", "--dry-run"]);
    assert!(plan.contains("would remove"), "{plan}");
    let done = env.ok(&["backups", "prune", URL, "--keep-last", "1"]);
    assert!(done.contains("removed 1 backup(s)"), "{done}");
    let left: serde_json::Value =
        serde_json::from_str(&env.ok(&["backups", "list", URL, "--json"])).unwrap();
    assert_eq!(left["items"].as_array().unwrap().len(), 2, "{left}");

    // A backup addressed by name (its archive name without .tar.gz).
    let leases_name = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manifest"]["kind"] == "leases")
        .unwrap()["archive"]
        .as_str()
        .unwrap()
        .trim_end_matches(".tar.gz")
        .to_owned();
    env.ok(&["leases", "wipe", "--local", "--yes"]);
    env.ok(&[
        "restore",
        "--local",
        "--from",
        URL,
        "--leases",
        &leases_name,
    ]);
    assert_eq!(env.lease_count(), 12);
    let err = env.fails(&[
        "restore",
        "--local",
        "--from",
        URL,
        "--leases",
        "kea-leases-nope",
    ]);
    assert!(err.contains("no backup named \"kea-leases-nope\""), "{err}");
    let err = env.fails(&["backups", "prune", URL]);
    assert!(err.contains("no retention rule"), "{err}");
}

#[test]
fn backup_restore_through_the_store_moto() {
    backup_restore_through_the_store(S3Kind::Moto);
}

#[test]
fn backup_restore_through_the_store_s3s_fs() {
    backup_restore_through_the_store(S3Kind::S3sFs);
}
