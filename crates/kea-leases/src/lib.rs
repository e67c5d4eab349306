//! Kea DHCPv4 memfile leases: the CSV format, Kea's load semantics, LFC-safe snapshots of a live
//! lease directory, and a client for Kea's JSON control channel.
//!
//! Everything here reproduces what `kea-dhcp4` (2.2, and the 2.4+ file schema) and `kea-lfc` do
//! to their lease files, so a backup taken with it restores to exactly the lease set Kea had:
//!
//! * [`csv`]: parse and write lease files byte for byte; bad rows come with file and line.
//! * [`load`]: which files Kea loads (`X.completed`, else `X.2` then `X.1`; then `X`) and how
//!   rows combine ([`load_effective`]).
//! * [`snapshot`]: a consistent view of a live directory ([`Snapshot`]), optionally compacted
//!   to one file as LFC would write it ([`Compacted`]), in bounded memory.
//! * [`control`]: the control channel over any byte stream ([`ControlClient`]), keeping Kea's
//!   `\u00XX` string escapes intact.
//!
//! ```
//! use kea_leases::csv::{Header, LeaseFile};
//!
//! let text = b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
//! 10.0.0.5,00:11:22:33:44:55,,3600,1700003600,1,0,0,host&#x2ca,0,\n";
//! let file = LeaseFile::parse(text, "leases4.csv").unwrap();
//! assert_eq!(file.header, Some(Header::kea_2_2()));
//! assert_eq!(file.records[0].lease.hostname.decode(), b"host,a");
//! assert_eq!(file.to_bytes(), text); // byte-exact round trip
//!
//! // Snapshot a lease directory and compact it to the effective set.
//! let dir = tempfile::tempdir().unwrap();
//! let lease_file = dir.path().join("kea-leases4.csv");
//! std::fs::write(&lease_file, text).unwrap();
//! let snap = kea_leases::Snapshot::take(&lease_file).unwrap();
//! let compacted = snap.compact().unwrap();
//! let mut out = Vec::new();
//! compacted.write_to(&mut out).unwrap();
//! assert_eq!(out, text);
//! ```
//!
//! ```no_run
//! use kea_leases::ControlClient;
//!
//! let kea = ControlClient::unix("/run/kea/kea4-ctrl-socket");
//! let leases = kea.lease4_get_all_paged(500)?;
//! kea.lease4_wipe(None)?;
//! for l in &leases {
//!     kea.lease4_update(l, true)?; // idempotent restore, hostnames byte for byte
//! }
//! # Ok::<(), kea_leases::ControlError>(())
//! ```

#![warn(missing_docs)]

pub mod control;
pub mod csv;
pub mod kea_json;
pub mod load;
pub mod snapshot;

pub use control::{ControlClient, ControlError, KeaLease, LeasePages, UnixConnector};
pub use csv::{
    EscapedText, Header, Lease, LeaseFile, LeaseReader, LeaseState, LeaseWriter, ParseError,
    ReadError, Record, RowError, RowErrorKind,
};
pub use load::{EffectiveSet, LoadError, Role, load_effective, load_effective_with};
pub use snapshot::{Compacted, Snapshot, SnapshotError, SnapshotOptions};
