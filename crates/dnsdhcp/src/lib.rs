//! The `dnsdhcp` tool as a library: every command is a function here; `main.rs` only parses
//! arguments and prints.
//!
//! Data takes one path: read → validate → plan → apply. The operations are written once over a
//! [`target::LocalTarget`] (Knot's and Kea's sockets and files on this host or in this pod).
//!
//! | module | what |
//! |---|---|
//! | [`agent`] | scheduled backups to object storage, with Prometheus metrics |
//! | [`archive`] | tar.gz archives with a manifest: atomic writer, safe extraction, verify |
//! | [`backup`] | `backup zones|leases`: Knot's `zone-backup`, LFC-safe lease snapshots |
//! | [`restore`] | `restore --local`: into running daemons, verified first |
//! | [`zones`] | make a zone serve exactly a zone file's records, in one transaction |
//! | [`leases`] | put restored lease files in place crash-safely |
//! | [`legacy`] | the original chart's archives, restore scripts and values |
//! | [`records`] | static records from Helm values: load, validate, plan, apply |
//! | [`pod`] | the in-pod roles: init-zones, init-leases, post-start |
//! | [`zonefile`] | one zone-file reader (backup, verify, restore): every type in Knot's table |
//! | [`knot_storage`] | where Knot keeps zone data (`conf-read`), the room a backup needs |
//! | [`preflight`] | the checks every restore runs before its first change, on both targets |
//! | [`txn`] | Knot transactions marked with their owner; abandoned ones recognised and aborted |
//! | [`probe`] | the chart's probes: Knot's `status`, Kea's `status-get`, post-start's outcome |
//! | [`kube`] | the Kubernetes target: the same operations run in the StatefulSet's pod over exec |
//! | [`store`] | backups in object storage: upload, list, download, retention, encryption |

pub mod agent;
pub mod archive;
pub mod backup;
pub mod knot_storage;
pub mod kube;
pub mod leases;
pub mod legacy;
pub mod pod;
pub mod preflight;
pub mod probe;
pub mod records;
pub mod restore;
pub mod store;
pub mod target;
pub mod txn;
pub mod zonefile;
pub mod zones;
