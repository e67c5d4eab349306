//! Snapshot and load semantics on lease directories built by hand (no daemon needed).

use std::fs;
use std::path::Path;

use kea_leases::load::{Role, load_effective, pid_path};
use kea_leases::snapshot::{Snapshot, SnapshotOptions};

const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";
const H12: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

fn row(a: u8, valid: u32, host: &str) -> String {
    format!(
        "10.0.0.{a},00:00:00:00:00:{a:02x},,{valid},{},1,0,0,{host},0,\n",
        1_800_000_000u64 + u64::from(valid)
    )
}

fn compacted(lease_file: &Path) -> (String, usize) {
    let snap = Snapshot::take(lease_file).unwrap();
    let c = snap.compact().unwrap();
    let mut out = Vec::new();
    c.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, c.len());
    (String::from_utf8(out).unwrap(), c.errors().len())
}

#[test]
fn load_order_replacement_and_deletion() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    fs::write(
        Role::Previous.path_for(&x),
        format!(
            "{H11}{}{}{}",
            row(1, 10, "a"),
            row(2, 10, "b"),
            row(3, 10, "c")
        ),
    )
    .unwrap();
    fs::write(
        Role::Rotated.path_for(&x),
        format!("{H11}{}{}", row(2, 0, ""), row(3, 20, "c2")),
    )
    .unwrap();
    fs::write(&x, format!("{H11}{}{}", row(4, 10, "d"), row(2, 30, "b3"))).unwrap();
    let set = load_effective(&x).unwrap();
    let hosts: Vec<String> = set
        .leases
        .values()
        .map(|l| String::from_utf8(l.hostname.decode()).unwrap())
        .collect();
    assert_eq!(hosts, ["a", "b3", "c2", "d"]);
    assert_eq!(set.rows, 7);
    let (text, errors) = compacted(&x);
    assert_eq!(errors, 0);
    assert_eq!(
        text,
        format!(
            "{H11}{}{}{}{}",
            row(1, 10, "a"),
            row(2, 30, "b3"),
            row(3, 20, "c2"),
            row(4, 10, "d")
        )
    );

    // .completed wins over .2 and .1.
    fs::write(
        Role::Completed.path_for(&x),
        format!("{H11}{}", row(9, 10, "z")),
    )
    .unwrap();
    let set = load_effective(&x).unwrap();
    let addrs: Vec<String> = set.leases.keys().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.2", "10.0.0.4", "10.0.0.9"]);
    let snap = Snapshot::take(&x).unwrap();
    let roles: Vec<Role> = snap.parts().iter().map(|p| p.role).collect();
    assert_eq!(roles, [Role::Completed, Role::Current]);
}

#[test]
fn torn_final_row_and_pid_file_are_left_out() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    fs::write(&x, format!("{H11}{}10.0.0.7,00:00", row(1, 10, "a"))).unwrap();
    // A stale LFC pid file (no such process) neither blocks nor gets copied.
    fs::write(pid_path(&x), "999999999\n").unwrap();
    let opts = SnapshotOptions {
        lfc_wait: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    let snap = Snapshot::take_with(&x, &opts).unwrap();
    assert_eq!(snap.parts().len(), 1);
    let p = &snap.parts()[0];
    assert_eq!(p.len, (H11.len() + row(1, 10, "a").len()) as u64);
    assert!(p.file_len > p.len);
    let out = tempfile::tempdir().unwrap();
    let files = snap.write_files(out.path()).unwrap();
    assert_eq!(files, [out.path().join("l.csv")]);
    assert_eq!(
        fs::read_to_string(&files[0]).unwrap(),
        format!("{H11}{}", row(1, 10, "a"))
    );
    assert!(
        fs::read_dir(out.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".pid"))
    );
}

#[test]
fn malformed_rows_are_counted_with_file_and_line_and_not_copied() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    fs::write(
        Role::Rotated.path_for(&x),
        format!("{H11}{}10.0.0.300,01,,1,2,1,0,0,,0,\n", row(1, 10, "a")),
    )
    .unwrap();
    fs::write(
        &x,
        format!("{H11}\n{}10.0.0.2,,,1,2,1,0,0,,0,\n", row(2, 10, "b")),
    )
    .unwrap();
    let set = load_effective(&x).unwrap();
    let where_: Vec<String> = set
        .errors
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.file.file_name().unwrap().to_string_lossy(),
                e.line
            )
        })
        .collect();
    assert_eq!(where_, ["l.csv.1:3", "l.csv:4"]);
    let snap = Snapshot::take(&x).unwrap();
    let c = snap.compact().unwrap();
    assert_eq!(c.errors(), &set.errors[..]);
    assert_eq!(c.lease_count(), 2);
}

#[test]
fn mixed_schemas_compact_to_the_current_files_header() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    // .2 written by Kea 2.4+ (pool_id), current file by 2.2.
    let r12 = "10.0.0.1,00:00:00:00:00:01,,10,1800000010,1,0,0,a&#x2cb,0,,5\n";
    fs::write(Role::Previous.path_for(&x), format!("{H12}{r12}")).unwrap();
    fs::write(&x, format!("{H11}{}", row(2, 10, "b"))).unwrap();
    let (text, errors) = compacted(&x);
    assert_eq!(errors, 0);
    assert_eq!(
        text,
        format!(
            "{H11}10.0.0.1,00:00:00:00:00:01,,10,1800000010,1,0,0,a&#x2cb,0,\n{}",
            row(2, 10, "b")
        )
    );
}

#[test]
fn empty_directory_and_empty_current_file() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    let snap = Snapshot::take(&x).unwrap();
    assert!(snap.parts().is_empty());
    let (text, _) = compacted(&x);
    assert_eq!(text, H11);
    fs::write(&x, "").unwrap();
    assert!(Snapshot::take(&x).unwrap().parts().is_empty());
}

#[test]
fn large_files_parsed_in_parallel_pieces_keep_line_numbers_and_order() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("l.csv");
    // ~20 MB in .2 so it is split into several pieces; a bad row deep inside, and later rows
    // for the same addresses in the current file.
    let mut text = String::from(H11);
    let n = 250_000u32;
    let bad_line = 200_001u64;
    for i in 0..n {
        if u64::from(i) + 2 == bad_line {
            text.push_str("10.0.0.1,zz,,1,2,1,0,0,,0,\n");
            continue;
        }
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!(
            "{a},00:16:3e:{:02x}:{:02x}:{:02x},,4000,1800004000,1,0,0,host-{i}.example.org-padding-padding,0,\n",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        ));
    }
    assert!(text.len() > 16 << 20);
    fs::write(Role::Previous.path_for(&x), &text).unwrap();
    fs::write(
        &x,
        format!(
            "{H11}{}",
            "10.0.0.5,00:00:00:00:00:05,,0,1800000000,1,0,0,,0,\n"
        ),
    )
    .unwrap();
    let snap = Snapshot::take(&x).unwrap();
    let c = snap.compact().unwrap();
    assert_eq!(c.errors().len(), 1);
    assert_eq!(c.errors()[0].line, bad_line);
    assert_eq!(c.lease_count(), n as usize - 2);
    let mut out = Vec::new();
    c.write_to(&mut out).unwrap();
    let set = load_effective(&x).unwrap();
    assert_eq!(set.errors[0].line, bad_line);
    let mut want = Vec::new();
    set.write_to(&mut want).unwrap();
    assert!(out == want);
}

#[test]
fn missing_directory_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let err = Snapshot::take(d.path().join("nope/l.csv")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
