//! The `dnsdhcp` tool as a library: every command is a function here; `main.rs` only parses
//! arguments and prints.

pub mod archive;
pub mod records;
