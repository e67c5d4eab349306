//! `az://` and `gs://` against local emulators on 127.0.0.1, as a user runs `dnsdhcp`: Azurite
//! (npm `azurite`) gets the round trip (backup all --to, list, verify, restore --from into real
//! `knotd` and `kea-dhcp4`, and a multi-block upload through the library);
//! `gcp-storage-emulator` (PyPI) implements only Google's JSON API and the XML API's single-object
//! PUT/GET, while `object_store` speaks the XML API (listing with `list-type=2`, multipart
//! uploads with `?uploads`): the emulator answers those with 501, and the test holds the tool to
//! a clear error that names the store and costs no backup.

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Output};

use dnsdhcp::archive::{ArchiveKind, ArchiveWriter};
use dnsdhcp::store::{Recipients, Store, StoreUrl};
use kea_leases::ControlClient;
use test_support::azure::Azurite;
use test_support::gcs::GcsEmulator;
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

/// `dnsdhcp` with the daemons' sockets and none of the cloud environment of the machine.
fn dnsdhcp(knot: &KnotServer, kea: &KeaServer, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("HOME", "/nonexistent")
        .env("DNSDHCP_KNOT_SOCKET", knot.socket_path())
        .env("DNSDHCP_KEA_SOCKET", kea.socket_path())
        .env("DNSDHCP_KEA_LEASE_FILE", kea.lease_file())
        .env("DNSDHCP_NAME", "site-a");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AZURE_") || k.starts_with("AZURITE_") || k.starts_with("GOOGLE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run dnsdhcp")
}

fn ok(knot: &KnotServer, kea: &KeaServer, args: &[&str]) -> String {
    let o = dnsdhcp(knot, kea, args);
    assert!(
        o.status.success(),
        "dnsdhcp {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(knot: &KnotServer, kea: &KeaServer, args: &[&str]) -> String {
    let o = dnsdhcp(knot, kea, args);
    assert!(!o.status.success(), "dnsdhcp {args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn served(knot: &KnotServer) -> BTreeSet<String> {
    knot.knotc_ok(&["zone-read", ZONE])
        .lines()
        .filter(|l| !l.contains(" SOA "))
        .map(str::to_owned)
        .collect()
}

fn lease_count(knot: &KnotServer, kea: &KeaServer) -> u64 {
    ok(knot, kea, &["leases", "count", "--local"])
        .trim()
        .parse()
        .unwrap()
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

#[test]
fn azurite_backup_list_verify_restore() {
    let az = Azurite::start();
    az.create_container("backups");
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 9);
    let url = format!("az://backups/site-a?emulator=true&endpoint={}", az.endpoint);
    let zone_before = served(&knot);

    let out = ok(&knot, &kea, &["backup", "all", "--local", "--to", &url]);
    assert_eq!(
        out.matches("uploaded az://backups/site-a/").count(),
        2,
        "{out}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&knot, &kea, &["backups", "list", &url, "--json"])).unwrap();
    let items = listed["items"].as_array().unwrap();
    let kinds: BTreeSet<_> = items
        .iter()
        .map(|e| e["manifest"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["leases".into(), "zones-full".into()])
    );
    let leases = items
        .iter()
        .find(|e| e["manifest"]["kind"] == "leases")
        .unwrap();
    assert_eq!(leases["manifest"]["lease_count"], 9);
    let verified = ok(&knot, &kea, &["verify", &url]);
    assert_eq!(
        verified.lines().filter(|l| l.starts_with("OK ")).count(),
        2,
        "{verified}"
    );

    // Destroy both, restore the newest of both from Azurite.
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    ok(&knot, &kea, &["leases", "wipe", "--local", "--yes"]);
    assert_eq!(lease_count(&knot, &kea), 0);
    let out = ok(&knot, &kea, &["restore", "--local", "--from", &url]);
    assert!(out.contains("downloaded"), "{out}");
    assert_eq!(served(&knot), zone_before);
    assert_eq!(lease_count(&knot, &kea), 9);

    // Another container's name that does not exist is named as such, and costs no backup.
    let missing = format!("az://nothere/x?emulator=true&endpoint={}", az.endpoint);
    let err = fails(&knot, &kea, &["backup", "all", "--local", "--to", &missing]);
    assert!(err.contains("az://nothere/x"), "{err}");
}

/// An archive larger than one 8 MiB part goes up as several blocks and comes back identical.
#[test]
fn azurite_multi_block_upload_round_trip() {
    let az = Azurite::start();
    az.create_container("big");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("knot-zones-big-20260101T000000Z.tar.gz");
    let mut w = ArchiveWriter::create(&path, ArchiveKind::ZonesFull, "local:big").unwrap();
    w.add_bytes("knot_backup.label", b"label: big\n", 0o644)
        .unwrap();
    // Incompressible key material so the archive stays larger than two parts.
    let mut noise = vec![0u8; 20 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    w.add_bytes("keys/data.mdb", &noise, 0o600).unwrap();
    let manifest = w.finish().unwrap();
    assert!(fs::metadata(&path).unwrap().len() > 16 << 20);

    // SAFETY: set before the runtime or any other thread starts.
    unsafe {
        std::env::remove_var("AZURE_STORAGE_ACCOUNT_KEY");
        std::env::remove_var("AZURE_STORAGE_ACCOUNT_NAME");
    }
    let url = StoreUrl::parse(&format!(
        "az://big/p?emulator=true&endpoint={}",
        az.endpoint
    ))
    .unwrap();
    let store = Store::open(&url).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let entry = rt
        .block_on(store.upload(&path, &manifest, &Recipients::default(), false))
        .unwrap();
    assert_eq!(entry.size, fs::metadata(&path).unwrap().len());
    let listed = rt.block_on(store.list()).unwrap();
    assert_eq!(listed.len(), 1);
    let out = tempfile::tempdir().unwrap();
    let got = rt
        .block_on(store.download(&listed[0], out.path(), None))
        .unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), fs::read(&path).unwrap());
}

#[test]
fn gcs_emulator_without_the_xml_api_is_a_clear_error() {
    let gcs = GcsEmulator::start("backups");
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    let url = format!(
        "gs://backups/site-a?endpoint={}&anonymous=true",
        gcs.endpoint
    );
    let err = fails(&knot, &kea, &["backups", "list", &url]);
    assert!(
        err.contains("gs://backups/site-a") && err.contains("501"),
        "{err}"
    );
    // The request went to the emulator (not to Google), anonymously, and was the XML listing.
    let log = gcs.log();
    assert!(log.contains("GET /backups?list-type=2"), "{log}");

    // A backup for a store that cannot list is not taken.
    let err = fails(&knot, &kea, &["backup", "all", "--local", "--to", &url]);
    assert!(err.contains("501"), "{err}");
    assert!(
        !gcs.log().contains("PUT /backups/"),
        "nothing was uploaded: {}",
        gcs.log()
    );
}
