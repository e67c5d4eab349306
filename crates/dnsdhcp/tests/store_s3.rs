//! The object-store layer against two independent real S3 servers on 127.0.0.1, `moto` (server
//! mode) and `s3s-fs`: upload, list, download, verify, prune, encryption, a server stopped in
//! the middle of an upload, wrong credentials, a missing bucket and a tampered object. Each
//! case runs against both servers (`..._moto` / `..._s3s_fs`); a missing server fails the test
//! naming how to install it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use dnsdhcp::archive::{ArchiveKind, ArchiveWriter, Manifest};
use dnsdhcp::store::retention::Policy;
use dnsdhcp::store::{Identities, Recipients, Store, StoreError, StoreUrl};
use test_support::s3::{S3Kind, S3Server};

const BUCKET: &str = "backups";

fn zone_text(zone: &str, serial: u32, hosts: usize) -> String {
    let mut s = format!(
        "$ORIGIN {zone}.\n$TTL 3600\n@ IN SOA ns1 hostmaster {serial} 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"
    );
    for i in 0..hosts {
        s.push_str(&format!("h{i} IN A 198.51.100.{}\n", i % 250 + 1));
    }
    s
}

fn lease_text(n: usize) -> String {
    let mut s = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n".to_owned();
    for i in 0..n {
        s.push_str(&format!(
            "10.0.{}.{},00:11:22:33:{:02x}:{:02x},,3600,1700003600,1,0,0,host{i},0,,0\n",
            i / 250,
            i % 250 + 1,
            i / 256,
            i % 256
        ));
    }
    s
}

fn full_zone_archive(dir: &Path, stamp: &str) -> (PathBuf, Manifest) {
    let path = dir.join(format!("knot-zones-test-{stamp}.tar.gz"));
    let mut w = ArchiveWriter::create(&path, ArchiveKind::ZonesFull, "local:test").unwrap();
    w.add_bytes("knot_backup.label", b"label: test\n", 0o644)
        .unwrap();
    w.add_zone_bytes(
        "zonefiles/example.com.zone",
        "example.com",
        zone_text("example.com", 2026010101, 40).as_bytes(),
        0o644,
    )
    .unwrap();
    w.add_bytes("keys/data.mdb", &[0xA5u8; 5000], 0o600)
        .unwrap();
    let m = w.finish().unwrap();
    (path, m)
}

fn lease_archive(dir: &Path, stamp: &str, rows: usize) -> (PathBuf, Manifest) {
    let path = dir.join(format!("kea-leases-test-{stamp}.tar.gz"));
    let mut w = ArchiveWriter::create(&path, ArchiveKind::Leases, "local:test").unwrap();
    w.add_lease_bytes("kea-leases4.csv", lease_text(rows).as_bytes(), 0o644)
        .unwrap();
    let m = w.finish().unwrap();
    (path, m)
}

/// Points the AWS environment at `server` (each test runs in its own process under nextest).
fn use_server(server: &S3Server, secret: Option<&str>) {
    for (k, v) in server.env() {
        let v = match (k, secret) {
            ("AWS_SECRET_ACCESS_KEY", Some(s)) => s.to_owned(),
            _ => v,
        };
        // SAFETY: set before the test starts any thread that reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(bucket: &str, prefix: &str) -> Store {
    Store::open(&StoreUrl::parse(&format!("s3://{bucket}/{prefix}")).unwrap()).unwrap()
}

fn started(kind: S3Kind) -> S3Server {
    let s = S3Server::start(kind);
    s.create_bucket(BUCKET);
    use_server(&s, None);
    s
}

fn upload_list_download_verify(kind: S3Kind) {
    let _server = started(kind);
    let tmp = tempfile::tempdir().unwrap();
    let (zones, zm) = full_zone_archive(tmp.path(), "20260101T000000Z");
    let (leases, lm) = lease_archive(tmp.path(), "20260101T000000Z", 300);
    let store = open(BUCKET, "site/a");
    let rt = rt();
    let none = Recipients::default();
    let ze = rt
        .block_on(store.upload(&zones, &zm, &none, false))
        .unwrap();
    let le = rt
        .block_on(store.upload(&leases, &lm, &none, false))
        .unwrap();
    assert_eq!(ze.size, fs::metadata(&zones).unwrap().len());
    assert_eq!(
        ze.sha256, ze.archive_sha256,
        "plain upload stores the archive as it is"
    );

    let listed = rt.block_on(store.list()).unwrap();
    let names: Vec<_> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"knot-zones-test-20260101T000000Z.tar.gz"));
    let l = listed
        .iter()
        .find(|e| e.manifest.kind == ArchiveKind::Leases)
        .unwrap();
    assert_eq!(l.manifest.lease_count, 300);
    let z = listed
        .iter()
        .find(|e| e.manifest.kind == ArchiveKind::ZonesFull)
        .unwrap();
    assert_eq!(z.manifest.zones[0].serial, 2026010101);
    assert_eq!(z.manifest.record_count(), 43);
    // A different prefix sees nothing.
    assert!(
        rt.block_on(open(BUCKET, "site/b").list())
            .unwrap()
            .is_empty()
    );

    let out = tempfile::tempdir().unwrap();
    let d = rt.block_on(store.download(&le, out.path(), None)).unwrap();
    assert_eq!(fs::read(&d.path).unwrap(), fs::read(&leases).unwrap());
    assert!(dnsdhcp::archive::verify(&d.path, &Default::default()).ok);
    let found = rt
        .block_on(store.find(&[ArchiveKind::ZonesFull], None, None))
        .unwrap();
    assert_eq!(found, ze);
    let c = rt.block_on(store.check(&ze, None));
    assert!(c.ok && c.contents_checked, "{c:?}");
}

#[test]
fn upload_list_download_verify_moto() {
    upload_list_download_verify(S3Kind::Moto);
}

#[test]
fn upload_list_download_verify_s3s_fs() {
    upload_list_download_verify(S3Kind::S3sFs);
}

fn encrypted_round_trip(kind: S3Kind) {
    let _server = started(kind);
    let tmp = tempfile::tempdir().unwrap();
    let (zones, zm) = full_zone_archive(tmp.path(), "20260101T000000Z");
    let store = open(BUCKET, "enc");
    let rt = rt();

    // Refused in plain text before any request: nothing appears in the store.
    let err = rt
        .block_on(store.upload(&zones, &zm, &Recipients::default(), true))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::EncryptionRequired { .. }),
        "{err}"
    );
    assert!(rt.block_on(store.list()).unwrap().is_empty());

    let id = age::x25519::Identity::generate();
    let recipients = Recipients::parse(&[id.to_public().to_string()]).unwrap();
    let e = rt
        .block_on(store.upload(&zones, &zm, &recipients, true))
        .unwrap();
    assert_eq!(e.name, "knot-zones-test-20260101T000000Z.tar.gz.age");
    assert_ne!(e.sha256, e.archive_sha256);
    // Listing needs no key: the manifest is beside the ciphertext.
    let listed = rt.block_on(store.list()).unwrap();
    assert_eq!(listed[0].manifest.zones[0].serial, 2026010101);
    assert_eq!(
        listed[0].encryption.as_ref().unwrap().recipients,
        [id.to_public().to_string()]
    );

    let out = tempfile::tempdir().unwrap();
    let err = rt
        .block_on(store.download(&e, out.path(), None))
        .unwrap_err();
    assert!(err.to_string().contains("--identity"), "{err}");
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
    // Without the identity, check() can still compare the object with its entry.
    let c = rt.block_on(store.check(&e, None));
    assert!(c.ok && c.checksum_ok && !c.contents_checked, "{c:?}");

    let key = tmp.path().join("key.txt");
    fs::write(&key, id.to_string().expose_secret()).unwrap();
    let ids = Identities::read(&[&key]).unwrap();
    let d = rt
        .block_on(store.download(&e, out.path(), Some(&ids)))
        .unwrap();
    assert_eq!(fs::read(&d.path).unwrap(), fs::read(&zones).unwrap());
    let c = rt.block_on(store.check(&e, Some(&ids)));
    assert!(c.ok && c.contents_checked, "{c:?}");
}

#[test]
fn encrypted_round_trip_moto() {
    encrypted_round_trip(S3Kind::Moto);
}

#[test]
fn encrypted_round_trip_s3s_fs() {
    encrypted_round_trip(S3Kind::S3sFs);
}

fn prune_keeps_policy_and_newest_verified(kind: S3Kind) {
    let _server = started(kind);
    let tmp = tempfile::tempdir().unwrap();
    let store = open(BUCKET, "");
    let rt = rt();
    let none = Recipients::default();
    let mut uploaded = Vec::new();
    for day in 1..=5 {
        let stamp = format!("202601{day:02}T120000Z");
        let (p, mut m) = lease_archive(tmp.path(), &stamp, 10 + day);
        m.created = format!("2026-01-{day:02}T12:00:00Z").parse().unwrap();
        uploaded.push(rt.block_on(store.upload(&p, &m, &none, false)).unwrap());
    }
    let policy = Policy {
        last: 2,
        ..Policy::default()
    };
    let dry = rt.block_on(store.prune(&policy, true, None)).unwrap();
    assert!(dry.removed.is_empty());
    assert_eq!(dry.decisions.iter().filter(|d| !d.keep).count(), 3);
    assert_eq!(
        rt.block_on(store.list()).unwrap().len(),
        5,
        "dry run removes nothing"
    );

    let done = rt.block_on(store.prune(&policy, false, None)).unwrap();
    assert_eq!(done.removed.len(), 3);
    let left: Vec<_> = rt
        .block_on(store.list())
        .unwrap()
        .into_iter()
        .map(|e| e.manifest.lease_count)
        .collect();
    assert_eq!(left, [14, 15]);
    assert!(done.checks[0].ok, "{:?}", done.checks);

    // The two left are made unverifiable except the older one: it must survive keep-last 1.
    let newest = &uploaded[4];
    rt.block_on(async {
        let raw = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(BUCKET)
            .with_allow_http(true)
            .build()
            .unwrap();
        use object_store::ObjectStoreExt;
        raw.put(
            &object_store::path::Path::from(newest.name.as_str()),
            b"tampered".to_vec().into(),
        )
        .await
        .unwrap();
    });
    let policy = Policy {
        last: 1,
        ..Policy::default()
    };
    let done = rt.block_on(store.prune(&policy, false, None)).unwrap();
    assert!(done.removed.is_empty(), "{done:?}");
    assert_eq!(done.protected, [uploaded[3].name.clone()]);
    assert!(!done.checks[0].ok && done.checks[1].ok, "{:?}", done.checks);
    let err = rt
        .block_on(store.prune(&Policy::default(), false, None))
        .unwrap_err();
    assert!(matches!(err, StoreError::NoPolicy), "{err}");
}

#[test]
fn prune_keeps_policy_and_newest_verified_moto() {
    prune_keeps_policy_and_newest_verified(S3Kind::Moto);
}

#[test]
fn prune_keeps_policy_and_newest_verified_s3s_fs() {
    prune_keeps_policy_and_newest_verified(S3Kind::S3sFs);
}

fn tampered_object_rejected(kind: S3Kind) {
    let server = started(kind);
    let tmp = tempfile::tempdir().unwrap();
    let (leases, lm) = lease_archive(tmp.path(), "20260101T000000Z", 20);
    let store = open(BUCKET, "t");
    let rt = rt();
    let e = rt
        .block_on(store.upload(&leases, &lm, &Recipients::default(), false))
        .unwrap();
    // Same size, one byte changed.
    let mut bytes = fs::read(&leases).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    match kind {
        S3Kind::S3sFs => {
            fs::write(server.object_file(BUCKET, &format!("t/{}", e.name)), &bytes).unwrap()
        }
        S3Kind::Moto => rt.block_on(async {
            use object_store::ObjectStoreExt;
            let raw = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(BUCKET)
                .with_allow_http(true)
                .build()
                .unwrap();
            raw.put(
                &object_store::path::Path::from(format!("t/{}", e.name)),
                bytes.clone().into(),
            )
            .await
            .unwrap();
        }),
    }
    let out = tempfile::tempdir().unwrap();
    let err = rt
        .block_on(store.download(&e, out.path(), None))
        .unwrap_err();
    assert!(matches!(err, StoreError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing left on disk"
    );
}

#[test]
fn tampered_object_rejected_moto() {
    tampered_object_rejected(S3Kind::Moto);
}

#[test]
fn tampered_object_rejected_s3s_fs() {
    tampered_object_rejected(S3Kind::S3sFs);
}

fn missing_bucket_is_named(kind: S3Kind) {
    let _server = started(kind);
    let rt = rt();
    let store = open("no-such-bucket", "p");
    for err in [
        rt.block_on(store.list()).unwrap_err(),
        rt.block_on(store.probe()).unwrap_err(),
    ] {
        let msg = format!("{err}");
        assert!(msg.contains("list s3://no-such-bucket/p"), "{msg}");
        assert!(
            msg.contains("NoSuchBucket") || msg.contains("not found"),
            "{msg}"
        );
    }
    // s3s-fs creates a missing bucket on the first PUT; moto refuses it.
    if kind == S3Kind::Moto {
        let tmp = tempfile::tempdir().unwrap();
        let (leases, lm) = lease_archive(tmp.path(), "20260101T000000Z", 5);
        let err = rt
            .block_on(store.upload(&leases, &lm, &Recipients::default(), false))
            .unwrap_err();
        assert!(
            err.to_string().contains("upload p/kea-leases-test"),
            "{err}"
        );
    }
}

#[test]
fn missing_bucket_is_named_moto() {
    missing_bucket_is_named(S3Kind::Moto);
}

#[test]
fn missing_bucket_is_named_s3s_fs() {
    missing_bucket_is_named(S3Kind::S3sFs);
}

/// moto accepts any credentials, so this case runs against s3s-fs only.
#[test]
fn wrong_credentials_are_refused_s3s_fs() {
    let server = S3Server::start(S3Kind::S3sFs);
    server.create_bucket(BUCKET);
    use_server(&server, Some("wrong-secret"));
    let rt = rt();
    let err = rt.block_on(open(BUCKET, "").list()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("SignatureDoesNotMatch") || msg.contains("403"),
        "{msg}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (leases, lm) = lease_archive(tmp.path(), "20260101T000000Z", 5);
    assert!(
        rt.block_on(open(BUCKET, "").upload(&leases, &lm, &Recipients::default(), false))
            .is_err()
    );
    assert!(
        fs::read_dir(server.object_file(BUCKET, ""))
            .unwrap()
            .next()
            .is_none()
    );
}

fn server_stopped_mid_upload(kind: S3Kind) {
    let mut server = started(kind);
    let tmp = tempfile::tempdir().unwrap();
    let (_, lm) = lease_archive(tmp.path(), "20260101T000000Z", 5);
    // The archive is read from a FIFO, so the upload cannot finish before the server stops.
    let pipes = tempfile::tempdir().unwrap();
    let fifo = pipes.path().join("kea-leases-test-20260101T000000Z.tar.gz");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let store = open(BUCKET, "mid");
    let rt = rt();
    let fifo2 = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().write(true).open(&fifo2).unwrap();
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..20 {
            if f.write_all(&chunk).is_err() {
                return;
            }
        }
        // Two parts have gone; wait for the server to stop, then end the stream.
        std::thread::sleep(Duration::from_secs(2));
        let _ = f.write_all(&chunk);
    });
    let upload = rt.spawn({
        let store = store.clone();
        let fifo = fifo.clone();
        async move {
            store
                .upload(&fifo, &lm, &Recipients::default(), false)
                .await
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let root_listing = match kind {
        S3Kind::S3sFs => Some(server.object_file(BUCKET, "mid")),
        S3Kind::Moto => None,
    };
    server.stop();
    writer.join().unwrap();
    let err = rt.block_on(upload).unwrap().unwrap_err();
    let msg = err.to_string();
    eprintln!("the error: {msg}");
    assert!(
        msg.contains("upload mid/kea-leases-test-20260101T000000Z.tar.gz"),
        "{msg}"
    );
    // Nothing under the final key (s3s-fs keeps its objects as files we can look at).
    if let Some(dir) = root_listing {
        let final_key = dir.join("kea-leases-test-20260101T000000Z.tar.gz");
        assert!(!final_key.exists(), "{} exists", final_key.display());
    }
}

#[test]
fn server_stopped_mid_upload_moto() {
    server_stopped_mid_upload(S3Kind::Moto);
}

#[test]
fn server_stopped_mid_upload_s3s_fs() {
    server_stopped_mid_upload(S3Kind::S3sFs);
}

/// `file://` through the same code: the archive appears under its key only once complete.
#[test]
fn file_store_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (leases, lm) = lease_archive(tmp.path(), "20260101T000000Z", 40);
    let dir = tmp.path().join("store");
    let url = StoreUrl::parse(&format!("file://{}", dir.display())).unwrap();
    let store = Store::open(&url).unwrap();
    let rt = rt();
    let e = rt
        .block_on(store.upload(&leases, &lm, &Recipients::default(), false))
        .unwrap();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [e.name.clone(), format!("{}.entry.json", e.name)],
        "no staging files left"
    );
    let listed = rt.block_on(store.list()).unwrap();
    assert_eq!(listed, std::slice::from_ref(&e));
    let out = tempfile::tempdir().unwrap();
    let d = rt.block_on(store.download(&e, out.path(), None)).unwrap();
    assert_eq!(fs::read(d.path).unwrap(), fs::read(&leases).unwrap());
}
