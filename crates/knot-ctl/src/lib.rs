//! Knot DNS control-socket protocol (the protocol `knotc` speaks), spoken natively.
//!
//! * [`codec`]: the frame codec (END/DATA/EXTRA/BLOCK units, items `0x10 + index`).
//! * [`Client`]: synchronous request/reply over any `Read + Write` byte stream (a UNIX socket
//!   via [`Client::connect`], or e.g. a Kubernetes exec stream via [`Client::new`]).
//! * Typed commands with typed [`Error`]s that keep knotd's text, and guards for Knot 3.2's
//!   traps: a [`Transaction`] that aborts on drop, no blocking event on a zone with an open
//!   transaction, no command the server may not know, timeouts instead of hangs.
//!
//! ```no_run
//! use knot_ctl::{Client, Record};
//!
//! # fn main() -> Result<(), knot_ctl::Error> {
//! let mut client = Client::connect("/run/knot/knot.sock")?;
//! println!("knotd {}", client.version()?);
//! let mut txn = client.zone_begin("example.test")?;
//! let refused = txn.set_batch(&[
//!     Record::new("www", 3600, "A", "192.0.2.10"),
//!     Record::new("txt", 3600, "TXT", "\"hello world\""),
//! ])?;
//! assert!(refused.is_empty());
//! txn.commit()?;
//! for record in client.zone_read("example.test", None, None)? {
//!     println!("{}", record?);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
pub mod codec;
mod error;
mod types;

pub use client::{Client, KNOWN_COMMANDS, RecordStream, Timeouts, Transaction};
pub use error::{Error, Result, ServerMessage};
pub use types::{
    BackupOptions, Change, Components, DiffEntry, FlushOptions, Record, RecordError, RecordRef,
    ReloadOptions, Version, ZoneEvent, ZoneStatus,
};
