//! Leases at scale: `backup leases`, `verify`, `pod init-leases`, `leases count` and `leases
//! list` of the `dnsdhcp` binary on 200,000 leases (over `.2`, `.1` and the current file of a
//! live kea-dhcp4) stay under their memory bounds (peak RSS from `wait4`: 128 MB for the backup,
//! 64 MB for `verify` and `init-leases`, the bounds set for 1,000,000 leases; 40 MB for the
//! listings, which hold one page), and the restored file loads in Kea with every lease.
//! Also: `pod init-leases` hit by an I/O error keeps the archive and fails; a missing lease
//! file fails `backup leases` without touching `kea-leases.tar.gz`.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use kea_leases::ControlClient;
use test_support::kea::{KeaConfig, KeaServer, Subnet};
use test_support::leasegen::{self, ChildRun};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const MB: u64 = 1 << 20;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Kea with one subnet wide enough for the generated addresses (10.64.0.0/10).
fn wide_config(dir: &Path) -> KeaConfig {
    KeaConfig::new()
        .subnets(vec![Subnet {
            id: 1,
            prefix: "10.64.0.0/10".into(),
            pools: vec!["10.64.0.1 - 10.127.255.254".into()],
            relay_addresses: Vec::new(),
        }])
        .data_dir(dir)
}

fn count(kea: &KeaServer) -> u64 {
    ControlClient::unix(kea.socket_path())
        .lease4_pages(1000)
        .map(|page| page.unwrap().len() as u64)
        .sum()
}

/// Runs the binary with `args`, asserting success; returns the run and its stdout.
fn run_ok(what: &str, args: &[&std::ffi::OsStr]) -> (ChildRun, String) {
    let (run, out) = run_to_file(what, args);
    (run, fs::read_to_string(out.path()).unwrap())
}

/// [`run_ok`], its stdout left in a file. A child's peak RSS counts its parent's at the
/// time it was started (Linux carries the high-water mark over the exec), so the test reads
/// large outputs only once every measured command has run.
fn run_to_file(what: &str, args: &[&std::ffi::OsStr]) -> (ChildRun, tempfile::NamedTempFile) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let run = leasegen::run_measured(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(out.reopen().unwrap()))
            .stderr(Stdio::from(err.reopen().unwrap())),
    );
    let stderr = fs::read_to_string(err.path()).unwrap();
    assert!(run.status.success(), "{what}: {stderr}");
    eprintln!(
        "{what}: {:.2} s, peak RSS {:.1} MB",
        run.wall.as_secs_f64(),
        run.peak_rss as f64 / MB as f64
    );
    (run, out)
}

/// [`run_to_file`] of `args` with the local target on `kea`.
fn run_on_kea(what: &str, kea: &KeaServer, args: &[&str]) -> (ChildRun, tempfile::NamedTempFile) {
    let socket = kea.socket_path();
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend(["--local", "--kea-socket"].map(std::ffi::OsStr::new));
    all.push(socket.as_os_str());
    run_to_file(what, &all)
}

#[test]
fn lease_commands_on_200000_leases_stay_under_their_memory_bounds() {
    let n = 200_000;
    let live = tempfile::tempdir().unwrap();
    let generated = leasegen::generate(live.path(), n, Ipv4Addr::new(10, 64, 0, 0), now());
    let kea = KeaServer::start(wide_config(live.path()));
    assert_eq!(
        count(&kea),
        generated.leases,
        "Kea loaded the generated files"
    );

    let out = tempfile::tempdir().unwrap();
    let (backup, _) = run_ok(
        "backup leases",
        &[
            "backup".as_ref(),
            "leases".as_ref(),
            "--local".as_ref(),
            "--name".as_ref(),
            "scale".as_ref(),
            "-b".as_ref(),
            out.path().as_os_str(),
            "--kea-socket".as_ref(),
            kea.socket_path().as_os_str(),
            "--kea-lease-file".as_ref(),
            kea.lease_file().as_os_str(),
        ],
    );
    let latest = out.path().join("kea-leases.tar.gz");
    let stamped: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("kea-leases-scale-"))
        .collect();
    assert_eq!(stamped.len(), 1, "{stamped:?}");
    assert_eq!(
        fs::read(&latest).unwrap(),
        fs::read(&stamped[0]).unwrap(),
        "kea-leases.tar.gz is a copy of the timestamped archive"
    );

    let (verify, report) = run_ok(
        "verify",
        &["verify".as_ref(), "--json".as_ref(), latest.as_os_str()],
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let report = &report["reports"][0];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["lease_count"], generated.leases, "{report}");

    // init-leases into a fresh lease directory, then Kea loads exactly that set.
    let restored = tempfile::tempdir().unwrap();
    fs::copy(&latest, restored.path().join("kea-leases.tar.gz")).unwrap();
    let lease_file = restored.path().join("kea-leases4.csv");
    let (init, _) = run_ok(
        "pod init-leases",
        &[
            "pod".as_ref(),
            "init-leases".as_ref(),
            "--kea-lease-file".as_ref(),
            lease_file.as_os_str(),
        ],
    );
    assert!(!restored.path().join("kea-leases.tar.gz").exists());
    drop(kea);
    let kea = KeaServer::start(wide_config(restored.path()));
    assert_eq!(count(&kea), generated.leases, "Kea loads the restored file");

    // The listings page through Kea: one page in memory, whatever the lease count.
    let (count_run, counted) = run_on_kea("leases count", &kea, &["leases", "count"]);
    let (list_run, lines) = run_on_kea("leases list", &kea, &["leases", "list"]);
    let (json_run, doc) = run_on_kea("leases list --json", &kea, &["leases", "list", "--json"]);

    for (what, run, bound) in [
        ("backup leases", backup, 128 * MB),
        ("verify", verify, 64 * MB),
        ("pod init-leases", init, 64 * MB),
        // One page held at a time: nothing grows with the lease count (all of them held
        // would be about 60 MB here, over 250 MB at 1,000,000).
        ("leases count", count_run, 40 * MB),
        ("leases list", list_run, 40 * MB),
        ("leases list --json", json_run, 40 * MB),
    ] {
        assert!(
            run.peak_rss <= bound,
            "{what}: peak RSS {} bytes, bound {bound}",
            run.peak_rss
        );
    }

    let counted = fs::read_to_string(counted.path()).unwrap();
    assert_eq!(counted.trim(), generated.leases.to_string());
    #[derive(serde::Deserialize)]
    struct Listed {
        #[serde(rename = "ip-address")]
        address: Ipv4Addr,
    }
    #[derive(serde::Deserialize)]
    struct Report {
        kind: String,
        items: Vec<Listed>,
    }
    let lines = fs::read_to_string(lines.path()).unwrap();
    let listed: Vec<Ipv4Addr> = lines
        .lines()
        .map(|l| serde_json::from_str::<Listed>(l).unwrap().address)
        .collect();
    assert_eq!(listed.len() as u64, generated.leases);
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "pages follow one another, no lease listed twice"
    );
    let doc: Report = serde_json::from_reader(fs::File::open(doc.path()).unwrap()).unwrap();
    assert_eq!(doc.kind, "leases-list");
    let items: Vec<Ipv4Addr> = doc.items.iter().map(|l| l.address).collect();
    assert_eq!(items, listed, "the same leases in both forms");

    // `leases list | head -1`: the reader goes away, the listing ends quietly.
    let socket = kea.socket_path();
    let mut child = Command::new(BIN)
        .args(["leases", "list", "--local", "--kea-socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        serde_json::from_str::<Listed>(&first).unwrap().address,
        listed[0]
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn backup_leases_without_a_lease_file_fails_and_keeps_the_previous_archive() {
    let kea = KeaServer::start(KeaConfig::new());
    let out = tempfile::tempdir().unwrap();
    let latest = out.path().join("kea-leases.tar.gz");
    fs::write(&latest, b"previous").unwrap();
    let missing = kea.dir().join("no-such-leases4.csv");
    let o = Command::new(BIN)
        .args(["backup", "leases", "--local", "-b"])
        .arg(out.path())
        .arg("--kea-socket")
        .arg(kea.socket_path())
        .arg("--kea-lease-file")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-leases4.csv"), "{stderr}");
    assert!(stderr.contains("--kea-lease-file"), "{stderr}");
    assert_eq!(fs::read(&latest).unwrap(), b"previous");
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
}

#[test]
fn init_leases_with_an_io_error_fails_and_keeps_the_archive_for_the_next_start() {
    // A real archive from a live Kea.
    let kea = KeaServer::start(KeaConfig::new());
    for i in 0..300u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 1, 0)) + i);
        let text = format!(
            r#"{{"command": "lease4-add", "arguments": {{"ip-address": "{a}", "hw-address": "00:16:3e:00:{:02x}:{:02x}", "hostname": "h{i}.example.org"}}}}"#,
            i >> 8,
            i & 255
        );
        let reply = kea.command(&text);
        assert!(reply.contains("\"result\": 0"), "{reply}");
    }
    let out = tempfile::tempdir().unwrap();
    run_ok(
        "backup leases",
        &[
            "backup".as_ref(),
            "leases".as_ref(),
            "--local".as_ref(),
            "-b".as_ref(),
            out.path().as_os_str(),
            "--kea-socket".as_ref(),
            kea.socket_path().as_os_str(),
            "--kea-lease-file".as_ref(),
            kea.lease_file().as_os_str(),
        ],
    );
    let archive = fs::read(out.path().join("kea-leases.tar.gz")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("kea-leases4.csv");
    fs::write(&lease_file, format!("{}\n", leasegen::HEADER)).unwrap();
    let placed = dir.path().join("kea-leases.tar.gz");
    fs::write(&placed, &archive).unwrap();
    // Files may not grow past 1 KiB: extracting the lease file fails with EFBIG, an I/O error
    // like a full disk (SIGXFSZ ignored so the write returns the error).
    let mut cmd = Command::new(BIN);
    cmd.args(["pod", "init-leases", "--kea-lease-file"])
        .arg(&lease_file);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(
        fs::read(&placed).unwrap(),
        archive,
        "archive kept as it was"
    );
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("rejected")),
        "nothing moved aside: {names:?}"
    );
    assert_eq!(
        fs::read_to_string(&lease_file).unwrap(),
        format!("{}\n", leasegen::HEADER),
        "lease file unchanged"
    );

    // The next start, without the fault, restores it.
    let (_, stdout) = run_ok(
        "pod init-leases",
        &[
            "pod".as_ref(),
            "init-leases".as_ref(),
            "--kea-lease-file".as_ref(),
            lease_file.as_os_str(),
        ],
    );
    assert!(stdout.contains("restored 300 lease(s)"), "{stdout}");
    assert!(!placed.exists());
}
