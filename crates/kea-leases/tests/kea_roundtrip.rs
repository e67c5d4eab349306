//! Against a real kea-dhcp4: real leases from perfdhcp in network namespaces, snapshot, wipe,
//! restore the files, config-reload, and the same lease set comes back.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use kea_leases::control::{ControlClient, ControlError, KeaLease, UnixConnector};
use kea_leases::load::{Role, load_effective, pid_path};
use kea_leases::snapshot::Snapshot;
use serde_json::value::RawValue;
use test_support::kea::{KeaConfig, KeaServer};
use test_support::netns::NetnsPair;

fn client(kea: &KeaServer) -> ControlClient<UnixConnector> {
    ControlClient::unix(kea.socket_path())
}

/// Removes every lease file Kea would load (the running Kea keeps its open descriptor).
fn remove_lease_files(lease_file: &Path) {
    for r in [
        Role::Completed,
        Role::Previous,
        Role::Rotated,
        Role::Current,
    ] {
        let _ = fs::remove_file(r.path_for(lease_file));
    }
}

fn raw(s: &str) -> Option<Box<RawValue>> {
    Some(RawValue::from_string(s.to_owned()).unwrap())
}

#[test]
fn perfdhcp_leases_survive_snapshot_wipe_restore_reload() {
    let pair = NetnsPair::new();
    let kea = KeaServer::start(KeaConfig::for_netns(&pair));
    let c = client(&kea);
    pair.perfdhcp(120);
    let got = c.lease4_get_all_paged(50).unwrap();
    assert!(got.len() >= 100, "perfdhcp got only {} leases", got.len());

    // Make the file look like a long-running one: replaced rows and deleted rows.
    for l in got.iter().take(10) {
        assert!(c.lease4_del(l.ip_address).unwrap());
    }
    assert!(!c.lease4_del(got[0].ip_address).unwrap());
    for l in got.iter().skip(10).take(10) {
        let mut l = l.clone();
        l.hostname = raw("\"renewed,&host\"");
        l.cltt += 7;
        c.lease4_update(&l, false).unwrap();
    }
    let before = c.lease4_get_all_paged(50).unwrap();
    assert_eq!(before.len(), got.len() - 10);

    // What the files hold is what Kea holds.
    let lease_file = kea.lease_file();
    let effective = load_effective(&lease_file).unwrap();
    assert!(effective.errors.is_empty(), "{:?}", effective.errors);
    let from_files: Vec<KeaLease> = effective
        .leases
        .values()
        .map(KeaLease::from_lease)
        .collect();
    assert_eq!(from_files, before);

    let snap = Snapshot::take(&lease_file).unwrap();
    assert!(
        snap.parts()
            .iter()
            .all(|p| !p.file_name().ends_with(".pid"))
    );
    let backup = tempfile::tempdir().unwrap();
    let files = snap.write_files(backup.path()).unwrap();
    let compacted_path = backup.path().join("compacted.csv");
    let compacted = snap.compact().unwrap();
    assert!(compacted.errors().is_empty());
    assert_eq!(compacted.lease_count(), before.len());
    let mut out = Vec::new();
    compacted.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, compacted.len());
    fs::write(&compacted_path, &out).unwrap();
    drop(compacted);
    drop(snap);

    // Wipe, then restore the file set and reload.
    c.lease4_wipe(None).unwrap();
    assert!(c.lease4_get_all_paged(50).unwrap().is_empty());
    remove_lease_files(&lease_file);
    for f in &files {
        fs::copy(f, kea.dir().join(f.file_name().unwrap())).unwrap();
    }
    c.config_reload().unwrap();
    assert_eq!(c.lease4_get_all_paged(50).unwrap(), before);

    // Wipe again, restore the compacted single file as the current file, reload.
    c.lease4_wipe(None).unwrap();
    assert!(c.lease4_get_all_paged(1000).unwrap().is_empty());
    remove_lease_files(&lease_file);
    fs::copy(&compacted_path, &lease_file).unwrap();
    c.config_reload().unwrap();
    assert_eq!(c.lease4_get_all_paged(1000).unwrap(), before);
}

#[test]
fn snapshots_during_kea_driven_lfc_never_lose_leases() {
    let pair = NetnsPair::new();
    let kea = KeaServer::start(KeaConfig::for_netns(&pair).lfc_interval(1));
    let lease_file = kea.lease_file();
    let traffic = std::thread::scope(|s| {
        let h = s.spawn(|| pair.perfdhcp(400));
        let mut counts = Vec::new();
        let mut rotated_seen = false;
        while !h.is_finished() {
            let snap = Snapshot::take_with(
                &lease_file,
                &kea_leases::SnapshotOptions {
                    lfc_wait: std::time::Duration::ZERO,
                    ..Default::default()
                },
            )
            .unwrap();
            rotated_seen |= snap.parts().iter().any(|p| p.role != Role::Current);
            assert!(
                snap.parts()
                    .iter()
                    .all(|p| !p.file_name().ends_with(".pid"))
            );
            let comp = snap.compact().unwrap();
            assert!(comp.errors().is_empty(), "{:?}", comp.errors());
            counts.push(comp.lease_count());
        }
        h.join().unwrap();
        (counts, rotated_seen)
    });
    let (counts, rotated_seen) = traffic;
    eprintln!(
        "{} snapshots during traffic with LFC every second, lease counts {} .. {}",
        counts.len(),
        counts[0],
        counts[counts.len() - 1]
    );
    assert!(counts.len() > 3, "too few snapshots taken: {counts:?}");
    assert!(rotated_seen, "LFC never rotated during the test");
    // perfdhcp only adds leases: a snapshot that missed a rotated file would count fewer.
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "lease count went down between snapshots: {counts:?}"
    );
    // After traffic stops, the snapshot is exactly Kea's lease set.
    let c = client(&kea);
    let api = c.lease4_get_all_paged(500).unwrap();
    let snap = Snapshot::take(&lease_file).unwrap();
    let comp = snap.compact().unwrap();
    let mut bytes = Vec::new();
    comp.write_to(&mut bytes).unwrap();
    let file = kea_leases::LeaseFile::parse(&bytes, "compacted").unwrap();
    let from_snap: Vec<KeaLease> = file
        .records
        .iter()
        .map(|r| KeaLease::from_lease(&r.lease))
        .collect();
    assert_eq!(from_snap, api);
}

/// Writes `n` rows for addresses base.. with Kea's 2.2 header.
fn write_rows(path: &Path, rows: impl Iterator<Item = (u32, u32, u64)>) {
    let mut w = kea_leases::LeaseWriter::new(
        std::io::BufWriter::new(fs::File::create(path).unwrap()),
        kea_leases::Header::kea_2_2(),
    )
    .unwrap();
    for (a, valid, expire) in rows {
        let l = kea_leases::Lease {
            address: Ipv4Addr::from(a),
            hwaddr: vec![0, 0x0c, (a >> 16) as u8, (a >> 8) as u8, a as u8, 1],
            client_id: vec![1, 0, 0x0c, (a >> 8) as u8, a as u8],
            valid_lifetime: valid,
            expire,
            subnet_id: 1,
            fqdn_fwd: false,
            fqdn_rev: false,
            hostname: kea_leases::EscapedText::encode(format!("h{a},x&y").as_bytes()),
            state: 0,
            user_context: Default::default(),
            pool_id: 0,
            extra: Vec::new(),
        };
        w.write(&l).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn snapshots_while_kea_lfc_runs_see_the_same_effective_set() {
    let kea = KeaServer::start(KeaConfig::new());
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("leases4.csv");
    let base = u32::from(Ipv4Addr::new(10, 77, 0, 0));
    let n = 60_000;
    write_rows(
        &Role::Previous.path_for(&x),
        (0..n).map(|i| (base + i, 3600, 1_800_000_000)),
    );
    // .1: renewals of every third, deletions of every seventh.
    write_rows(
        &Role::Rotated.path_for(&x),
        (0..n).filter(|i| i % 3 == 0 || i % 7 == 0).map(|i| {
            if i % 7 == 0 {
                (base + i, 0, 1_800_000_100)
            } else {
                (base + i, 3600, 1_800_000_500)
            }
        }),
    );
    write_rows(&x, (n..n + 100).map(|i| (base + i, 3600, 1_800_000_900)));
    let expected = load_effective(&x).unwrap();
    assert!(expected.errors.is_empty());

    let mut lfc = test_support::kea::lfc_command()
        .arg("-4")
        .arg("-x")
        .arg(Role::Previous.path_for(&x))
        .arg("-i")
        .arg(Role::Rotated.path_for(&x))
        .arg("-o")
        .arg(dir.path().join("leases4.csv.output"))
        .arg("-f")
        .arg(Role::Completed.path_for(&x))
        .arg("-p")
        .arg(pid_path(&x))
        .arg("-c")
        .arg(kea.dir().join("kea-dhcp4.conf"))
        .env("KEA_LOCKFILE_DIR", dir.path())
        .env("KEA_PIDFILE_DIR", dir.path())
        .spawn()
        .expect("kea-lfc (Debian package kea-common) is missing");
    let mut snapshots = 0;
    let mut roles_seen = std::collections::BTreeSet::new();
    loop {
        let done = lfc.try_wait().unwrap().is_some();
        let snap = Snapshot::take_with(
            &x,
            &kea_leases::SnapshotOptions {
                lfc_wait: std::time::Duration::ZERO,
                ..Default::default()
            },
        )
        .unwrap();
        snapshots += 1;
        let roles: Vec<Role> = snap.parts().iter().map(|p| p.role).collect();
        roles_seen.insert(roles);
        let comp = snap.compact().unwrap();
        assert!(comp.errors().is_empty());
        assert_eq!(comp.lease_count(), expected.leases.len());
        assert!(comp.addresses().eq(expected.leases.keys().copied()));
        let mut bytes = Vec::new();
        comp.write_to(&mut bytes).unwrap();
        let mut want = Vec::new();
        expected.write_to(&mut want).unwrap();
        assert!(
            bytes == want,
            "compacted snapshot differs from the effective set"
        );
        if done {
            break;
        }
    }
    assert!(lfc.wait().unwrap().success());
    eprintln!("{snapshots} snapshots during kea-lfc, file sets seen: {roles_seen:?}");
    assert!(snapshots >= 2);
    // After LFC: .2 (merged) and the current file.
    assert!(roles_seen.contains(&vec![Role::Previous, Role::Current]));
    assert!(!pid_path(&x).exists());
    // And a snapshot waiting for LFC (default options) sees the same.
    let snap = Snapshot::take(&x).unwrap();
    assert_eq!(snap.compact().unwrap().lease_count(), expected.leases.len());
}

#[test]
fn hostnames_and_user_contexts_round_trip_through_api_and_file() {
    let kea = KeaServer::start(KeaConfig::new());
    let c = client(&kea);
    let cmds = c.list_commands().unwrap();
    for cmd in [
        "lease4-get-page",
        "lease4-add",
        "lease4-wipe",
        "config-reload",
    ] {
        assert!(cmds.iter().any(|c| c == cmd), "{cmd} missing in {cmds:?}");
    }
    assert!(c.config_get().unwrap().get().contains("\"Dhcp4\""));

    let names = [
        r#""a,b&c.example""#,
        r#""caf\u00c3\u00a9-\u00ff,&#x2c&amp;""#,
        r#""quote\"back\\slash""#,
        r#""""#,
    ];
    let ctxs = [
        None,
        Some(r#"{ "note": "x,y & z \u00c3\u00a9", "n": 1 }"#),
        Some(r#"{ "a": [ 1, 2 ], "b": { "c": "&#x26" } }"#),
        Some(r#"{ "empty": "" }"#),
    ];
    let mut sent = Vec::new();
    for (i, (name, ctx)) in names.iter().zip(ctxs).enumerate() {
        let l = KeaLease {
            ip_address: Ipv4Addr::new(10, 77, 1, 10 + i as u8),
            hw_address: format!("00:0c:00:00:00:{:02x}", i),
            client_id: (i % 2 == 0).then(|| format!("01:00:0c:00:00:00:{i:02x}")),
            valid_lft: 3600,
            cltt: 1_790_000_000 + i as i64,
            subnet_id: 1,
            fqdn_fwd: i == 1,
            fqdn_rev: i == 2,
            hostname: raw(name),
            state: 0,
            user_context: ctx.and_then(raw),
            pool_id: None,
        };
        c.lease4_add(&l).unwrap();
        sent.push(l);
    }
    // A duplicate add is a typed error.
    match c.lease4_add(&sent[0]) {
        Err(ControlError::LeaseExists { address, .. }) => assert_eq!(address, sent[0].ip_address),
        other => panic!("expected LeaseExists, got {other:?}"),
    }
    let got = c.lease4_get_all_paged(2).unwrap();
    let fmt = |v: &[KeaLease]| serde_json::to_string_pretty(v).unwrap();
    // Kea renders user contexts its own way; hostnames must come back byte for byte.
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(
            g.hostname.as_ref().map(|h| h.get()),
            s.hostname.as_ref().map(|h| h.get()),
            "{}",
            fmt(&got)
        );
        let parse = |r: &Option<Box<RawValue>>| {
            r.as_ref()
                .map(|r| serde_json::from_str::<serde_json::Value>(r.get()).unwrap())
        };
        assert_eq!(parse(&g.user_context), parse(&s.user_context));
        assert_eq!(g.cltt, s.cltt);
    }

    // Through the file: what Kea wrote parses to what the API shows.
    let set = load_effective(&kea.lease_file()).unwrap();
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let from_file: Vec<KeaLease> = set.leases.values().map(KeaLease::from_lease).collect();
    assert_eq!(
        from_file,
        got,
        "file: {}\napi: {}",
        fmt(&from_file),
        fmt(&got)
    );
    let text = fs::read(kea.lease_file()).unwrap();
    let parsed = kea_leases::LeaseFile::parse(&text, "kea").unwrap();
    assert_eq!(
        parsed.to_bytes(),
        text,
        "byte-exact round trip of Kea's file"
    );

    // Restore through the file.
    let snap = Snapshot::take(kea.lease_file()).unwrap();
    let comp = snap.compact().unwrap();
    let mut bytes = Vec::new();
    comp.write_to(&mut bytes).unwrap();
    drop(comp);
    drop(snap);
    c.lease4_wipe(None).unwrap();
    remove_lease_files(&kea.lease_file());
    fs::write(kea.lease_file(), &bytes).unwrap();
    c.config_reload().unwrap();
    assert_eq!(c.lease4_get_all_paged(100).unwrap(), got);

    // Restore through the API, from the file's rows (lease4-update with force-create).
    c.lease4_wipe(None).unwrap();
    assert!(c.lease4_get_all_paged(100).unwrap().is_empty());
    for l in set.leases.values() {
        c.lease4_update(&KeaLease::from_lease(l), true).unwrap();
    }
    assert_eq!(c.lease4_get_all_paged(100).unwrap(), got);
    // Idempotent.
    for l in &got {
        c.lease4_update(l, true).unwrap();
    }
    assert_eq!(c.lease4_get_all_paged(100).unwrap(), got);
    // And the API lease converts back to the file row Kea wrote.
    for (g, l) in got.iter().zip(set.leases.values()) {
        let back = g.to_lease().unwrap();
        assert_eq!(back.hostname.decode(), l.hostname.decode());
        assert_eq!(back.user_context.decode(), l.user_context.decode());
        assert_eq!(back.expire, l.expire);
    }
}
