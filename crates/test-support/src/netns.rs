//! Network namespaces (and veth pairs) created and removed by tests. Needs root.
//!
//! [`NetnsPair`] creates a server namespace and a client namespace joined by a veth pair
//! (server side `10.77.0.1/16`, client side `10.77.0.2/16`), so DHCP traffic never touches the
//! host's interfaces. Names are unique per pair, so tests can run in parallel; both namespaces
//! (and with them the veth pair) are removed on drop, also when a test panics.
//!
//! ```no_run
//! use test_support::netns::NetnsPair;
//! let pair = NetnsPair::new();
//! let out = pair.client_cmd("ip").args(["-4", "addr"]).output().unwrap();
//! assert!(String::from_utf8_lossy(&out.stdout).contains("10.77.0.2"));
//! ```

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Path of `ip` (Debian's `iproute2`).
pub const IP: &str = "/usr/sbin/ip";
/// Path of `perfdhcp` (Debian's `kea-admin`).
pub const PERFDHCP: &str = "/usr/sbin/perfdhcp";

/// Address (with prefix) of the server end of the veth pair.
pub const SERVER_ADDR: &str = "10.77.0.1/16";
/// Address (with prefix) of the client end of the veth pair.
pub const CLIENT_ADDR: &str = "10.77.0.2/16";
/// The subnet both ends are in.
pub const SUBNET: &str = "10.77.0.0/16";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Panics with a plain message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test needs root for network namespaces (run it as root, e.g. scripts/test.sh)"
        );
    }
}

/// Two network namespaces joined by a veth pair; removed on drop.
#[derive(Debug)]
pub struct NetnsPair {
    /// Name of the server namespace.
    pub server_ns: String,
    /// Name of the client namespace.
    pub client_ns: String,
    /// Interface name of the veth end inside the server namespace.
    pub server_if: String,
    /// Interface name of the veth end inside the client namespace.
    pub client_if: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is iproute2 installed?)"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

impl NetnsPair {
    /// Creates both namespaces and the veth pair, brings `lo` and the veth ends up and assigns
    /// [`SERVER_ADDR`] / [`CLIENT_ADDR`]. Panics if not root or if a step fails (cleaning up
    /// what was created).
    pub fn new() -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id());
        let pair = Self {
            server_ns: format!("udd-s-{id}"),
            client_ns: format!("udd-c-{id}"),
            server_if: format!("vs{id}"),
            client_if: format!("vc{id}"),
        };
        assert!(pair.server_if.len() <= 15, "interface name too long");
        // From here on, Drop removes whatever exists.
        run(Command::new(IP).args(["netns", "add", &pair.server_ns]));
        run(Command::new(IP).args(["netns", "add", &pair.client_ns]));
        run(Command::new(IP).args([
            "-n",
            &pair.server_ns,
            "link",
            "add",
            &pair.server_if,
            "type",
            "veth",
            "peer",
            "name",
            &pair.client_if,
            "netns",
            &pair.client_ns,
        ]));
        for (ns, ifname, addr) in [
            (&pair.server_ns, &pair.server_if, SERVER_ADDR),
            (&pair.client_ns, &pair.client_if, CLIENT_ADDR),
        ] {
            run(Command::new(IP).args(["-n", ns, "link", "set", "lo", "up"]));
            run(Command::new(IP).args(["-n", ns, "addr", "add", addr, "dev", ifname]));
            run(Command::new(IP).args(["-n", ns, "link", "set", ifname, "up"]));
        }
        pair
    }

    /// A command that runs `program` inside namespace `ns` (`ip netns exec`). `ip` execs the
    /// program, so the child's PID is the program's own.
    pub fn cmd_in(ns: &str, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// A command that runs `program` in the server namespace.
    pub fn server_cmd(&self, program: &str) -> Command {
        Self::cmd_in(&self.server_ns, program)
    }

    /// A command that runs `program` in the client namespace.
    pub fn client_cmd(&self, program: &str) -> Command {
        Self::cmd_in(&self.client_ns, program)
    }

    /// Runs `perfdhcp` in the client namespace on the client veth (it acts as a relay, giaddr
    /// [`CLIENT_ADDR`]) for `exchanges` DORA exchanges at 200/s with sequential MACs, and returns
    /// its output. Panics naming `kea-admin` if perfdhcp is missing. perfdhcp exits non-zero
    /// when packets were dropped, so the caller checks the lease set, not the exit status.
    pub fn perfdhcp(&self, exchanges: u32) -> Output {
        if !std::path::Path::new(PERFDHCP).exists() {
            panic!("{PERFDHCP} not found: install the Debian package kea-admin");
        }
        let n = exchanges.to_string();
        self.client_cmd(PERFDHCP)
            .args(["-4", "-l", &self.client_if, "-r", "200", "-R", &n, "-n", &n])
            .args(["-W", "2000000"])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run perfdhcp")
    }
}

impl Default for NetnsPair {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Processes still running in our namespaces (e.g. after a failed test) are ours: end
        // them by PID, then delete the namespaces, which removes the veth pair too.
        for ns in [&self.server_ns, &self.client_ns] {
            if let Ok(out) = Command::new(IP)
                .args(["netns", "pids", ns])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<libc::pid_t>().ok())
                {
                    // SAFETY: plain kill(2) on a PID that lives in a namespace this test created.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new(IP)
                .args(["netns", "del", ns])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
