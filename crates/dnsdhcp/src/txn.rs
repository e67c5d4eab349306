//! Knot transactions that say whose they are.
//!
//! Knot's transactions belong to the zone, not to the connection: a dnsdhcp killed while one
//! is open leaves it open, and every later `zone-begin` fails with "too many transactions".
//! So every transaction dnsdhcp opens carries a marker from its first moment to its last: a TXT
//! record at `_dnsdhcp-txn.<zone>` naming the host, boot, process id and process start time,
//! set in the same write as `zone-begin` and removed in the same write as `zone-commit` (it is
//! never committed). The next run finds an open transaction, reads the marker in it
//! (`zone-get`) and aborts the transaction if the process that opened it is gone. A transaction
//! without a marker is someone else's (knotc, another tool): it is left alone and refused.

use std::io::{Read, Write};

use knot_ctl::{Client, Record, Transaction};

/// The owner label of the marker, below the zone's apex.
pub const MARKER_LABEL: &str = "_dnsdhcp-txn";

/// Why a zone's open transaction blocks the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// Someone else (not dnsdhcp) has a transaction open on the zone.
    #[error(
        "zone {zone} has an open transaction that dnsdhcp did not start (knotc or another tool?); nothing was changed. Commit or abort it (`knotc zone-commit {zone}` / `knotc zone-abort {zone}`) and run again"
    )]
    Foreign {
        /// The zone.
        zone: String,
    },
    /// A dnsdhcp process that is still running has the transaction open.
    #[error(
        "zone {zone} is being changed right now by another dnsdhcp (pid {pid} on {host}); nothing was changed. Wait for it to finish and run again"
    )]
    Busy {
        /// The zone.
        zone: String,
        /// The other process.
        pid: u32,
        /// Its host.
        host: String,
    },
    /// Knot failed a command.
    #[error("{context} {zone}: {source}")]
    Knot {
        /// The zone.
        zone: String,
        /// What was being done.
        context: &'static str,
        /// Knot's error.
        #[source]
        source: knot_ctl::Error,
    },
}

/// Who opened a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// The kernel's boot id (a reboot makes every earlier process gone).
    pub boot: String,
    /// Process id.
    pub pid: u32,
    /// The process's start time (clock ticks since boot, `/proc/PID/stat` field 22): a reused
    /// pid has another.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            host: crate::target::host_name(),
            boot: boot_id(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// The marker's TXT data.
    fn to_txt(&self) -> String {
        format!(
            "\"dnsdhcp host={} boot={} pid={} start={}\"",
            self.host, self.boot, self.pid, self.start
        )
    }

    /// Parses a marker's TXT data (as Knot prints it: quoted).
    pub fn from_txt(txt: &str) -> Option<Owner> {
        let inner = txt.trim().trim_matches('"');
        let mut words = inner.split_whitespace();
        if words.next()? != "dnsdhcp" {
            return None;
        }
        let (mut host, mut boot, mut pid, mut start) = (None, None, None, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "host" => host = Some(v.to_owned()),
                "boot" => boot = Some(v.to_owned()),
                "pid" => pid = v.parse().ok(),
                "start" => start = v.parse().ok(),
                _ => {}
            }
        }
        Some(Owner {
            host: host?,
            boot: boot?,
            pid: pid?,
            start: start?,
        })
    }

    /// Whether this process still runs: same host and boot, and the pid has the same start
    /// time. A marker from another host cannot be checked and counts as running.
    pub fn is_running(&self) -> bool {
        let me = Owner::me();
        if self.host != me.host {
            return true;
        }
        if self.boot != me.boot {
            return false;
        }
        start_time(self.pid) == Some(self.start)
    }
}

/// The marker record of `owner` in `zone` (an FQDN).
pub fn marker(zone: &str, owner: &Owner) -> Record {
    Record::new(marker_owner(zone), 0, "TXT", owner.to_txt())
}

fn marker_owner(zone: &str) -> String {
    match zone.trim_end_matches('.') {
        // The root zone: the marker sits directly below the root.
        "" => format!("{MARKER_LABEL}."),
        z => format!("{MARKER_LABEL}.{z}."),
    }
}

/// Opens a marked transaction on `zone` for this process.
pub fn begin<'c, S: Read + Write>(
    client: &'c mut Client<S>,
    zone: &str,
) -> Result<(Transaction<'c, S>, Record), knot_ctl::Error> {
    let m = marker(zone, &Owner::me());
    let txn = client.zone_begin_marked(zone, &m)?;
    Ok((txn, m))
}

/// An abandoned transaction that was aborted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Aborted {
    /// The zone.
    pub zone: String,
    /// The process that had opened it.
    pub pid: u32,
    /// Its host.
    pub host: String,
}

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "aborted the transaction on {} that an interrupted dnsdhcp (pid {} on {}) left open",
            self.zone, self.pid, self.host
        )
    }
}

/// Looks at the open transactions of `zones` (all zones for an empty slice) without changing
/// anything: returns those an interrupted dnsdhcp left behind, or refuses if one belongs to
/// someone else or to a dnsdhcp still running.
pub fn abandoned<S: Read + Write>(
    client: &mut Client<S>,
    zones: &[&str],
) -> Result<Vec<Aborted>, TxnError> {
    let open = if zones.is_empty() {
        client
            .open_transactions(None)
            .map_err(knot("*", "zone-status"))?
    } else {
        let mut open = Vec::new();
        for z in zones {
            open.extend(
                client
                    .open_transactions(Some(z))
                    .map_err(knot(z, "zone-status"))?,
            );
        }
        open
    };
    let mut abandoned = Vec::new();
    for zone in &open {
        let markers = client
            .zone_markers(zone, &marker_owner(zone))
            .map_err(knot(zone, "zone-get"))?;
        let owners: Vec<Owner> = markers.iter().filter_map(|m| Owner::from_txt(m)).collect();
        let Some(owner) = owners.first() else {
            return Err(TxnError::Foreign { zone: zone.clone() });
        };
        if let Some(live) = owners.iter().find(|o| o.is_running()) {
            return Err(TxnError::Busy {
                zone: zone.clone(),
                pid: live.pid,
                host: live.host.clone(),
            });
        }
        abandoned.push(Aborted {
            zone: zone.clone(),
            pid: owner.pid,
            host: owner.host.clone(),
        });
    }
    Ok(abandoned)
}

/// Makes sure none of `zones` has an open transaction: aborts those an interrupted dnsdhcp
/// left behind ([`abandoned`]), refusing before anything is aborted if one is not.
pub fn clear_abandoned<S: Read + Write>(
    client: &mut Client<S>,
    zones: &[&str],
) -> Result<Vec<Aborted>, TxnError> {
    let abandoned = abandoned(client, zones)?;
    for a in &abandoned {
        client
            .zone_abort(&a.zone)
            .map_err(knot(&a.zone, "zone-abort"))?;
    }
    Ok(abandoned)
}

fn knot(zone: &str, context: &'static str) -> impl FnOnce(knot_ctl::Error) -> TxnError {
    let zone = zone.to_owned();
    move |source| TxnError::Knot {
        zone,
        context,
        source,
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Field 22 of `/proc/PID/stat` (after the command name, which may hold spaces).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_this_process_and_parses_back() {
        let me = Owner::me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0);
        assert_eq!(Owner::from_txt(&me.to_txt()), Some(me.clone()));
        assert!(me.is_running());
        let gone = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!gone.is_running());
        let rebooted = Owner {
            boot: "another-boot".into(),
            ..me
        };
        assert!(!rebooted.is_running());
        assert_eq!(Owner::from_txt("\"hello world\""), None);
        assert_eq!(Owner::from_txt("\"dnsdhcp host=x\""), None);
    }

    #[test]
    fn the_marker_owner_is_a_valid_name_in_every_zone_including_the_root() {
        assert_eq!(marker_owner("example.com."), "_dnsdhcp-txn.example.com.");
        assert_eq!(marker_owner("example.com"), "_dnsdhcp-txn.example.com.");
        assert_eq!(marker_owner("."), "_dnsdhcp-txn.");
    }
}
