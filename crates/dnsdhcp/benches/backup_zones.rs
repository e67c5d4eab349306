//! `dnsdhcp backup zones` vs `knotc -b zone-backup` followed by `tar czf` of the same directory.
//!
//! One real knotd serves 10 zones with 1,000,000 records in total (`BENCH_RECORDS` changes the
//! total). Both ways run in the same process against the same daemon, three times each,
//! alternating; the medians and their ratio are printed. Target: dnsdhcp ≤ 1.0× the pair.
//!
//! ```sh
//! cargo bench -p dnsdhcp --bench backup_zones
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use dnsdhcp::backup;
use dnsdhcp::target::LocalTarget;
use test_support::knot::KnotServer;

const ZONES: usize = 10;

fn zone_text(zone: usize, records: usize) -> String {
    let mut text = String::with_capacity(records * 40);
    text.push_str("$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\n");
    text.push_str("ns1 IN A 192.0.2.1\n");
    for i in 0..records {
        match i % 4 {
            0 | 1 => text.push_str(&format!(
                "h{i} IN A 10.{zone}.{}.{}\n",
                i >> 8 & 255,
                i & 255
            )),
            2 => text.push_str(&format!(
                "h{i} IN AAAA fd00:{zone:x}::{:x}:{:x}\n",
                i >> 16,
                i & 0xffff
            )),
            _ => text.push_str(&format!("t{i} IN TXT \"record {i} of zone {zone}\"\n")),
        }
    }
    text
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let total: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let per_zone = total / ZONES;
    eprintln!("generating {ZONES} zones x {per_zone} records and starting knotd ...");
    let names: Vec<String> = (0..ZONES).map(|i| format!("z{i}.bench")).collect();
    let texts: Vec<String> = (0..ZONES).map(|i| zone_text(i, per_zone)).collect();
    let zones: Vec<(&str, &str)> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let knot = KnotServer::start(&zones);
    drop(texts);
    let target = LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        name: "bench".into(),
        ..LocalTarget::default()
    };
    let work = tempfile::tempdir().expect("tempdir");

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..3 {
        let out = work.path().join(format!("dnsdhcp-{round}"));
        let start = Instant::now();
        let written = backup::backup_zones(&target, &out).expect("dnsdhcp backup zones");
        ours.push(start.elapsed());
        let size = std::fs::metadata(&written.full.path).unwrap().len();

        let dir = work.path().join(format!("knotc-{round}"));
        let tarball = work.path().join(format!("knotc-{round}.tar.gz"));
        let start = Instant::now();
        let backup_dir = dir.to_string_lossy().into_owned();
        let out = knot.knotc(&["-b", "zone-backup", "+backupdir", &backup_dir, "+journal"]);
        assert!(out.status.success(), "knotc zone-backup failed: {out:?}");
        let status = Command::new("tar")
            .arg("czf")
            .arg(&tarball)
            .arg("-C")
            .arg(&dir)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success());
        theirs.push(start.elapsed());
        let their_size = std::fs::metadata(&tarball).unwrap().len();
        eprintln!(
            "round {round}: dnsdhcp {:?} ({size} B + zones.tar.gz), knotc+tar {:?} ({their_size} B)",
            ours[round], theirs[round]
        );
        std::fs::remove_dir_all(&dir).ok();
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "backup zones, {ZONES} zones, {} records in total (median of 3):",
        per_zone * ZONES
    );
    println!(
        "  dnsdhcp backup zones (full archive + zones.tar.gz, manifest, verified zone facts): {a:.3?}"
    );
    println!(
        "  knotc -b zone-backup + tar czf:                                                   {b:.3?}"
    );
    println!(
        "  ratio dnsdhcp / (knotc + tar): {:.2}x (target <= 1.0x)",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
