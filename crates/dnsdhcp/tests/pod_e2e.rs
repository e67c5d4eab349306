//! The Helm chart's pod, rendered by `helm template` and run on this machine by
//! `test_support::pod::PodRunner` with Debian's knotd, kea-dhcp4 and kea-dhcp-ddns and the
//! dnsdhcp binary under test. Needs root (namespaces, mounts).
//!
//! `DNSDHCP_TEST_DAEMONS` chooses the daemons. `trixie` (Knot 3.4.6, Kea 2.6.3: the versions the
//! chart pins) runs the chart as installed: its defaults, `secretFile` included (the TSIG key
//! generated on the zones volume, read by Kea through `secret-file`), Kea 2.6's paths and path
//! restrictions, the hooks at the images' `/usr/lib/kea/hooks`. `host` (Knot 3.2, Kea 2.2) needs
//! two overrides: `ddns.tsig.secretFile=false` (Kea 2.2 has no `secret-file`) and
//! `dhcp.hooksDir` = Debian's hook directory.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::daemons::Daemons;
use test_support::pod::{HostBinaries, PodNetwork, PodRunner, helm_template};

const KDIG: &str = "/usr/bin/kdig";
const KNOTC: &str = "/usr/sbin/knotc";
const KNSUPDATE: &str = "/usr/bin/knsupdate";
const PERFDHCP: &str = "/usr/sbin/perfdhcp";
/// dnsdhcp inside the pod (copied there by the `copy-dnsdhcp` init container).
const POD_DNSDHCP: &str = "/dnsdhcp/bin/dnsdhcp";

/// Overrides for the host's daemons (Debian 12).
const HOST_SETS: &[&str] = &[
    "ddns.tsig.secretFile=false",
    "dhcp.hooksDir=/usr/lib/x86_64-linux-gnu/kea/hooks",
];
/// Overrides for both variants: shorter waits.
const TEST_SETS: &[&str] = &[
    "postStart.timeoutSeconds=30",
    "terminationGracePeriodSeconds=5",
];

fn daemons() -> Daemons {
    Daemons::from_env()
}

const VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
  - name: nas
    type: AAAA
    ttl: 300
    data: fd00::10
  - "printer IN A 192.168.1.30"
  - "@ IN MX 10 mail"
  - "mail IN A 192.168.1.25"
"#;

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install the Debian package {package}"
    );
}

/// Renders the chart with `values` (YAML text) and the host overrides.
fn render(dir: &Path, values: &str) -> String {
    render_with(dir, values, &[])
}

/// Like [`render`], with more `--set` overrides (they win over the host overrides).
fn render_with(dir: &Path, values: &str, sets: &[&str]) -> String {
    let f = dir.join("values.yaml");
    fs::write(&f, values).unwrap();
    let host: &[&str] = if daemons() == Daemons::Host {
        HOST_SETS
    } else {
        &[]
    };
    let all: Vec<&str> = host.iter().chain(TEST_SETS).chain(sets).copied().collect();
    helm_template(&[f.as_path()], &all)
}

fn runner(dir: &Path, values: &str) -> PodRunner {
    runner_from(&render(dir, values))
}

fn runner_from(rendered: &str) -> PodRunner {
    test_support::pod::require_root();
    require(KDIG, "knot-dnsutils");
    daemons().require(KNOTC, "knot");
    PodRunner::new(
        rendered,
        HostBinaries::for_daemons(daemons(), env!("CARGO_BIN_EXE_dnsdhcp")),
        PodNetwork::default(),
    )
}

/// `kdig +short` from inside the pod's network namespace, to 127.0.0.1:53.
fn dig(pod: &PodRunner, name: &str, rtype: &str) -> Vec<String> {
    dig_cmd(pod.pod_net_cmd(KDIG), "127.0.0.1", name, rtype)
}

/// `kdig +short` from the client namespace, to the pod's address.
fn dig_from_client(pod: &PodRunner, name: &str, rtype: &str) -> Vec<String> {
    let server = pod.network().pod_ip().to_string();
    dig_cmd(pod.client_cmd(KDIG), &server, name, rtype)
}

fn dig_cmd(mut cmd: Command, server: &str, name: &str, rtype: &str) -> Vec<String> {
    let out = cmd
        .args([
            &format!("@{server}"),
            "-p",
            "53",
            "+short",
            "+time=2",
            "+retry=1",
        ])
        .args([name, rtype])
        .stdin(Stdio::null())
        .output()
        .expect("kdig");
    assert!(
        out.status.success(),
        "kdig {name} {rtype}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    v.sort();
    v
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(pod: &mut PodRunner) {
    if let Err(e) = pod.start() {
        panic!("the pod did not start:\n{e}");
    }
}

/// Host path of Knot's control socket (in the `knot-run` emptyDir).
fn knot_socket(pod: &PodRunner) -> PathBuf {
    pod.empty_dir("knot-run").join("knot.sock")
}

/// Every record of `zone` but the SOA and dnsdhcp's ownership bookkeeping
/// (`*._dnsdhcp-owned.<zone>` TXT), as `knotc zone-read` prints them.
fn zone_records(pod: &PodRunner, zone: &str) -> BTreeSet<String> {
    let out = daemons()
        .client_command(KNOTC)
        .arg("-s")
        .arg(knot_socket(pod))
        .args(["zone-read", zone])
        .stdin(Stdio::null())
        .output()
        .expect("knotc");
    assert!(
        out.status.success(),
        "knotc zone-read {zone}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.split_whitespace().any(|w| w == "SOA"))
        .filter(|l| !l.contains("._dnsdhcp-owned."))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn knotc(pod: &PodRunner, args: &[&str]) {
    let out = daemons()
        .client_command(KNOTC)
        .arg("-s")
        .arg(knot_socket(pod))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("knotc");
    assert!(
        out.status.success(),
        "knotc {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The owners of every DHCID record of `zone` (Kea's DDNS adds one beside each name).
fn dhcid_owners(pod: &PodRunner, zone: &str) -> Vec<String> {
    zone_records(pod, zone)
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(3) == Some(&"DHCID")).then(|| w[1].to_owned())
        })
        .collect()
}

/// A DHCP client (perfdhcp, acting as a relay on the client namespace's veth, unicasting to the
/// pod as relays do in the chart's default relay mode) asks for one lease, sending host name
/// `name` (option 12).
fn dhcp_client(pod: &PodRunner, name: &str) {
    require(PERFDHCP, "kea-admin");
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    let out = pod
        .client_cmd(PERFDHCP)
        .args([
            "-4",
            "-l",
            pod.client_if(),
            "-r",
            "10",
            "-R",
            "1",
            "-n",
            "1",
        ])
        .args(["-W", "2000000", "-o", &format!("12,{hex}")])
        .arg(pod.network().pod_ip().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("perfdhcp");
    // perfdhcp exits non-zero when a packet was dropped: the lease is checked instead.
    let _ = out;
}

/// Leases Kea holds, from inside the kea-dhcp4 container (`dnsdhcp leases list --local`).
fn leases(pod: &PodRunner) -> Vec<serde_json::Value> {
    let out = pod
        .exec_ok("kea-dhcp4", &[POD_DNSDHCP, "leases", "list", "--local"])
        .unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).expect("lease JSON"))
        .collect()
}

/// Gets a lease for `laptop` and waits until DDNS put its A and PTR records into Knot.
fn lease_with_ddns(pod: &PodRunner) -> String {
    let mut addr = String::new();
    // kea-dhcp4 sends the name-change request once, for a new lease: kea-dhcp-ddns must be
    // listening by then (it has no probe to wait for), or the name never reaches Knot.
    wait_for("kea-dhcp-ddns to start", Duration::from_secs(30), || {
        pod.logs("kea-dhcp-ddns").contains("DHCP_DDNS_STARTED")
    });
    // A packet lost while Kea opens its sockets is retried, as a real client would.
    'attempts: for attempt in 1..=3 {
        dhcp_client(pod, "laptop");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(a) = dig(pod, "laptop.home.arpa", "A").first() {
                addr = a.clone();
                break 'attempts;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("no DDNS record for laptop after DHCP attempt {attempt}");
    }
    assert!(
        !addr.is_empty(),
        "no lease with a DDNS name for laptop; kea-dhcp4:\n{}\nkea-dhcp-ddns:\n{}",
        pod.logs("kea-dhcp4"),
        pod.logs("kea-dhcp-ddns")
    );
    let octets: Vec<&str> = addr.split('.').collect();
    let ptr = format!(
        "{}.{}.{}.{}.in-addr.arpa",
        octets[3], octets[2], octets[1], octets[0]
    );
    wait_for("the DDNS PTR record", Duration::from_secs(10), || {
        dig(pod, &ptr, "PTR") == ["laptop.home.arpa."]
    });
    addr
}

#[test]
fn pod_runner_starts_the_chart_pod_and_serves_the_static_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner(dir.path(), VALUES);
    start(&mut pod);

    assert_eq!(dig(&pod, "router.home.arpa", "A"), ["192.168.1.1"]);
    assert_eq!(dig(&pod, "nas.home.arpa", "AAAA"), ["fd00::10"]);
    assert_eq!(dig(&pod, "home.arpa", "MX"), ["10 mail.home.arpa."]);
    assert_eq!(
        dig(&pod, "30.1.168.192.in-addr.arpa", "PTR"),
        ["printer.home.arpa."]
    );
    // Through the pod's eth0, as a client on the pod network would ask.
    assert_eq!(
        dig_from_client(&pod, "mail.home.arpa", "A"),
        ["192.168.1.25"]
    );

    // The pod as the chart describes it: init containers' work on the volumes, knotd as uid 53
    // with the post-start log in its own log, Kea's socket directory 0750.
    let zones = pod.pvc_dir("zones").join("zones");
    assert!(zones.join("home.arpa.zone").is_file());
    assert!(zones.join("1.168.192.in-addr.arpa.zone").is_file());
    let hook = pod.post_start_output("knot-auth");
    assert!(
        hook.contains("dnsdhcp post-start: static records merged"),
        "post-start output:\n{hook}"
    );
    // post-start also writes its lines to knotd's stdout (`kubectl logs -c knot-auth`) through
    // /run/knot/knot.pid, read again for every line (knotd writes it only once it runs).
    assert!(pod.empty_dir("knot-run").join("knot.pid").is_file());
    let knot_log = pod.logs("knot-auth");
    assert!(
        knot_log.contains("dnsdhcp post-start: static records merged"),
        "knot-auth's log lacks the post-start lines:\n{knot_log}"
    );
    assert_eq!(pod.exec_ok("kea-dhcp4", &["id", "-u"]).unwrap().trim(), "0");
    // The variant's daemons run the pod (trixie: the versions the chart pins).
    let (knot_version, kea_version) = match daemons() {
        Daemons::Host => ("Knot DNS 3.2.", "version 2.2."),
        Daemons::Trixie => ("Knot DNS 3.4.6", "version 2.6.3"),
    };
    assert!(knot_log.contains(knot_version), "{knot_log}");
    let kea_log = pod.logs("kea-dhcp4");
    assert!(kea_log.contains(kea_version), "{kea_log}");
    // The probes the chart gives the containers answer (they ask the daemons).
    for (container, what) in [
        ("knot-auth", "knot"),
        ("kea-dhcp4", "kea-dhcp4"),
        ("kea-dhcp-ddns", "kea-dhcp-ddns"),
    ] {
        let said = pod
            .exec_ok(container, &[POD_DNSDHCP, "pod", "probe", what])
            .unwrap();
        assert!(said.contains("answers"), "{container}: {said}");
    }
    // Containers see the host's files read-only (the runner's isolation), and their volumes
    // read-write or read-only as mounted.
    assert!(
        pod.exec_ok("kea-dhcp4", &["touch", "/etc/pod-runner-probe"])
            .is_err()
    );
    assert!(!Path::new("/etc/pod-runner-probe").exists());
    assert!(pod.exec_ok("knot-auth", &["touch", "/config/x"]).is_err());
    pod.exec_ok("knot-auth", &["touch", "/var/lib/knot/x", "/tmp/x"])
        .unwrap();
    assert_eq!(
        pod.exec_ok("knot-auth", &["id", "-u"]).unwrap().trim(),
        "53"
    );
    let mode = fs::metadata(pod.empty_dir("kea-run")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o750
    );
    pod.check_alive().unwrap();
    pod.stop();
}

#[test]
fn pod_runner_dhcp_client_gets_a_lease_and_its_name_through_ddns() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner(dir.path(), VALUES);
    start(&mut pod);
    let addr = lease_with_ddns(&pod);
    let l = leases(&pod);
    assert_eq!(l.len(), 1, "leases: {l:?}");
    assert_eq!(l[0]["ip-address"], addr.as_str());
    assert_eq!(l[0]["hostname"], "laptop.home.arpa");
    let knot_log = pod.logs("knot-auth");
    assert!(
        knot_log.contains("[home.arpa.] DDNS, processing"),
        "no dynamic update in knot-auth's log:\n{knot_log}"
    );
    // Knot accepts updates only when signed with the chart's TSIG key: an unsigned one from
    // the same address is refused, so Kea's went through signed.
    let mut nsupdate = pod.pod_net_cmd(KNSUPDATE);
    let mut child = nsupdate
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knsupdate");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"server 127.0.0.1 53\nzone home.arpa.\nupdate add evil.home.arpa. 60 A 192.168.1.66\nsend\n",
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an unsigned update was accepted");
    assert!(dig(&pod, "evil.home.arpa", "A").is_empty());
    pod.check_alive().unwrap();
}

#[test]
fn pod_runner_backup_then_restore_through_the_volumes_brings_back_zones_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner(dir.path(), VALUES);
    start(&mut pod);
    let addr = lease_with_ddns(&pod);

    // Kea's DDNS adds DHCID records beside A and PTR (a type NLnet Labs `domain` cannot parse in
    // presentation form): the backup must carry them, and the restore bring them back.
    let dhcid_fwd = dhcid_owners(&pod, "home.arpa");
    let dhcid_rev = dhcid_owners(&pod, "1.168.192.in-addr.arpa");
    assert!(!dhcid_fwd.is_empty() && !dhcid_rev.is_empty());

    // Back up inside the pod, as `kubectl exec` would: zones in knot-auth, leases in kea-dhcp4.
    pod.exec_ok(
        "knot-auth",
        &[
            POD_DNSDHCP,
            "backup",
            "zones",
            "--local",
            "-b",
            "/tmp/backup",
        ],
    )
    .unwrap();
    pod.exec_ok(
        "kea-dhcp4",
        &[
            POD_DNSDHCP,
            "backup",
            "leases",
            "--local",
            "-b",
            "/tmp/backup",
        ],
    )
    .unwrap();
    let saved = dir.path().join("backups");
    fs::create_dir_all(&saved).unwrap();
    fs::copy(
        pod.empty_dir("tmp-knot").join("backup/zones.tar.gz"),
        saved.join("zones.tar.gz"),
    )
    .unwrap();
    fs::copy(
        pod.empty_dir("tmp-kea").join("backup/kea-leases.tar.gz"),
        saved.join("kea-leases.tar.gz"),
    )
    .unwrap();
    pod.stop();

    // Destroy: empty both PVCs; the pod comes back with nothing but the initial zones.
    for pvc in ["zones", "leases"] {
        for e in fs::read_dir(pod.pvc_dir(pvc)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                fs::remove_dir_all(&p).unwrap();
            } else {
                fs::remove_file(&p).unwrap();
            }
        }
    }
    start(&mut pod);
    assert!(dig(&pod, "laptop.home.arpa", "A").is_empty());
    assert!(leases(&pod).is_empty());
    assert_eq!(dig(&pod, "router.home.arpa", "A"), ["192.168.1.1"]);
    pod.stop();

    // Restore the original design's way: the archives into the volumes, then a pod restart.
    let zones_archive = pod.pvc_dir("zones").join("zones/zones.tar.gz");
    let leases_archive = pod.pvc_dir("leases").join("kea-leases.tar.gz");
    fs::copy(saved.join("zones.tar.gz"), &zones_archive).unwrap();
    fs::copy(saved.join("kea-leases.tar.gz"), &leases_archive).unwrap();
    // The archives are mode 0600; zones.tar.gz is read by post-start in knot-auth (uid 53), so it
    // is put there as that container's user would write it (owner of the zone directory, which
    // init-zones created).
    let zones_dir = fs::metadata(pod.pvc_dir("zones").join("zones")).unwrap();
    std::os::unix::fs::chown(
        &zones_archive,
        Some(std::os::unix::fs::MetadataExt::uid(&zones_dir)),
        Some(std::os::unix::fs::MetadataExt::gid(&zones_dir)),
    )
    .unwrap();
    start(&mut pod);
    assert_eq!(
        dig(&pod, "laptop.home.arpa", "A"),
        [addr.as_str()],
        "post-start:\n{}\nknot-auth:\n{}",
        pod.post_start_output("knot-auth"),
        pod.logs("knot-auth")
    );
    let octets: Vec<&str> = addr.split('.').collect();
    let ptr = format!(
        "{}.{}.{}.{}.in-addr.arpa",
        octets[3], octets[2], octets[1], octets[0]
    );
    assert_eq!(dig(&pod, &ptr, "PTR"), ["laptop.home.arpa."]);
    assert_eq!(dig(&pod, "router.home.arpa", "A"), ["192.168.1.1"]);
    assert_eq!(dhcid_owners(&pod, "home.arpa"), dhcid_fwd);
    assert_eq!(dhcid_owners(&pod, "1.168.192.in-addr.arpa"), dhcid_rev);
    let l = leases(&pod);
    assert_eq!(l.len(), 1, "leases after the restore: {l:?}");
    assert_eq!(l[0]["ip-address"], addr.as_str());
    assert_eq!(l[0]["hostname"], "laptop.home.arpa");
    // Both archives were consumed, so another restart does not apply them again.
    assert!(!zones_archive.exists(), "zones.tar.gz left in the volume");
    assert!(
        !leases_archive.exists(),
        "kea-leases.tar.gz left in the volume"
    );
    let hook = pod.post_start_output("knot-auth");
    assert!(hook.contains("zones restored"), "post-start:\n{hook}");
    let init = pod.logs("init-kea-leases");
    assert!(
        init.contains("restored 1 lease(s)"),
        "init-kea-leases:\n{init}"
    );
    pod.check_alive().unwrap();
}

#[test]
fn pod_runner_edited_static_records_add_and_remove_exactly_those_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner(dir.path(), VALUES);
    start(&mut pod);
    // A record nobody declared (as an operator would add by hand): never touched.
    knotc(&pod, &["zone-begin", "home.arpa"]);
    knotc(
        &pod,
        &[
            "zone-set",
            "home.arpa",
            "manual",
            "600",
            "A",
            "192.168.1.77",
        ],
    );
    knotc(&pod, &["zone-commit", "home.arpa"]);
    let fwd_before = zone_records(&pod, "home.arpa");
    let rev_before = zone_records(&pod, "1.168.192.in-addr.arpa");
    pod.stop();

    // nas and printer removed, scanner and a TXT added, the rest unchanged.
    let edited = VALUES
        .replace(
            "  - name: nas\n    type: AAAA\n    ttl: 300\n    data: fd00::10\n",
            "",
        )
        .replace(
            "  - \"printer IN A 192.168.1.30\"\n",
            "  - \"scanner IN A 192.168.1.31\"\n  - '@ IN TXT \"hello\"'\n",
        );
    assert_ne!(edited, VALUES);
    pod.set_manifests(&render(dir.path(), &edited));
    start(&mut pod);
    let fwd_after = zone_records(&pod, "home.arpa");
    let rev_after = zone_records(&pod, "1.168.192.in-addr.arpa");

    let diff = |before: &BTreeSet<String>, after: &BTreeSet<String>| {
        let removed: Vec<String> = before.difference(after).cloned().collect();
        let added: Vec<String> = after.difference(before).cloned().collect();
        (removed, added)
    };
    let (removed, added) = diff(&fwd_before, &fwd_after);
    let names = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                // "[zone] owner ttl type rdata..." -> "owner type rdata"
                let rest = if w[0].starts_with('[') {
                    &w[1..]
                } else {
                    &w[..]
                };
                format!("{} {} {}", rest[0], rest[2], rest[3..].join(" "))
            })
            .collect()
    };
    assert_eq!(
        names(&removed),
        [
            "nas.home.arpa. AAAA fd00::10",
            "printer.home.arpa. A 192.168.1.30"
        ],
        "forward zone before {fwd_before:#?}\nafter {fwd_after:#?}"
    );
    assert_eq!(
        names(&added),
        [
            "home.arpa. TXT \"hello\"",
            "scanner.home.arpa. A 192.168.1.31"
        ],
        "forward zone before {fwd_before:#?}\nafter {fwd_after:#?}"
    );
    let (removed, added) = diff(&rev_before, &rev_after);
    assert_eq!(
        names(&removed),
        ["30.1.168.192.in-addr.arpa. PTR printer.home.arpa."]
    );
    assert_eq!(
        names(&added),
        ["31.1.168.192.in-addr.arpa. PTR scanner.home.arpa."]
    );
    assert!(
        fwd_after
            .iter()
            .any(|l| l.contains("manual.home.arpa.") && l.contains("192.168.1.77"))
    );
    assert_eq!(dig(&pod, "scanner.home.arpa", "A"), ["192.168.1.31"]);
    assert!(dig(&pod, "printer.home.arpa", "A").is_empty());
    pod.check_alive().unwrap();
}

#[test]
fn pod_runner_reports_a_failed_post_start_hook_and_stops_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner_from(&render_with(
        dir.path(),
        VALUES,
        &["postStart.timeoutSeconds=2"],
    ));
    // A zone file Knot cannot load, in the zones volume before the first start: init-zones
    // never overwrites it, so post-start waits for the zone in vain and fails.
    let zones = pod.pvc_dir("zones").join("zones");
    fs::create_dir_all(&zones).unwrap();
    fs::write(zones.join("home.arpa.zone"), "this is not a zone file\n").unwrap();
    let err = pod
        .start()
        .expect_err("the pod started with a zone Knot cannot load");
    assert!(err.0.contains("FailedPostStartHook"), "{err}");
    assert!(err.0.contains("not loaded: home.arpa."), "{err}");
    assert!(!pod.is_running());
    // The volume is kept, as a PVC is: the init container left the broken file alone.
    assert_eq!(
        fs::read_to_string(zones.join("home.arpa.zone")).unwrap(),
        "this is not a zone file\n"
    );
}

/// The static records with one that cannot be merged (validated only in the pod).
const BAD_VALUES: &str = r#"
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
staticRecords:
  - "router IN A 192.168.1.1"
  - "foo IN A not-an-ip"
"#;

#[test]
fn pod_runner_a_failed_merge_keeps_knot_unready_under_fail_while_kea_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner_from(&render_with(
        dir.path(),
        BAD_VALUES,
        &["postStart.onMergeError=fail"],
    ));
    pod.set_ready_timeout(Duration::from_secs(8));
    let err = pod
        .start()
        .expect_err("the pod became Ready with static records that cannot merge");
    // The containers are probed in order: kea-dhcp-ddns and kea-dhcp4 answered status-get,
    // knot-auth (last, after its hook) is the one that is not ready, and says why.
    assert!(err.0.contains("container knot-auth not ready"), "{err}");
    assert!(err.0.contains("static records NOT merged"), "{err}");
    assert!(err.0.contains("not-an-ip"), "{err}");
    assert!(err.0.contains("onMergeError"), "{err}");
}

#[test]
fn pod_runner_a_failed_merge_is_only_logged_under_warn_and_the_zones_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = runner_from(&render_with(
        dir.path(),
        BAD_VALUES,
        &["postStart.onMergeError=warn"],
    ));
    start(&mut pod);
    let hook = pod.post_start_output("knot-auth");
    assert!(
        hook.contains("error: static records NOT merged"),
        "post-start output:\n{hook}"
    );
    // Nothing merged (one transaction per zone, validated first), the zone is served.
    assert!(dig(&pod, "router.home.arpa", "A").is_empty());
    assert_eq!(dig(&pod, "home.arpa", "NS"), ["ns.home.arpa."]);
    let kea = pod
        .exec_ok("kea-dhcp4", &[POD_DNSDHCP, "pod", "probe", "kea-dhcp4"])
        .unwrap();
    assert!(kea.contains("kea-dhcp4 answers status-get"), "{kea}");
    pod.check_alive().unwrap();
    pod.stop();
}

/// The shell script of the `helm test` pod's `dns` container, asking `server` instead of the
/// DNS Service's name (the runner has no Services).
fn helm_test_dns_script(rendered: &str, server: &str) -> String {
    let docs = test_support::pod::parse_manifests(rendered);
    let pod = docs
        .iter()
        .find(|d| d["kind"] == "Pod" && d["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .expect("the chart renders a helm test pod");
    let dns = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dns")
        .expect("its dns container");
    let script = dns["command"][2].as_str().unwrap();
    let at = script.find('@').expect("kdig @server");
    let end = at + script[at..].find(' ').unwrap();
    format!("{}@{server}{}", &script[..at], &script[end..])
}

#[test]
fn pod_runner_the_helm_test_query_passes_with_the_merged_records_and_fails_without() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = render(dir.path(), VALUES);
    let mut pod = runner_from(&rendered);
    start(&mut pod);
    let server = pod.network().pod_ip().to_string();
    let run = |pod: &PodRunner, script: &str| {
        pod.client_cmd("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("sh")
    };
    // The first static record, `router IN A 192.168.1.1`, asked from the client's side.
    let script = helm_test_dns_script(&rendered, &server);
    assert!(script.contains("\"router.home.arpa.\" A"), "{script}");
    let out = run(&pod, &script);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pod.stop();

    // The same records not merged (warn): the query gets no answer and the test fails.
    let bad = render_with(dir.path(), BAD_VALUES, &["postStart.onMergeError=warn"]);
    let mut pod = runner_from(&bad);
    start(&mut pod);
    let out = run(&pod, &helm_test_dns_script(&bad, &server));
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("router.home.arpa. A: no answer"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    pod.stop();
}
