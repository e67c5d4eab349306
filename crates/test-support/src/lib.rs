//! Fixtures for tests that run real daemons. Dev-only: never a dependency of a library.
//!
//! Every fixture starts its daemon in a fresh temporary directory on loopback, waits until it
//! answers, and stops it when dropped. A missing daemon is a test failure naming the Debian
//! package to install (or `scripts/trixie-root.sh`), never a silent skip. Which daemons run
//! (Debian 12's or Debian 13's) is chosen by `DNSDHCP_TEST_DAEMONS`: see [`daemons`].
//! Object-store tests run real S3 servers on 127.0.0.1 ([`s3`]), Azurite ([`azure`]) and
//! `gcp-storage-emulator` ([`gcs`]). [`ctl_relay`] sits in front of knotd's control socket to kill a
//! process at an exact point of a control conversation.

pub mod azure;
pub mod ctl_relay;
pub mod daemons;
pub mod gcs;
pub mod kea;
pub mod knot;
pub mod lan;
pub mod leasegen;
pub mod netns;
pub mod pod;
pub mod s3;
