//! Kea DHCPv4 memfile leases: the CSV format, Kea's load semantics, LFC-safe snapshots of a live
//! lease directory, and a client for Kea's JSON control channel.
//!
//! Everything here reproduces what `kea-dhcp4` and `kea-lfc` do to their lease files, so a
//! backup taken with it restores to exactly the lease set Kea had.
//!
//! ```
//! use kea_leases::csv::{LeaseFile, Header};
//!
//! let text = b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
//! 10.0.0.5,00:11:22:33:44:55,,3600,1700003600,1,0,0,host&#x2ca,0,\n";
//! let file = LeaseFile::parse(text, "leases4.csv").unwrap();
//! assert_eq!(file.header, Some(Header::kea_2_2()));
//! assert_eq!(file.records[0].lease.hostname.decode(), b"host,a");
//! assert_eq!(file.to_bytes(), text); // byte-exact round trip
//! ```

pub mod control;
pub mod csv;
pub mod kea_json;

pub use csv::{
    EscapedText, Header, Lease, LeaseFile, LeaseReader, LeaseState, LeaseWriter, ParseError,
    ReadError, Record, RowError, RowErrorKind,
};
pub mod load;
pub mod snapshot;

pub use control::{ControlClient, ControlError, KeaLease, UnixConnector};
pub use load::{EffectiveSet, LoadError, Role, load_effective};
pub use snapshot::{Compacted, Snapshot, SnapshotError, SnapshotOptions};
