//! The differences between Kea 2.2 (Debian 12) and Kea 2.6 (Debian 13, the chart's
//! major.minor), asserted on the real kea-dhcp4 of the running variant
//! (`DNSDHCP_TEST_DAEMONS=host|trixie`, see test_support::daemons): each test checks the raw
//! behaviour of the version it talks to, and that this crate handles it.

use std::fs;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use kea_leases::control::{ControlClient, ControlError, KeaLease, UnixConnector};
use kea_leases::load::{Role, load_effective, pid_path};
use test_support::kea::{KeaConfig, KeaServer};

const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";
const H12: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id";

fn lease(a: u8) -> KeaLease {
    KeaLease {
        ip_address: Ipv4Addr::new(10, 77, 3, a),
        hw_address: format!("00:0c:00:00:03:{a:02x}"),
        client_id: None,
        valid_lft: 3600,
        cltt: 1_790_000_000,
        subnet_id: 1,
        fqdn_fwd: false,
        fqdn_rev: false,
        hostname: None,
        state: 0,
        user_context: None,
        pool_id: None,
    }
}

fn client(kea: &KeaServer) -> ControlClient<UnixConnector> {
    ControlClient::unix(kea.socket_path())
}

fn first_line(path: &std::path::Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn lease_file_header_has_11_columns_on_2_2_and_12_with_pool_id_on_2_6() {
    let kea = KeaServer::start(KeaConfig::new());
    client(&kea).lease4_add(&lease(1)).unwrap();
    let header = first_line(&kea.lease_file());
    if kea.daemons().kea_2_6() {
        assert_eq!(header, H12);
    } else {
        assert_eq!(header, H11);
    }
    // This crate reads what either wrote.
    let eff = load_effective(&kea.lease_file()).unwrap();
    assert!(eff.errors.is_empty(), "{:?}", eff.errors);
    assert_eq!(
        eff.leases.keys().copied().collect::<Vec<_>>(),
        [Ipv4Addr::new(10, 77, 3, 1)]
    );
}

#[test]
fn duplicate_lease4_add_is_result_1_on_2_2_and_4_on_2_6() {
    let kea = KeaServer::start(KeaConfig::new());
    let c = client(&kea);
    c.lease4_add(&lease(2)).unwrap();
    let raw = kea.command(
        r#"{"command": "lease4-add", "arguments": {"ip-address": "10.77.3.2", "hw-address": "00:0c:00:00:03:02"}}"#,
    );
    let reply: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let result = reply["result"].as_i64().unwrap();
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(text.contains("already exists"), "{raw}");
    assert_eq!(result, if kea.daemons().kea_2_6() { 4 } else { 1 }, "{raw}");
    // The typed client maps both to LeaseExists.
    assert!(matches!(
        c.lease4_add(&lease(2)),
        Err(ControlError::LeaseExists { .. })
    ));
    // Kea 2.6 answers 4 to an address outside every subnet too (2.2: 1): that is no
    // LeaseExists (found here, not in newer-daemons.md; kea-leases mapped every 4 to
    // LeaseExists before).
    let raw = kea.command(
        r#"{"command": "lease4-add", "arguments": {"ip-address": "192.0.2.1", "hw-address": "00:0c:00:00:03:09"}}"#,
    );
    let reply: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        reply["result"].as_i64().unwrap(),
        if kea.daemons().kea_2_6() { 4 } else { 1 },
        "{raw}"
    );
    let mut outside = lease(9);
    outside.ip_address = Ipv4Addr::new(192, 0, 2, 1);
    let r = c.lease4_add(&outside);
    assert!(
        matches!(&r, Err(ControlError::Conflict { text, .. } | ControlError::Failed { text, .. }) if text.contains("does not belong")),
        "{r:?}"
    );
}

#[test]
fn command_sets_differ_libreload_on_2_2_lease4_write_and_config_hash_get_on_2_6() {
    let kea = KeaServer::start(KeaConfig::new());
    let c = client(&kea);
    let cmds = c.list_commands().unwrap();
    let has = |n: &str| cmds.iter().any(|c| c == n);
    let v26 = kea.daemons().kea_2_6();
    assert_eq!(has("lease4-write"), v26, "{cmds:?}");
    assert_eq!(has("config-hash-get"), v26, "{cmds:?}");
    assert_eq!(has("libreload"), !v26, "{cmds:?}");
    c.lease4_add(&lease(3)).unwrap();
    let out = kea.dir().join("written.csv");
    let args = format!(
        r#"{{"filename": {}}}"#,
        serde_json::to_string(&out.to_string_lossy()).unwrap()
    );
    match c.call("lease4-write", Some(&args)) {
        Ok(_) => {
            assert!(v26, "lease4-write worked on Kea 2.2");
            // The written file is a lease file this crate loads, in 2.6's header.
            assert_eq!(first_line(&out), H12);
            let eff = load_effective(&out).unwrap();
            assert!(eff.errors.is_empty(), "{:?}", eff.errors);
            assert_eq!(eff.leases.len(), 1);
        }
        Err(ControlError::Unsupported { command, .. }) => {
            assert!(!v26, "lease4-write unsupported on Kea 2.6");
            assert_eq!(command, "lease4-write");
        }
        Err(e) => panic!("lease4-write: {e:?}"),
    }
    if v26 {
        // 2.6 writes only inside its data directory (found here, not in newer-daemons.md).
        let e = c
            .call(
                "lease4-write",
                Some(r#"{"filename": "/tmp/elsewhere.csv"}"#),
            )
            .unwrap_err();
        assert!(
            matches!(&e, ControlError::Failed { text, .. } if text.contains("supported path")),
            "{e:?}"
        );
    }
}

/// A lease file in the other version's format: 12 columns (with pool_id) for Kea 2.2, 11 for
/// Kea 2.6. Kea loads it, and its LFC rewrites it in its own format.
#[test]
fn loads_the_other_versions_lease_file_and_lfc_converts_it() {
    let v26 = std::env::var("DNSDHCP_TEST_DAEMONS").as_deref() == Ok("trixie");
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("kea-leases4.csv");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let e = now + 86_400;
    let (header, tail) = if v26 { (H11, "") } else { (H12, ",0") };
    let mut text = format!("{header}\n");
    for i in 1..=3 {
        text.push_str(&format!(
            "10.77.4.{i},00:0c:00:00:04:{i:02x},,86400,{e},1,0,0,h{i},0,{tail}\n"
        ));
    }
    fs::write(&x, &text).unwrap();
    let expected = load_effective(&x).unwrap();
    assert!(expected.errors.is_empty(), "{:?}", expected.errors);
    assert_eq!(expected.leases.len(), 3);

    let kea = KeaServer::start(KeaConfig::new().data_dir(dir.path()));
    assert_eq!(kea.daemons().kea_2_6(), v26);
    let api = client(&kea).lease4_get_all_paged(10).unwrap();
    let ours: Vec<KeaLease> = expected.leases.values().map(KeaLease::from_lease).collect();
    assert_eq!(ours, api);
    // Kea reports the schema change and converts the file with kea-lfc at start-up.
    let log = fs::read_to_string(kea.dir().join("kea-dhcp4.log")).unwrap();
    assert!(
        log.contains("DHCPSRV_MEMFILE_NEEDS_UPGRADING")
            || log.contains("DHCPSRV_MEMFILE_NEEDS_DOWNGRADING"),
        "{log}"
    );
    let own = if v26 { H12 } else { H11 };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let files: Vec<_> = [Role::Completed, Role::Previous]
            .into_iter()
            .map(|r| r.path_for(&x))
            .filter(|p| p.exists() && !pid_path(&x).exists())
            .collect();
        if let Some(p) = files.first() {
            assert_eq!(first_line(p), own, "{}", p.display());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no LFC output: {:?}\n{log}",
            fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // After the conversion the effective set is unchanged, and Kea still holds it after a
    // restart on the converted files.
    let after = load_effective(&x).unwrap();
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    assert_eq!(
        after
            .leases
            .values()
            .map(KeaLease::from_lease)
            .collect::<Vec<_>>(),
        ours
    );
    let mut kea = kea;
    kea.restart();
    assert_eq!(client(&kea).lease4_get_all_paged(10).unwrap(), ours);
}
