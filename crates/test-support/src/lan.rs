//! A LAN segment behind a router namespace, for DHCP clients that are not on the server's link
//! (relayed DHCP). Needs root.
//!
//! [`Lan::new`] creates a namespace `udd-lan-<pid>-<n>` joined by a veth pair to an existing
//! namespace that plays the LAN's router (e.g. a [`PodRunner`](crate::pod::PodRunner)'s client
//! namespace): the router's end gets a name and an address, the LAN end is `eth0`, up, without
//! an address (a DHCP client gives it one). Dropping the `Lan` kills what runs in its namespace
//! and removes it (and with it the veth pair); the pod runner also removes namespaces left by
//! test processes that died.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::pod::IP;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace on a LAN behind a router namespace; see the [module docs](self).
pub struct Lan {
    /// The LAN namespace's name.
    pub ns: String,
    /// The interface in the LAN namespace (`eth0`).
    pub lan_if: String,
}

fn run(args: &[&str]) {
    let out = Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    /// A LAN namespace linked to `router_ns`, whose end is `router_if` with `router_addr`
    /// (address with prefix, e.g. `192.168.1.1/24`).
    pub fn new(router_ns: &str, router_if: &str, router_addr: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = format!("udd-lan-{}-{n}", std::process::id());
        run(&["netns", "add", &ns]);
        let lan = Self {
            ns,
            lan_if: "eth0".into(),
        };
        run(&[
            "-n", router_ns, "link", "add", router_if, "type", "veth", "peer", "name", "lan-end",
            "netns", &lan.ns,
        ]);
        run(&["-n", &lan.ns, "link", "set", "lan-end", "name", "eth0"]);
        run(&[
            "-n",
            router_ns,
            "addr",
            "add",
            router_addr,
            "dev",
            router_if,
        ]);
        run(&["-n", router_ns, "link", "set", router_if, "up"]);
        run(&["-n", &lan.ns, "link", "set", "lo", "up"]);
        run(&["-n", &lan.ns, "link", "set", "eth0", "up"]);
        lan
    }

    /// A host program run in the LAN namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", &self.ns, program]);
        c
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Ok(out) = Command::new(IP)
            .args(["netns", "pids", &self.ns])
            .stderr(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok())
            {
                // SAFETY: kill(2) of a process inside a namespace this Lan created.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new(IP)
            .args(["netns", "del", &self.ns])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
