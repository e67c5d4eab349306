//! A real `kea-dhcp4` in a temporary directory.
//!
//! [`KeaConfig`] builds a DHCPv4 configuration (memfile lease file with a chosen `lfc-interval`,
//! a UNIX control socket, the `lease_cmds` hook, subnets, interfaces); [`KeaServer::start`] writes
//! it into a fresh temporary directory (or a directory you give), starts `/usr/sbin/kea-dhcp4`
//! with `KEA_PIDFILE_DIR` / `KEA_LOCKFILE_DIR` pointing there, waits until the control socket
//! answers, and stops the daemon when dropped.
//!
//! The daemon is the host's (Kea 2.2) or Debian 13's (Kea 2.6, chrooted into the trixie root):
//! see [`crate::daemons`]. For 2.6 the fixture also sets `KEA_CONTROL_SOCKET_DIR`,
//! `KEA_DHCP_DATA_DIR` and `KEA_LOG_FILE_DIR` to that directory and makes it mode 0750, which
//! 2.6.3 requires of a control socket's directory; the hook path is absolute under the hooks
//! directory on both.
//!
//! With no interfaces configured (the default) Kea serves no DHCP at all: only the control
//! channel. To hand out real leases, run it inside the server namespace of a
//! [`NetnsPair`](crate::netns::NetnsPair) on the veth interface (raw sockets), never on a host
//! interface:
//!
//! ```no_run
//! use test_support::{kea::{KeaConfig, KeaServer}, netns::NetnsPair};
//! let pair = NetnsPair::new();
//! let kea = KeaServer::start(KeaConfig::for_netns(&pair).lfc_interval(0));
//! pair.perfdhcp(50);
//! let reply = kea.command(r#"{"command": "lease4-get-all"}"#);
//! assert!(reply.contains("\"result\": 0"));
//! ```

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::daemons::Daemons;
use crate::netns::{IP, NetnsPair};

/// Path of the daemon; Debian's `kea-dhcp4-server` package installs it here.
pub const KEA_DHCP4: &str = "/usr/sbin/kea-dhcp4";
/// Path of the lease file cleanup program (Debian's `kea-common`, pulled in by the server).
pub const KEA_LFC: &str = "/usr/sbin/kea-lfc";
/// The lease commands hook library (Debian's `kea-common`).
pub const LEASE_CMDS_HOOK: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so";

/// How long to wait for Kea's control socket to answer, unless configured otherwise.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One `subnet4` entry.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Subnet identifier.
    pub id: u32,
    /// Prefix, e.g. `10.77.0.0/16`.
    pub prefix: String,
    /// Pools, e.g. `10.77.1.0 - 10.77.255.254`.
    pub pools: Vec<String>,
    /// Relay addresses that select this subnet (for relayed traffic from another network).
    pub relay_addresses: Vec<String>,
}

/// Builder for a `kea-dhcp4` configuration.
#[derive(Debug, Clone)]
pub struct KeaConfig {
    interfaces: Vec<String>,
    socket_type: String,
    subnets: Vec<Subnet>,
    lfc_interval: u32,
    valid_lifetime: u32,
    lease_cmds: bool,
    netns: Option<String>,
    data_dir: Option<PathBuf>,
    extra_dhcp4: Vec<(String, String)>,
    daemons: Daemons,
    start_timeout: Duration,
}

impl Default for KeaConfig {
    /// No interfaces (no DHCP served), one subnet 10.77.0.0/16 with pool 10.77.1.0–10.77.255.254,
    /// `lfc-interval` 0 (no automatic LFC), valid lifetime 4000 s, `lease_cmds` loaded.
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            socket_type: "raw".into(),
            subnets: vec![Subnet {
                id: 1,
                prefix: "10.77.0.0/16".into(),
                pools: vec!["10.77.1.0 - 10.77.255.254".into()],
                relay_addresses: Vec::new(),
            }],
            lfc_interval: 0,
            valid_lifetime: 4000,
            lease_cmds: true,
            netns: None,
            data_dir: None,
            extra_dhcp4: Vec::new(),
            daemons: Daemons::from_env(),
            start_timeout: START_TIMEOUT,
        }
    }
}

impl KeaConfig {
    /// The default configuration (control channel only, see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves DHCP on the server end of `pair`, inside its server namespace, with raw sockets.
    pub fn for_netns(pair: &NetnsPair) -> Self {
        Self::default()
            .netns(&pair.server_ns)
            .interface(&pair.server_if)
    }

    /// Adds an interface Kea listens on. Only use interfaces inside a test namespace.
    pub fn interface(mut self, name: &str) -> Self {
        self.interfaces.push(name.into());
        self
    }

    /// `dhcp-socket-type`: `raw` (default) or `udp`.
    pub fn socket_type(mut self, t: &str) -> Self {
        self.socket_type = t.into();
        self
    }

    /// Replaces the subnets.
    pub fn subnets(mut self, subnets: Vec<Subnet>) -> Self {
        self.subnets = subnets;
        self
    }

    /// `lfc-interval` in seconds (0 = never run LFC automatically).
    pub fn lfc_interval(mut self, secs: u32) -> Self {
        self.lfc_interval = secs;
        self
    }

    /// `valid-lifetime` in seconds.
    pub fn valid_lifetime(mut self, secs: u32) -> Self {
        self.valid_lifetime = secs;
        self
    }

    /// Whether to load the `lease_cmds` hook (default yes).
    pub fn lease_cmds(mut self, on: bool) -> Self {
        self.lease_cmds = on;
        self
    }

    /// Runs Kea inside network namespace `ns` (`ip netns exec`).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// How long [`KeaServer::start`] waits for the control socket (default 90 s); loading a
    /// million leases on a busy machine takes longer.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Uses `dir` (kept afterwards) for the config, lease file, socket and logs instead of a
    /// fresh temporary directory, e.g. to restart Kea on the same lease files.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Adds a raw JSON member to the `Dhcp4` map, e.g. `("hold-reclaimed-time", "5")`.
    pub fn dhcp4_member(mut self, key: &str, json: &str) -> Self {
        self.extra_dhcp4.push((key.into(), json.into()));
        self
    }

    /// Which kea-dhcp4 runs: the host's or trixie's (default: `DNSDHCP_TEST_DAEMONS`).
    pub fn daemons(mut self, daemons: Daemons) -> Self {
        self.daemons = daemons;
        self
    }

    /// The daemons this configuration runs.
    pub fn daemons_variant(&self) -> Daemons {
        self.daemons
    }

    /// The configuration file text for a daemon whose files live in `dir`.
    pub fn render(&self, dir: &Path) -> String {
        let q = |s: &str| serde_json_string(s);
        let interfaces: Vec<String> = self.interfaces.iter().map(|i| q(i)).collect();
        let subnets: Vec<String> = self
            .subnets
            .iter()
            .map(|s| {
                let pools: Vec<String> = s
                    .pools
                    .iter()
                    .map(|p| format!("{{\"pool\": {}}}", q(p)))
                    .collect();
                let relay = if s.relay_addresses.is_empty() {
                    String::new()
                } else {
                    let a: Vec<String> = s.relay_addresses.iter().map(|a| q(a)).collect();
                    format!(", \"relay\": {{\"ip-addresses\": [{}]}}", a.join(", "))
                };
                format!(
                    "{{\"id\": {}, \"subnet\": {}, \"pools\": [{}]{relay}}}",
                    s.id,
                    q(&s.prefix),
                    pools.join(", ")
                )
            })
            .collect();
        let hooks = if self.lease_cmds {
            format!("[{{\"library\": {}}}]", q(LEASE_CMDS_HOOK))
        } else {
            "[]".into()
        };
        let mut extra = String::new();
        for (k, v) in &self.extra_dhcp4 {
            extra.push_str(&format!(",\n    {}: {v}", q(k)));
        }
        let d = |name: &str| q(&dir.join(name).to_string_lossy());
        format!(
            r#"{{
  "Dhcp4": {{
    "interfaces-config": {{"interfaces": [{interfaces}], "dhcp-socket-type": {socket}}},
    "control-socket": {{"socket-type": "unix", "socket-name": {sock}}},
    "lease-database": {{"type": "memfile", "persist": true, "name": {leases}, "lfc-interval": {lfc}}},
    "hooks-libraries": {hooks},
    "valid-lifetime": {valid},
    "subnet4": [{subnets}],
    "loggers": [{{"name": "kea-dhcp4", "severity": "INFO", "output_options": [{{"output": {log}}}]}}]{extra}
  }}
}}
"#,
            interfaces = interfaces.join(", "),
            socket = q(&self.socket_type),
            sock = d("kea4-ctrl.sock"),
            leases = d("kea-leases4.csv"),
            lfc = self.lfc_interval,
            valid = self.valid_lifetime,
            subnets = subnets.join(", "),
            log = d("kea-dhcp4.log"),
        )
    }
}

/// A JSON string literal for `s` (ASCII control characters and quotes escaped).
fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A running `kea-dhcp4`; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct KeaServer {
    _tmp: Option<TempDir>,
    dir: PathBuf,
    child: Option<Child>,
    config: KeaConfig,
}

/// Panics naming the package (or `scripts/trixie-root.sh`) if `kea-dhcp4` of the variant chosen
/// by `DNSDHCP_TEST_DAEMONS` is missing.
pub fn require_kea() {
    require_kea_of(Daemons::from_env());
}

/// Panics naming the package (or `scripts/trixie-root.sh`) if `kea-dhcp4` of `daemons` is missing.
pub fn require_kea_of(daemons: Daemons) {
    daemons.require(KEA_DHCP4, "kea-dhcp4-server");
    daemons.require(LEASE_CMDS_HOOK, "kea-dhcp4-server");
    daemons.require(KEA_LFC, "kea-dhcp4-server");
}

/// A `kea-lfc` command of the variant chosen by `DNSDHCP_TEST_DAEMONS` (trixie's runs chrooted
/// with the host's temporary directory at the same path, so tempdir paths work as arguments).
/// Add the arguments and `KEA_LOCKFILE_DIR` / `KEA_PIDFILE_DIR`.
pub fn lfc_command() -> Command {
    let daemons = Daemons::from_env();
    require_kea_of(daemons);
    daemons.daemon_command(KEA_LFC, &[])
}

impl KeaServer {
    /// Writes the configuration, starts the daemon and waits until its control socket answers
    /// `list-commands`. Panics (with the log) if it exits or does not answer in time.
    pub fn start(config: KeaConfig) -> Self {
        require_kea_of(config.daemons);
        let (tmp, dir) = match &config.data_dir {
            Some(d) => {
                fs::create_dir_all(d).expect("create Kea data dir");
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kea4-")
                    .tempdir()
                    .expect("tempdir");
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let mut server = Self {
            _tmp: tmp,
            dir,
            child: None,
            config,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        // Kea 2.6 refuses a control socket whose directory is not exactly mode 0750
        // ("does not exist or does not have permssions = 750"); a tempdir is 0700.
        if self.config.daemons.kea_2_6() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o750))
                .expect("chmod 0750 the Kea dir");
        }
        let conf = self.dir.join("kea-dhcp4.conf");
        fs::write(&conf, self.config.render(&self.dir)).expect("write Kea config");
        let _ = fs::remove_file(self.socket_path());
        let launcher = self
            .config
            .netns
            .as_deref()
            .map(|ns| [IP, "netns", "exec", ns]);
        let mut cmd = self.config.daemons.daemon_command_via(
            launcher.as_ref().map(|l| &l[..]),
            KEA_DHCP4,
            &[&self.dir],
        );
        let stderr = fs::File::create(self.dir.join("kea-dhcp4.stderr")).expect("stderr file");
        cmd.arg("-c")
            .arg(&conf)
            .env("KEA_PIDFILE_DIR", &self.dir)
            .env("KEA_LOCKFILE_DIR", &self.dir)
            // Kea 2.6 accepts a control socket and a lease file only in these directories
            // (defaults /run/kea and /var/lib/kea); 2.2 ignores them.
            .env("KEA_CONTROL_SOCKET_DIR", &self.dir)
            .env("KEA_DHCP_DATA_DIR", &self.dir)
            // And a log file only in this one (default /var/log/kea; 2.6.2+, not in newer-daemons.md).
            .env("KEA_LOG_FILE_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup"))
            .stderr(stderr);
        let child = cmd.spawn().expect("cannot start kea-dhcp4");
        self.child = Some(child);
        let deadline = Instant::now() + self.config.start_timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "kea-dhcp4 exited during start-up ({status}):\n{}",
                    self.logs()
                );
            }
            if let Ok(reply) = self.try_command(r#"{"command": "list-commands"}"#)
                && reply.contains("\"result\": 0")
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "kea-dhcp4 did not answer on its control socket:\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill on a PID we own and have not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stops and starts the daemon again on the same directory and configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Which kea-dhcp4 runs (host or trixie).
    pub fn daemons(&self) -> Daemons {
        self.config.daemons
    }

    /// The PID of the daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding config, lease files, socket, logs and PID files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The memfile lease file (`kea-leases4.csv`; LFC adds `.1`, `.2`, `.completed`, `.pid`).
    pub fn lease_file(&self) -> PathBuf {
        self.dir.join("kea-leases4.csv")
    }

    /// The control socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("kea4-ctrl.sock")
    }

    /// The configuration used.
    pub fn config(&self) -> &KeaConfig {
        &self.config
    }

    /// Kea's log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let log = fs::read_to_string(self.dir.join("kea-dhcp4.log")).unwrap_or_default();
        let err = fs::read_to_string(self.dir.join("kea-dhcp4.stderr")).unwrap_or_default();
        format!("--- kea-dhcp4.log ---\n{log}\n--- stderr ---\n{err}")
    }

    fn try_command(&self, json: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(self.socket_path())?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.write_all(json.as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Sends one raw JSON command on the control socket and returns the raw reply. Panics on
    /// I/O errors. (Tests of the control client use `kea_leases::control` instead.)
    pub fn command(&self, json: &str) -> String {
        self.try_command(json)
            .unwrap_or_else(|e| panic!("control socket: {e}\n{}", self.logs()))
    }
}

impl Drop for KeaServer {
    fn drop(&mut self) {
        self.stop();
    }
}
