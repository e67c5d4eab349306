//! A real `knotd` in a temporary directory.
//!
//! [`KnotServer`] writes its own configuration, zone files, storage directory and control socket
//! into a fresh temporary directory, listens for DNS on a free 127.0.0.1 port, waits until the
//! control socket answers and every zone is loaded, and stops the daemon when dropped.
//!
//! The daemon is the host's (Knot 3.2) or Debian 13's (Knot 3.4, chrooted into the trixie
//! root), see [`crate::daemons`]; [`KnotServer::knotc`] runs the same variant's knotc.
//!
//! Knot 3.2 serves **one control connection at a time**: while a test holds an idle client
//! connection, `knotc` (and any other client) waits until knotd's control timeout (30 s here)
//! drops the idle one. Close or drop clients before running [`KnotServer::knotc`].
//!
//! ```no_run
//! use test_support::knot::KnotServer;
//! let knot = KnotServer::start(&[("example.test", test_support::knot::MINIMAL_ZONE)]);
//! let out = knot.knotc_ok(&["zone-status", "example.test"]);
//! assert!(out.contains("serial"));
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::daemons::Daemons;

/// Path of the daemon; Debian's `knot` package installs it here.
pub const KNOTD: &str = "/usr/sbin/knotd";
/// Path of the control client; Debian's `knot` package installs it here.
pub const KNOTC: &str = "/usr/sbin/knotc";
/// Path of the DNS lookup tool; Debian's `knot-dnsutils` package installs it here.
pub const KDIG: &str = "/usr/bin/kdig";

/// A small valid zone (origin `example.test.` implied by the file name): SOA, NS and one A record.
/// Zone text is written with `$ORIGIN` set to the zone, so relative names work.
pub const MINIMAL_ZONE: &str = "\
$TTL 3600
@   IN SOA ns1 hostmaster 1 3600 900 604800 300
@   IN NS  ns1
ns1 IN A   192.0.2.1
";

/// How long to wait for knotd to answer and to load its zones.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Builder for [`KnotServer`]: zones, the control timeout and extra configuration.
#[derive(Debug, Clone)]
pub struct KnotServerBuilder {
    zones: Vec<(String, String)>,
    control_timeout: u32,
    semantic_checks: bool,
    extra_config: String,
    template_options: Vec<(String, String)>,
    wait_for_zones: bool,
    create_storage: bool,
    daemons: Daemons,
}

impl Default for KnotServerBuilder {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            control_timeout: 30,
            semantic_checks: true,
            extra_config: String::new(),
            template_options: Vec::new(),
            wait_for_zones: true,
            create_storage: true,
            daemons: Daemons::from_env(),
        }
    }
}

impl KnotServerBuilder {
    /// Adds a zone `name` whose zone file holds `text` (origin = the zone name; `.` is the root
    /// zone).
    pub fn zone(mut self, name: &str, text: &str) -> Self {
        self.zones.push((zone_key(name), text.to_owned()));
        self
    }

    /// Adds a zone that is configured but has no zone file (knotd serves nothing for it).
    pub fn zone_without_file(mut self, name: &str) -> Self {
        self.zones.push((zone_key(name), String::new()));
        self
    }

    /// Sets `control.timeout` in seconds (default 30; knotd's own default is 5).
    pub fn control_timeout(mut self, seconds: u32) -> Self {
        self.control_timeout = seconds;
        self
    }

    /// Turns the template's `semantic-checks` on (default) or off.
    pub fn semantic_checks(mut self, on: bool) -> Self {
        self.semantic_checks = on;
        self
    }

    /// Adds `key: value` to the default template (e.g. `zonefile-sync`, `-1`), which every
    /// zone uses.
    pub fn template_option(mut self, key: &str, value: &str) -> Self {
        self.template_options
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// The chart's settings for every zone and the control socket, read from its
    /// `values.yaml` (`knot.zonefileSync`, `zonefileLoad`, `journalContent`, `journalMaxUsage`,
    /// `controlTimeout`), as `templates/configmap-knot.yaml` renders them into knot.conf.
    pub fn chart_settings(self) -> Self {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/unified-dns-dhcp/values.yaml");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let values: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        let knot = &values["knot"];
        let value = |key: &str| match &knot[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => panic!("knot.{key} in {}: {other}", path.display()),
        };
        let timeout = value("controlTimeout")
            .parse()
            .expect("knot.controlTimeout is a number");
        self.control_timeout(timeout)
            .template_option("zonefile-sync", &value("zonefileSync"))
            .template_option("zonefile-load", &value("zonefileLoad"))
            .template_option("journal-content", &value("journalContent"))
            .template_option("journal-max-usage", &value("journalMaxUsage"))
    }

    /// Appends raw YAML to the generated `knot.conf` (new top-level sections only).
    pub fn extra_config(mut self, yaml: &str) -> Self {
        self.extra_config.push_str(yaml);
        self.extra_config.push('\n');
        self
    }

    /// Whether `start` also waits until every zone with a file is loaded (default true).
    pub fn wait_for_zones(mut self, wait: bool) -> Self {
        self.wait_for_zones = wait;
        self
    }

    /// Which knotd runs: the host's or trixie's (default: `DNSDHCP_TEST_DAEMONS`).
    pub fn daemons(mut self, daemons: Daemons) -> Self {
        self.daemons = daemons;
        self
    }

    /// Whether the fixture creates `database.storage` before starting knotd (default true).
    /// Knot 3.2 creates it itself; Knot 3.4 does not, and its first zone-commit then fails.
    pub fn create_storage_dir(mut self, create: bool) -> Self {
        self.create_storage = create;
        self
    }

    /// knot.conf: the server on 127.0.0.1@`port`, the control socket, the default template
    /// (with its options) and the zones, then the extra configuration.
    fn knot_conf(
        &self,
        run_dir: &Path,
        zones_dir: &Path,
        storage_dir: &Path,
        socket: &Path,
        port: u16,
    ) -> String {
        let mut conf = String::new();
        writeln!(conf, "server:\n  rundir: \"{}\"", run_dir.display()).unwrap();
        writeln!(conf, "  listen: 127.0.0.1@{port}").unwrap();
        writeln!(
            conf,
            "control:\n  listen: \"{}\"\n  timeout: {}",
            socket.display(),
            self.control_timeout
        )
        .unwrap();
        writeln!(conf, "log:\n  - target: stderr\n    any: info").unwrap();
        writeln!(conf, "database:\n  storage: \"{}\"", storage_dir.display()).unwrap();
        writeln!(
            conf,
            "template:\n  - id: default\n    storage: \"{}\"\n    file: \"%s.zone\"\n    semantic-checks: {}",
            zones_dir.display(),
            if self.semantic_checks { "on" } else { "off" }
        )
        .unwrap();
        for (key, value) in &self.template_options {
            writeln!(conf, "    {key}: {value}").unwrap();
        }
        if !self.zones.is_empty() {
            writeln!(conf, "zone:").unwrap();
            for (name, _) in &self.zones {
                writeln!(conf, "  - domain: \"{}\"", fqdn(name)).unwrap();
            }
        }
        conf.push_str(&self.extra_config);
        conf
    }

    /// The zone files of the zones given with text, in `zones_dir`.
    fn write_zone_files(&self, zones_dir: &Path) {
        for (name, text) in &self.zones {
            if !text.is_empty() {
                let body = format!("$ORIGIN {}\n{text}", fqdn(name));
                fs::write(zones_dir.join(zone_file_name(name)), body).expect("write zone file");
            }
        }
    }

    /// Writes the directory layout and configuration, starts knotd and waits until it answers.
    ///
    /// Panics (naming the Debian packages `knot` and `knot-dnsutils`) if knotd is not installed,
    /// and with knotd's log if it does not come up.
    pub fn start(self) -> KnotServer {
        require_knot_of(self.daemons);
        let dir = tempfile::Builder::new()
            .prefix("knotd-")
            .tempdir()
            .expect("create temp dir for knotd");
        let root = dir.path().to_path_buf();
        let run_dir = root.join("run");
        let zones_dir = root.join("zones");
        let storage_dir = root.join("storage");
        for d in [&run_dir, &zones_dir, &storage_dir] {
            if self.create_storage || d != &storage_dir {
                fs::create_dir_all(d).expect("create knotd dir");
            }
        }
        let socket = run_dir.join("knot.sock");
        let port = free_port();
        let conf = self.knot_conf(&run_dir, &zones_dir, &storage_dir, &socket, port);
        self.write_zone_files(&zones_dir);
        let conf_path = root.join("knot.conf");
        fs::write(&conf_path, &conf).expect("write knot.conf");
        let log_path = root.join("knotd.log");
        let log = fs::File::create(&log_path).expect("create knotd.log");
        let child = self
            .daemons
            .daemon_command(KNOTD, &[&root])
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {KNOTD}: {e}"));
        let mut server = KnotServer {
            dir,
            child: Some(child),
            port,
            socket,
            conf_path,
            log_path,
            zones_dir,
            storage_dir,
            run_dir,
            daemons: self.daemons,
        };
        server.wait_until_answering();
        if self.wait_for_zones {
            for (name, text) in &self.zones {
                if !text.is_empty() {
                    server.wait_for_zone(name);
                }
            }
        }
        server
    }
}

/// `name` with its final dot.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// A running knotd in its own temporary directory. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct KnotServer {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    socket: PathBuf,
    conf_path: PathBuf,
    log_path: PathBuf,
    zones_dir: PathBuf,
    storage_dir: PathBuf,
    run_dir: PathBuf,
    daemons: Daemons,
}

impl KnotServer {
    /// Starts knotd serving `zones` (name, zone-file text) with the default settings.
    pub fn start(zones: &[(&str, &str)]) -> KnotServer {
        let mut b = KnotServer::builder();
        for (name, text) in zones {
            b = b.zone(name, text);
        }
        b.start()
    }

    /// A builder for non-default settings (control timeout, extra config, empty zones).
    pub fn builder() -> KnotServerBuilder {
        KnotServerBuilder::default()
    }

    /// Which knotd runs (host or trixie).
    pub fn daemons(&self) -> Daemons {
        self.daemons
    }

    /// The first line of `knotd -V` of the running variant, e.g. `knotd (Knot DNS), version 3.2.6`.
    pub fn knotd_version_line(&self) -> String {
        let out = self
            .daemons
            .client_command(KNOTD)
            .arg("-V")
            .output()
            .expect("knotd -V");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// A `knotc -s SOCKET` command of the running variant (trixie's through its loader), for
    /// callers that need a [`Command`] (e.g. to spawn it).
    pub fn knotc_command(&self) -> Command {
        let mut c = self.daemons.client_command(KNOTC);
        c.arg("-s").arg(&self.socket);
        c
    }

    /// A `kdig` command of the running variant (`/usr/bin/kdig`, Debian's `knot-dnsutils`).
    pub fn kdig_command(&self) -> Command {
        self.daemons.client_command(KDIG)
    }

    /// The control socket (absolute path).
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The UDP/TCP port knotd listens on at 127.0.0.1.
    pub fn dns_port(&self) -> u16 {
        self.port
    }

    /// The temporary root directory (holds knot.conf, knotd.log and the dirs below).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Directory holding the zone files (`<zone>.zone`, no trailing dot).
    pub fn zones_dir(&self) -> &Path {
        &self.zones_dir
    }

    /// The zone file path of `zone`.
    pub fn zone_file(&self, zone: &str) -> PathBuf {
        self.zones_dir.join(zone_file_name(zone))
    }

    /// knotd's `database.storage` directory (journal, timers, kaspdb).
    pub fn storage_dir(&self) -> &Path {
        &self.storage_dir
    }

    /// knotd's `server.rundir`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The generated configuration file.
    pub fn conf_path(&self) -> &Path {
        &self.conf_path
    }

    /// knotd's stdout+stderr so far (semantic-check details only appear here).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Runs `knotc -s SOCKET ARGS...` and returns its output (whatever the exit status).
    pub fn knotc(&self, args: &[&str]) -> Output {
        self.knotc_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {KNOTC}: {e}"))
    }

    /// Runs knotc like [`KnotServer::knotc`], panics unless it exits 0, returns its stdout.
    pub fn knotc_ok(&self, args: &[&str]) -> String {
        let out = self.knotc(args);
        assert!(
            out.status.success(),
            "knotc {args:?} failed ({}): stdout={} stderr={}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Asks knotd to stop (SIGTERM) and waits up to 10 s, then kills it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills knotd at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until `zone` is loaded (zone-status shows a serial) and no zone event is running,
    /// panicking with the log after 60 s.
    pub fn wait_for_zone(&mut self, zone: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Loaded (a serial) and the load event finished: a blocking zone-reload sent while
            // the start-up load event still runs returns without reloading (knotd 3.2.6).
            let out = self.knotc(&["zone-status", zone]);
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success()
                && text.contains("serial: ")
                && !text.contains("serial: -")
                && !text.contains("running")
            {
                return;
            }
            self.check_alive_before(deadline, &format!("zone {zone} to load"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if probe_status(&self.socket) {
                return;
            }
            self.check_alive_before(deadline, "the control socket to answer");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn check_alive_before(&mut self, deadline: Instant, what: &str) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            panic!(
                "knotd exited ({status}) while waiting for {what}; log:\n{}\nconfig:\n{}",
                self.log(),
                fs::read_to_string(&self.conf_path).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let log = self.log();
            self.kill();
            panic!("knotd: timed out waiting for {what}; log:\n{log}");
        }
    }
}

impl Drop for KnotServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A zone name without its trailing dot, the root zone as `.`.
fn zone_key(name: &str) -> String {
    match name.trim_end_matches('.') {
        "" => ".".to_owned(),
        n => n.to_owned(),
    }
}

/// The file Knot's `file: "%s.zone"` names for `zone`: the name without its trailing dot (empty
/// for the root zone), lower case, `/` (also written `\047`) replaced by `_`.
pub fn zone_file_name(zone: &str) -> String {
    let stem = zone
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .replace("\\047", "/")
        .replace('/', "_");
    format!("{stem}.zone")
}

/// Panics with install instructions unless knotd and knotc of the variant chosen by
/// `DNSDHCP_TEST_DAEMONS` exist.
pub fn require_knot() {
    require_knot_of(Daemons::from_env());
}

/// Panics with install instructions unless knotd and knotc of `daemons` exist.
pub fn require_knot_of(daemons: Daemons) {
    daemons.require(KNOTD, "knot");
    daemons.require(KNOTC, "knot");
}

/// Sends a raw `status` request (DATA{COMMAND=status} BLOCK) and waits for the reply's BLOCK.
/// Written with raw bytes so test-support does not depend on knot-ctl.
fn probe_status(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut req = vec![0x01, 0x10, 0x00, 0x06];
    req.extend_from_slice(b"status");
    req.push(0x03);
    if s.write_all(&req).is_err() {
        return false;
    }
    // The empty reply is a single BLOCK byte; a DATA unit would come first otherwise.
    let mut byte = [0u8; 1];
    let ok = loop {
        match s.read(&mut byte) {
            Ok(1) if byte[0] == 0x03 => break true,
            Ok(1) => continue,
            _ => break false,
        }
    };
    let _ = s.write_all(&[0x00]);
    ok
}

/// Finds a port on 127.0.0.1 that is free for both TCP and UDP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free 127.0.0.1 port for both TCP and UDP");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let mut knot = KnotServer::start(&[("example.test", MINIMAL_ZONE)]);
        assert!(knot.socket_path().exists());
        let out = knot.knotc_ok(&["zone-read", "example.test", "ns1", "A"]);
        assert!(out.contains("192.0.2.1"), "{out}");
        assert!(knot.is_running());
        knot.stop();
        assert!(!knot.is_running());
    }
}
