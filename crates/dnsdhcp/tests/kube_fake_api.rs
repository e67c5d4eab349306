//! The Kubernetes target through a FAKE API server on 127.0.0.1 (`kube_fake.rs`): real kube-rs
//! client, real exec WebSocket protocol (v5 and v4), the requested commands run LOCALLY — the
//! built `dnsdhcp` binary against real `knotd` and `kea-dhcp4` from `test_support`. No
//! Kubernetes is involved; a pod "restart" is simulated by the fake (Kea stopped, the in-pod
//! `init-leases` and `post-start` roles run, Kea started again).

#[path = "kube_fake.rs"]
mod kube_fake;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dnsdhcp::archive::{self, Limits};
use dnsdhcp::backup::{LEASES_ARCHIVE, ZONES_ARCHIVE};
use dnsdhcp::kube::{Cluster, KEA_CONTAINER, KNOT_CONTAINER, KubeError, KubeTarget, ProgressMode};
use dnsdhcp::pod;
use dnsdhcp::target::LocalTarget;
use kea_leases::ControlClient;
use kube_fake::{FakeApi, FakeConfig};
use sha2::{Digest, Sha256};
use test_support::ctl_relay::CtlRelay;
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
const BIG: u64 = 200 * 1000 * 1000;

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

fn knot_env(knot: &KnotServer) -> Vec<(&'static str, String)> {
    vec![
        (
            "DNSDHCP_KNOT_SOCKET",
            knot.socket_path().display().to_string(),
        ),
        ("DNSDHCP_ZONES_DIR", knot.zones_dir().display().to_string()),
    ]
}

fn kea_env(kea: &KeaServer) -> Vec<(&'static str, String)> {
    vec![
        (
            "DNSDHCP_KEA_SOCKET",
            kea.socket_path().display().to_string(),
        ),
        (
            "DNSDHCP_KEA_LEASE_FILE",
            kea.lease_file().display().to_string(),
        ),
    ]
}

fn add_leases(kea: &KeaServer, n: u32) {
    let client = ControlClient::unix(kea.socket_path());
    for i in 0..n {
        let args = format!(
            r#"{{"ip-address": "10.77.1.{}", "hw-address": "02:00:00:00:01:{:02x}", "valid-lft": 4000, "hostname": "host{i}"}}"#,
            i + 1,
            i + 1
        );
        client.call("lease4-add", Some(&args)).expect("lease4-add");
    }
}

fn serial(knot: &KnotServer) -> Option<u32> {
    LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        ..LocalTarget::default()
    }
    .knot()
    .unwrap()
    .zone_status(ZONE)
    .unwrap()
    .serial
}

fn lease_count(kea: &KeaServer) -> usize {
    ControlClient::unix(kea.socket_path())
        .lease4_get_all_paged(100)
        .unwrap()
        .len()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `/tmp/dnsdhcp-*` directories the transport created in the "pod" (this host's /tmp).
fn pod_tmp_dirs(fake: &FakeApi) -> Vec<String> {
    fake.execs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| e.command.clone())
        .filter(|a| a.starts_with("/tmp/dnsdhcp-"))
        .filter(|a| Path::new(a).exists())
        .collect()
}

/// A fake pod of a release without the `backup` container (the in-pod work runs in the daemons'
/// own containers) whose deletion runs `on_delete` (the "restart"), and a cluster that waits
/// `confirm` for the new pod to confirm a restore.
async fn restarting_pod(
    knot: &KnotServer,
    kea_env: &[(&str, String)],
    on_delete: Arc<dyn Fn() + Send + Sync>,
    confirm: Duration,
) -> (FakeApi, Cluster) {
    let mut config = FakeConfig::new(BIN)
        .container("knot-auth", &knot_env(knot))
        .container("kea-dhcp4", kea_env);
    config.on_delete = Some(on_delete);
    let fake = FakeApi::start(config).await;
    let mut c = cluster(&fake);
    c.timeouts.confirm = confirm;
    (fake, c)
}

/// The parts of a restore reported incomplete: what is restored, what is not, the command
/// that finishes it, and why it stopped. Panics on any other error.
fn incomplete(
    err: &KubeError,
) -> (
    &Vec<String>,
    &Vec<String>,
    &String,
    &(dyn std::error::Error + Send + Sync),
) {
    let KubeError::Incomplete(inner) = err else {
        panic!("expected an incomplete restore, got {err:?}");
    };
    let dnsdhcp::restore::RestoreError::Incomplete {
        restored,
        not_restored,
        finish,
        cause,
    } = inner.as_ref()
    else {
        panic!("expected RestoreError::Incomplete, got {inner:?}");
    };
    (restored, not_restored, finish, cause.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_v5_backup_all_then_restore_by_simulated_pod_restart_with_real_knotd_and_kea() {
    let knot = Arc::new(KnotServer::start(&[(ZONE, ZONE_TEXT)]));
    let kea = Arc::new(Mutex::new(KeaServer::start(KeaConfig::new())));
    add_leases(&kea.lock().unwrap(), 12);
    let (lease_file, kenv) = {
        let k = kea.lock().unwrap();
        (k.lease_file(), kea_env(&k))
    };
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "dyn", "60", "A", "192.0.2.99"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let serial_backed_up = serial(&knot).unwrap();

    // Deleting the pod: Kea stops, init-leases runs, Kea starts, post-start runs on Knot.
    let on_delete = kube_fake::pod_restart(knot.clone(), Some(kea.clone()));
    let (fake, c) = restarting_pod(&knot, &kenv, on_delete, Duration::from_secs(30)).await;
    let out = tempfile::tempdir().unwrap();

    let zb = c.backup_zones(out.path()).await.expect("zone backup");
    let lb = c.backup_leases(out.path()).await.expect("lease backup");
    for w in [&zb.full, &zb.zones, &lb.archive, &lb.latest] {
        assert_eq!(w.path.parent().unwrap(), out.path());
        let report = archive::verify(&w.path, &Limits::default());
        assert!(report.ok, "{}: {:?}", w.path.display(), report.problems);
        let mode = fs::metadata(&w.path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
    let files = names(out.path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("knot-zones-unified-dns-dhcp-"))
    );
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("kea-leases-unified-dns-dhcp-"))
    );
    assert!(files.contains(&ZONES_ARCHIVE.to_owned()));
    assert!(files.contains(&LEASES_ARCHIVE.to_owned()));
    assert_eq!(zb.zones.manifest.zones[0].serial, serial_backed_up);
    assert_eq!(lb.latest.manifest.lease_count, 12);
    assert!(
        pod_tmp_dirs(&fake).is_empty(),
        "the pod's temporary directories are removed"
    );

    // Damage, then restore through the pod's volumes and a restart.
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    assert_ne!(serial(&knot), Some(serial_backed_up));
    ControlClient::unix(kea.lock().unwrap().socket_path())
        .lease4_wipe(None)
        .unwrap();
    let uid_before = fake.uid();
    let r = c
        .restore(Some(&zb.zones.path), Some(&lb.latest.path), false)
        .await
        .expect("restore");
    assert_eq!(r.old_uid, uid_before);
    assert_eq!(r.new_uid.as_deref(), Some(fake.uid().as_str()));
    assert_ne!(r.new_uid.as_deref(), Some(uid_before.as_str()));
    assert_eq!(r.zones.len(), 1);
    // The restored zone's serial moves past the archived one (and the damage's).
    assert!(
        r.zones[0].serving > serial_backed_up + 1,
        "{:?}",
        r.zones[0]
    );
    assert_eq!(r.leases_archived, Some(12));
    assert_eq!(r.leases_held, Some(12));
    // `restore --json`'s report: the same shape as a local restore's.
    let report = r.report();
    let zones = report.zones.as_ref().expect("zones in the report");
    assert_eq!(zones.archive, zb.zones.path);
    assert_eq!(zones.method, "post-start");
    assert_eq!(zones.zones[0].serial, r.zones[0].serving);
    assert_eq!(zones.zones[0].method, dnsdhcp::zones::Method::PostStart);
    let leases = report.leases.as_ref().expect("leases in the report");
    assert_eq!((leases.archived, leases.held), (12, 12));
    assert_eq!(leases.archive, lb.latest.path);
    let pod = report.pod.as_ref().expect("the pod in the report");
    assert_eq!(pod.new_uid, r.new_uid);
    assert_eq!(pod.old_uid, uid_before);
    assert_eq!(serial(&knot), Some(r.zones[0].serving));
    assert_eq!(lease_count(&kea.lock().unwrap()), 12);
    // Consumed by the roles; nothing staged remains.
    assert!(!knot.zones_dir().join(ZONES_ARCHIVE).exists());
    assert!(!lease_file.parent().unwrap().join(LEASES_ARCHIVE).exists());
    let reqs = fake.requests.lock().unwrap().clone();
    let delete = reqs
        .iter()
        .position(|r| r.starts_with("DELETE /api/v1/namespaces/dns-dhcp/pods/unified-dns-dhcp-0"))
        .expect("pod deleted");
    assert!(
        reqs[delete + 1..]
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/dns-dhcp/pods/unified-dns-dhcp-0 ")),
        "{reqs:?}"
    );

    // The full archive restores too (reduced to its zone files for post-start), after a change.
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let served_before = serial(&knot).unwrap();
    let r = c
        .restore(Some(&zb.full.path), None, false)
        .await
        .expect("restore full");
    assert!(r.zones[0].serving > served_before, "{:?}", r.zones[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_v4_live_restore_and_records_with_real_knotd_and_kea() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 7);
    let mut config = FakeConfig::new(BIN)
        .container("knot-auth", &knot_env(&knot))
        .container("kea-dhcp4", &kea_env(&kea));
    config.v5 = false;
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    let out = tempfile::tempdir().unwrap();
    let zb = c
        .backup_zones(out.path())
        .await
        .expect("zone backup over v4");
    let lb = c
        .backup_leases(out.path())
        .await
        .expect("lease backup over v4");
    let serial_backed_up = serial(&knot).unwrap();

    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    ControlClient::unix(kea.socket_path())
        .lease4_wipe(None)
        .unwrap();
    let r = c
        .restore(Some(&zb.full.path), Some(&lb.latest.path), true)
        .await
        .expect("live restore over v4");
    assert_eq!(r.new_uid, None, "no restart with --live");
    assert!(
        !fake
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("DELETE"))
    );
    assert!(
        r.zones[0].serving > serial_backed_up + 1,
        "{:?}",
        r.zones[0]
    );
    assert_eq!(r.leases_held, Some(7));
    assert_eq!(lease_count(&kea), 7);
    assert!(
        r.live
            .as_ref()
            .is_some_and(|l| l.zones.is_some() && l.leases.is_some()),
        "{:?}",
        r.live
    );
    assert!(pod_tmp_dirs(&fake).is_empty());

    // records plan/apply against the pod.
    let values = out.path().join("values.yaml");
    fs::write(
        &values,
        "zones:\n  - name: home.test\nstaticRecords:\n  - \"printer IN A 192.0.2.50\"\n",
    )
    .unwrap();
    dnsdhcp::records::load_values(&[&values]).expect("valid values");
    let (code, plan) = c
        .records(
            std::slice::from_ref(&values),
            false,
            &["--json".into(), "--exit-code".into()],
        )
        .await
        .expect("plan");
    assert_eq!(code, 2, "a plan with changes exits 2 under --exit-code");
    let plan: serde_json::Value = serde_json::from_slice(&plan).expect("plan JSON");
    assert!(plan.to_string().contains("printer"), "{plan}");
    c.records(std::slice::from_ref(&values), true, &[])
        .await
        .expect("apply");
    let read = knot.knotc_ok(&["zone-read", ZONE, "printer", "A"]);
    assert!(read.contains("192.0.2.50"), "{read}");
    assert!(pod_tmp_dirs(&fake).is_empty());
}

/// A file of `len` pseudo-random bytes (incompressible), and its SHA-256.
fn big_file(path: &Path, len: u64) -> String {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    hex::encode(h.finalize())
}

fn sha_of(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

async fn big_each_way(v5: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pod_dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let sha = big_file(&src, BIG);
    let mut config = FakeConfig::new(BIN).container("knot-auth", &[]);
    config.v5 = v5;
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);

    let remote = pod_dir.path().join("in/big.bin");
    let t = Instant::now();
    let n = c
        .upload_file("knot-auth", &src, remote.to_str().unwrap())
        .await
        .expect("upload");
    eprintln!("upload 200 MB (v5={v5}): {:?}", t.elapsed());
    assert_eq!(n, BIG);
    assert_eq!(sha_of(&remote), sha);
    assert_eq!(names(remote.parent().unwrap()), vec!["big.bin"]);

    let local = dir.path().join("out/big.bin");
    let t = Instant::now();
    let n = c
        .download_file("knot-auth", remote.to_str().unwrap(), &local)
        .await
        .expect("download");
    eprintln!("download 200 MB (v5={v5}): {:?}", t.elapsed());
    assert_eq!(n, BIG);
    assert_eq!(sha_of(&local), sha);
    assert_eq!(names(local.parent().unwrap()), vec!["big.bin"]);
    let mode = fs::metadata(&local).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_v5_200mb_each_way() {
    big_each_way(true).await;
}

/// On v4 the end of stdin cannot be signalled: the upload still completes because
/// receive-file reads exactly the announced length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_v4_200mb_each_way_without_stdin_close() {
    big_each_way(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_exit_status_and_stderr_of_a_failing_command() {
    let fake = FakeApi::start(FakeConfig::new(BIN).container("knot-auth", &[])).await;
    let c = cluster(&fake);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("small.bin");
    fs::write(&src, b"hello").unwrap();

    // verify of a missing archive exits 1 and says why on stderr... or stdout; any non-zero.
    let err = c
        .run(
            "knot-auth",
            &["pod".into(), "send-file".into(), "/nonexistent/x".into()],
        )
        .await
        .unwrap_err();
    match &err {
        KubeError::CommandFailed {
            code,
            stderr,
            container,
            ..
        } => {
            assert_eq!(*code, 1);
            assert_eq!(container, "knot-auth");
            assert!(stderr.contains("/nonexistent/x"), "{stderr}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("exit code 1"), "{err}");

    // A wrong digest: receive-file fails, its stderr explains, nothing is written.
    let dest = dir.path().join("pod/small.bin");
    let err = c
        .run(
            "knot-auth",
            &[
                "pod".into(),
                "receive-file".into(),
                "--size".into(),
                "0".into(),
                "--sha256".into(),
                "00".into(),
                dest.display().to_string(),
            ],
        )
        .await
        .unwrap_err();
    match &err {
        KubeError::CommandFailed { code, stderr, .. } => {
            assert_eq!(*code, 1);
            assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert!(!dest.exists());
    assert!(names(dest.parent().unwrap()).is_empty());

    // A command that cannot be started.
    let mut c2 = c.clone();
    c2.binary = "/nonexistent/dnsdhcp".into();
    let err = c2
        .run("knot-auth", &["--version".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::ExecFailed { .. }), "{err:?}");

    // A container the pod does not have.
    let err = c.pod(&["kea-dhcp4"]).await.unwrap_err();
    match err {
        KubeError::MissingContainer {
            container,
            available,
            ..
        } => {
            assert_eq!(container, "kea-dhcp4");
            assert_eq!(available, vec!["knot-auth"]);
        }
        other => panic!("expected MissingContainer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_connection_cut_mid_download_leaves_nothing_locally() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    big_file(&src, 64 << 20);
    let mut config = FakeConfig::new(BIN).container("knot-auth", &[]);
    config.cut_after = Some(20 << 20);
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let err = c
        .download_file("knot-auth", src.to_str().unwrap(), &out.join("big.bin"))
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::ConnectionLost { .. }), "{err:?}");
    assert!(err.to_string().contains("lost"), "{err}");
    assert!(names(&out).is_empty(), "left behind: {:?}", names(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_connection_cut_mid_upload_leaves_nothing_in_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    big_file(&src, 64 << 20);
    let mut config = FakeConfig::new(BIN).container("knot-auth", &[]);
    config.cut_after = Some(20 << 20);
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    let pod_dir = dir.path().join("pod");
    fs::create_dir(&pod_dir).unwrap();
    let err = c
        .upload_file("knot-auth", &src, pod_dir.join("big.bin").to_str().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::ConnectionLost { .. }), "{err:?}");
    // The in-pod receive-file saw its input end early, removed its temporary file, failed.
    fake.wait_execs_done(30).await;
    let rec = fake.execs.lock().unwrap().last().cloned().unwrap();
    assert!(rec.cut);
    assert_ne!(rec.exit, Some(0));
    assert!(
        names(&pod_dir).is_empty(),
        "left behind: {:?}",
        names(&pod_dir)
    );
}

/// A fake pod whose Knot container runs against `knot` and whose Kea container against `kea`
/// (one container holding both when the chart execs into one).
fn fake_pod(knot: &KnotServer, kea: &KeaServer) -> FakeConfig {
    let config = FakeConfig::new(BIN);
    if KNOT_CONTAINER == KEA_CONTAINER {
        let mut env = knot_env(knot);
        env.extend(kea_env(kea));
        config.container(KNOT_CONTAINER, &env)
    } else {
        config
            .container(KNOT_CONTAINER, &knot_env(knot))
            .container(KEA_CONTAINER, &kea_env(kea))
    }
}

/// Commands the fake ran whose arguments include every one of `words`.
fn ran(fake: &FakeApi, words: &[&str]) -> usize {
    fake.execs
        .lock()
        .unwrap()
        .iter()
        .filter(|e| words.iter().all(|w| e.command.iter().any(|a| a == w)))
        .count()
}

const OTHER_ZONE: &str = "other.test";
const OTHER_TEXT: &str = "$TTL 3600
@       IN SOA ns1 hostmaster 3 3600 900 604800 300
@       IN NS  ns1
ns1     IN A   192.0.2.1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_preflight_in_the_pod_refuses_a_zone_its_knotd_does_not_serve_and_changes_nothing()
{
    // The archives come from a host serving one zone more than the pod's knotd.
    let source_knot = KnotServer::start(&[(ZONE, ZONE_TEXT), (OTHER_ZONE, OTHER_TEXT)]);
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 5);
    let out = tempfile::tempdir().unwrap();
    let zb = dnsdhcp::backup::backup_zones(
        &LocalTarget {
            knot_socket: source_knot.socket_path().to_owned(),
            ..LocalTarget::default()
        },
        out.path(),
    )
    .expect("zone backup");
    let lb = dnsdhcp::backup::backup_leases(
        &LocalTarget {
            kea_lease_file: kea.lease_file(),
            ..LocalTarget::default()
        },
        out.path(),
    )
    .expect("lease backup");
    ControlClient::unix(kea.socket_path())
        .lease4_wipe(None)
        .unwrap();
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "marker", "60", "A", "198.51.100.7"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let serial_before = serial(&knot);

    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut config = fake_pod(&knot, &kea);
    let flag = restarted.clone();
    config.on_delete = Some(Arc::new(move || {
        flag.store(true, std::sync::atomic::Ordering::SeqCst)
    }));
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);

    for (zones, live) in [(&zb.zones.path, false), (&zb.full.path, true)] {
        let err = c
            .restore(Some(zones), Some(&lb.latest.path), live)
            .await
            .expect_err("refused");
        let KubeError::Preflight(p) = &err else {
            panic!("expected a preflight refusal (live: {live}), got {err:?}");
        };
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(
            p.problems[0].contains(&format!("unified-dns-dhcp-0/{KNOT_CONTAINER}"))
                && p.problems[0].contains("zone other.test")
                && p.problems[0].contains("add it to Knot's configuration"),
            "{:?}",
            p.problems
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
    }
    // Checked in the pod, then nothing: no upload, no restore, no restart.
    assert_eq!(ran(&fake, &["pod", "preflight"]), 4);
    assert_eq!(ran(&fake, &["receive-file"]), 0);
    assert_eq!(ran(&fake, &["restore"]), 0);
    assert!(!restarted.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        !fake
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("DELETE"))
    );
    assert_eq!(serial(&knot), serial_before);
    let read = knot.knotc_ok(&["zone-read", ZONE, "marker", "A"]);
    assert!(read.contains("198.51.100.7"), "{read}");
    assert_eq!(lease_count(&kea), 0, "no lease restored");
    assert!(!knot.zones_dir().join(ZONES_ARCHIVE).exists());
    assert!(
        !kea.lease_file()
            .parent()
            .unwrap()
            .join(LEASES_ARCHIVE)
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_live_restore_failing_at_the_leases_is_reported_incomplete_with_the_command_that_finishes_it()
 {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = Arc::new(Mutex::new(KeaServer::start(KeaConfig::new())));
    add_leases(&kea.lock().unwrap(), 4);
    let mut config = fake_pod(&knot, &kea.lock().unwrap());
    // Kea dies once the zones are restored, just as the leases' restore starts.
    let k = kea.clone();
    config.on_exec = Some(Arc::new(move |_, cmd| {
        if cmd.iter().any(|a| a == "restore") && cmd.iter().any(|a| a == "--leases") {
            k.lock().unwrap().stop();
        }
    }));
    let fake = FakeApi::start(config).await;
    let mut c = Cluster::new(
        fake.client(),
        &KubeTarget {
            context: Some("test-ctx".into()),
            namespace: "dns-dhcp".into(),
            statefulset: "unified-dns-dhcp".into(),
            name: None,
        },
    );
    c.progress = ProgressMode::Quiet;
    let out = tempfile::tempdir().unwrap();
    let zb = c.backup_zones(out.path()).await.expect("zone backup");
    let lb = c.backup_leases(out.path()).await.expect("lease backup");
    // Archives made through Kubernetes record where they come from.
    let source = "kubernetes:test-ctx/dns-dhcp/unified-dns-dhcp";
    for w in [&zb.full, &zb.zones, &lb.archive, &lb.latest] {
        assert_eq!(w.manifest.source, source, "{}", w.path.display());
        let report = archive::verify(&w.path, &Limits::default());
        assert_eq!(report.source.as_deref(), Some(source));
    }
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);

    let err = c
        .restore(Some(&zb.zones.path), Some(&lb.latest.path), true)
        .await
        .expect_err("the leases cannot be restored");
    let (restored, not_restored, finish, _) = incomplete(&err);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert!(restored[0].starts_with("zone home.test"), "{restored:?}");
    assert_eq!(
        not_restored,
        &vec![format!("leases from {}", lb.latest.path.display())]
    );
    assert_eq!(
        finish,
        &format!(
            "dnsdhcp restore --live --leases {} -c test-ctx -n dns-dhcp -s unified-dns-dhcp",
            lb.latest.path.display()
        )
    );
    let text = err.to_string();
    assert!(
        text.starts_with("restore incomplete: ") && text.contains("Kea"),
        "{text}"
    );
    // The zones are restored indeed: the intruder is gone.
    let read = knot.knotc(&["zone-read", ZONE, "intruder", "A"]);
    let read = String::from_utf8_lossy(&read.stdout);
    assert!(!read.contains("198.51.100.1"), "{read}");
    assert!(pod_tmp_dirs(&fake).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_an_in_pod_values_error_names_the_operators_file() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let fake =
        FakeApi::start(FakeConfig::new(BIN).container(KNOT_CONTAINER, &knot_env(&knot))).await;
    let c = cluster(&fake);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("operator-values.yaml");
    fs::write(
        &values,
        "zones:\n  - name: home.test\nstaticRecords:\n  - \"printer IN A not-an-address\"\n",
    )
    .unwrap();
    let err = c
        .records(std::slice::from_ref(&values), false, &[])
        .await
        .expect_err("bad values");
    let KubeError::CommandFailed { stderr, .. } = &err else {
        panic!("expected the in-pod command to fail, got {err:?}");
    };
    let text = err.to_string();
    assert!(stderr.contains(&values.display().to_string()), "{stderr}");
    assert!(!text.contains("/tmp/dnsdhcp-"), "{text}");
    assert!(!text.contains("values-0.yaml"), "{text}");
}

/// A pod with the chart's `backup` container: every exec of a backup and a live restore (and
/// the version handshake) goes there, none into Knot's or Kea's container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_backup_and_live_restore_exec_only_in_the_backup_container() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 5);
    let mut both = knot_env(&knot);
    both.extend(kea_env(&kea));
    let config = FakeConfig::new(BIN)
        .container(KEA_CONTAINER, &kea_env(&kea))
        .container(dnsdhcp::kube::WORK_CONTAINER, &both)
        .container(KNOT_CONTAINER, &knot_env(&knot));
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    c.check_version().await.expect("version handshake");
    let out = tempfile::tempdir().unwrap();
    let zb = c.backup_zones(out.path()).await.expect("zone backup");
    let lb = c.backup_leases(out.path()).await.expect("lease backup");
    ControlClient::unix(kea.socket_path())
        .lease4_wipe(None)
        .unwrap();
    let r = c
        .restore(Some(&zb.full.path), Some(&lb.latest.path), true)
        .await
        .expect("live restore");
    assert_eq!(r.leases_held, Some(5));
    assert_eq!(lease_count(&kea), 5);
    fake.wait_execs_done(10).await;
    let execs = fake.execs.lock().unwrap();
    assert!(execs.len() >= 6, "{} execs", execs.len());
    let elsewhere: Vec<_> = execs
        .iter()
        .filter(|e| e.container != dnsdhcp::kube::WORK_CONTAINER)
        .map(|e| format!("{}: {}", e.container, e.command.join(" ")))
        .collect();
    assert!(elsewhere.is_empty(), "ran outside backup: {elsewhere:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_live_restore_stopped_by_knotd_dying_between_zones_is_reported_incomplete() {
    let zones = ["a.test", "b.test"];
    let knot = KnotServer::start(&[(zones[0], ZONE_TEXT), (zones[1], ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    let out = tempfile::tempdir().unwrap();
    let zb = dnsdhcp::backup::backup_zones(
        &LocalTarget {
            knot_socket: knot.socket_path().to_owned(),
            ..LocalTarget::default()
        },
        out.path(),
    )
    .expect("zone backup");
    for zone in zones {
        knot.knotc_ok(&["zone-begin", zone]);
        knot.knotc_ok(&["zone-set", zone, "intruder", "60", "A", "198.51.100.1"]);
        knot.knotc_ok(&["zone-commit", zone]);
    }
    // The pod's dnsdhcp reaches knotd through a relay that SIGKILLs knotd just before the
    // in-pod restore, having begun a transaction in one zone, first names the other (its
    // checks before any change name both): the first zone is done, the second not begun.
    let relay = Arc::new(CtlRelay::start(knot.socket_path()));
    relay.set_victim(knot.pid().expect("knotd runs"));
    let first_touched = Arc::new(Mutex::new(None::<usize>));
    let mut env = knot_env(&knot);
    let socket = env.iter_mut().find(|(k, _)| *k == "DNSDHCP_KNOT_SOCKET");
    socket.expect("knot_env names the socket").1 = relay.path().display().to_string();
    let mut config = if KNOT_CONTAINER == KEA_CONTAINER {
        env.extend(kea_env(&kea));
        FakeConfig::new(BIN).container(KNOT_CONTAINER, &env)
    } else {
        FakeConfig::new(BIN)
            .container(KNOT_CONTAINER, &env)
            .container(KEA_CONTAINER, &kea_env(&kea))
    };
    let (armed, first) = (relay.clone(), first_touched.clone());
    config.on_exec = Some(Arc::new(move |_, cmd| {
        if !(cmd.iter().any(|a| a == "restore") && cmd.iter().any(|a| a == "--zones")) {
            return;
        }
        let first = first.clone();
        armed.kill_before(move |piece| {
            let named = |z: &str| piece.windows(z.len()).any(|w| w == z.as_bytes());
            let Some(zone) = (0..2).find(|&i| named(zones[i])) else {
                return false;
            };
            let mut first = first.lock().unwrap();
            match *first {
                None if named("zone-begin") => *first = Some(zone),
                Some(done) => return zone != done,
                None => {}
            }
            false
        });
    }));
    let fake = FakeApi::start(config).await;
    let c = cluster(&fake);
    let err = c
        .restore(Some(&zb.zones.path), None, true)
        .await
        .expect_err("knotd died");
    let (restored, not_restored, finish, _) = incomplete(&err);
    assert!(relay.killed(), "knotd was not killed");
    let first = first_touched.lock().unwrap().expect("a zone was touched");
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(not_restored.len(), 1, "{not_restored:?}");
    assert!(
        restored[0].starts_with(&format!("zone {}", zones[first])),
        "{restored:?}"
    );
    assert!(
        not_restored[0].starts_with(&format!("zone {}", zones[1 - first])),
        "{not_restored:?}"
    );
    assert_eq!(
        finish,
        &format!(
            "dnsdhcp restore --live --zones {} -n dns-dhcp -s unified-dns-dhcp",
            zb.zones.path.display()
        )
    );
    assert!(!err.to_string().contains("/tmp/dnsdhcp-"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_backup_keeps_the_local_fixed_name_archives_when_the_counts_drop_too_far() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let kea = KeaServer::start(KeaConfig::new());
    add_leases(&kea, 12);
    let fake = FakeApi::start(fake_pod(&knot, &kea)).await;
    let c = cluster(&fake);
    let out = tempfile::tempdir().unwrap();
    c.backup_zones(out.path()).await.expect("zone backup");
    c.backup_leases(out.path()).await.expect("lease backup");
    let (zones, leases) = (
        out.path().join(ZONES_ARCHIVE),
        out.path().join(LEASES_ARCHIVE),
    );
    let (good_zones, good_leases) = (fs::read(&zones).unwrap(), fs::read(&leases).unwrap());

    // Every lease gone, half the zone's records gone: both fixed-name archives kept byte for
    // byte, both counts named, the timestamped archives downloaded all the same.
    let client = ControlClient::unix(kea.socket_path());
    for i in 0..12 {
        let args = format!(r#"{{"ip-address": "10.77.1.{}"}}"#, i + 1);
        client.call("lease4-del", Some(&args)).expect("lease4-del");
    }
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-unset", ZONE, "ns1", "A"]);
    knot.knotc_ok(&["zone-unset", ZONE, "www", "A"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let guard = dnsdhcp::backup::ShrinkGuard::default();
    let e = c
        .backup_leases_with(out.path(), &guard)
        .await
        .expect_err("a backup of no leases replaces kea-leases.tar.gz");
    let KubeError::Shrink(r) = &e else {
        panic!("{e}")
    };
    assert_eq!((r.old.leases, r.new.leases), (Some(12), Some(0)));
    assert_eq!(r.kept, leases);
    assert!(e.to_string().contains("12 leases"), "{e}");
    let strict = dnsdhcp::backup::ShrinkGuard::percent(40.0).unwrap();
    let e = c
        .backup_zones_with(out.path(), &strict)
        .await
        .expect_err("a backup of 2 of 4 records with a 40 % limit");
    assert!(
        e.to_string()
            .contains("records dropped by 50.0 % (4 to 2), more than --shrink-limit 40 %"),
        "{e}"
    );
    assert_eq!(fs::read(&zones).unwrap(), good_zones);
    assert_eq!(fs::read(&leases).unwrap(), good_leases);
    let files = names(out.path());
    assert_eq!(files.len(), 6, "two of each timestamped archive: {files:?}");

    // --allow-shrink replaces them.
    let allow = dnsdhcp::backup::ShrinkGuard {
        allow_shrink: true,
        ..guard
    };
    let lb = c.backup_leases_with(out.path(), &allow).await.unwrap();
    assert_eq!(lb.latest.path, leases);
    assert_eq!(
        archive::read_manifest(&leases, &Limits::default())
            .unwrap()
            .lease_count,
        0
    );
    c.backup_zones_with(out.path(), &allow).await.unwrap();
    assert_ne!(fs::read(&zones).unwrap(), good_zones);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_restart_restore_the_new_pod_does_not_confirm_is_reported_incomplete() {
    let knot = Arc::new(KnotServer::start(&[(ZONE, ZONE_TEXT)]));
    let kea = Arc::new(Mutex::new(KeaServer::start(KeaConfig::new())));
    add_leases(&kea.lock().unwrap(), 5);
    let kenv = kea_env(&kea.lock().unwrap());
    // The "restarted" pod restores the leases, but its post-start never restores the zone:
    // the zone is emptied instead, so it serves nothing.
    let (k2, kea2) = (knot.clone(), kea.clone());
    let on_delete = Arc::new(move || {
        let mut kea = kea2.lock().unwrap();
        kea.stop();
        pod::init_leases(&kea.lease_file()).expect("init-leases");
        kea.restart();
        k2.knotc_ok(&["zone-purge", "-f", ZONE]);
    });
    let (_fake, c) = restarting_pod(&knot, &kenv, on_delete, Duration::from_secs(3)).await;
    let out = tempfile::tempdir().unwrap();
    let zb = c.backup_zones(out.path()).await.expect("zone backup");
    let lb = c.backup_leases(out.path()).await.expect("lease backup");

    let err = c
        .restore(Some(&zb.zones.path), Some(&lb.latest.path), false)
        .await
        .expect_err("the zone is not served");
    let (restored, not_restored, finish, cause) = incomplete(&err);
    assert_eq!(restored, &vec!["leases (5 held)".to_owned()]);
    assert_eq!(not_restored, &vec![format!("zone {ZONE}.")]);
    assert_eq!(
        finish,
        &format!(
            "dnsdhcp restore --live --zones {} -n dns-dhcp -s unified-dns-dhcp",
            zb.zones.path.display()
        )
    );
    assert!(cause.to_string().contains("serves nothing"), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_restart_restore_is_not_confirmed_by_the_damaged_zone_s_own_newer_serial() {
    let knot = Arc::new(KnotServer::start(&[(ZONE, ZONE_TEXT)]));
    let kea = Arc::new(Mutex::new(KeaServer::start(KeaConfig::new())));
    let kenv = kea_env(&kea.lock().unwrap());
    // The "restarted" pod never runs post-start: the zone keeps its damage, whose serial is
    // past the archived one.
    let (_fake, c) = restarting_pod(&knot, &kenv, Arc::new(|| {}), Duration::from_secs(3)).await;
    let out = tempfile::tempdir().unwrap();
    let zb = c.backup_zones(out.path()).await.expect("zone backup");
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "A", "198.51.100.1"]);
    knot.knotc_ok(&["zone-commit", ZONE]);
    let damaged = serial(&knot).expect("serial");
    assert!(damaged > zb.zones.manifest.zones[0].serial);

    let err = c
        .restore(Some(&zb.zones.path), None, false)
        .await
        .expect_err("the damaged zone is still served");
    let (restored, not_restored, _, cause) = incomplete(&err);
    assert!(restored.is_empty(), "{restored:?}");
    assert_eq!(not_restored, &vec![format!("zone {ZONE}.")]);
    assert!(
        cause
            .to_string()
            .contains(&format!("serial {damaged} (archived")),
        "{cause}"
    );
    assert!(
        cause
            .to_string()
            .contains(&format!("served {damaged} before")),
        "{cause}"
    );
}
