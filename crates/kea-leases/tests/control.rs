//! The control client against a real kea-dhcp4: a custom byte-stream connector, typed errors.

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use kea_leases::control::{Connector, ControlClient, ControlError, KeaLease};
use serde_json::value::RawValue;
use test_support::kea::{KeaConfig, KeaServer};

/// A stream that hands out at most 5 bytes per read, like a slow exec stream.
struct Trickle(UnixStream);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(5);
        self.0.read(&mut buf[..n])
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

struct TrickleConnector(PathBuf);

impl Connector for TrickleConnector {
    type Stream = Trickle;
    fn connect(&self) -> io::Result<Trickle> {
        UnixStream::connect(&self.0).map(Trickle)
    }
}

fn lease(a: u8) -> KeaLease {
    KeaLease {
        ip_address: Ipv4Addr::new(10, 77, 2, a),
        hw_address: format!("00:0c:00:00:02:{a:02x}"),
        client_id: None,
        valid_lft: 3600,
        cltt: 1_790_000_000,
        subnet_id: 1,
        fqdn_fwd: false,
        fqdn_rev: false,
        hostname: Some(RawValue::from_string(format!("\"MixedCase-{a}\"")).unwrap()),
        state: 0,
        user_context: None,
        pool_id: None,
    }
}

#[test]
fn generic_stream_and_typed_errors() {
    let kea = KeaServer::start(KeaConfig::new());
    let c = ControlClient::new(TrickleConnector(kea.socket_path()));
    assert!(c.list_commands().unwrap().iter().any(|c| c == "lease4-del"));
    assert!(c.lease4_get_page(None, 10).unwrap().is_empty());

    // lease4-write does not exist in Kea 2.2: result 2 (2.6 has it: kea_versions.rs).
    if !kea.daemons().kea_2_6() {
        match c.call("lease4-write", Some(r#"{"filename": "/tmp/x"}"#)) {
            Err(ControlError::Unsupported { command, .. }) => assert_eq!(command, "lease4-write"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
    // Update of a missing lease without force-create fails; with it, it creates.
    // (Kea 2.2: result 1; 2.6: result 4, a conflict "a retry might succeed" — found here, not
    // in newer-daemons.md.)
    let missing = c.lease4_update(&lease(1), false);
    if kea.daemons().kea_2_6() {
        assert!(
            matches!(missing, Err(ControlError::Conflict { .. })),
            "{missing:?}"
        );
    } else {
        assert!(
            matches!(missing, Err(ControlError::Failed { .. })),
            "{missing:?}"
        );
    }
    c.lease4_update(&lease(1), true).unwrap();
    c.lease4_add(&lease(2)).unwrap();
    assert!(matches!(
        c.lease4_add(&lease(2)),
        Err(ControlError::LeaseExists { .. })
    ));
    // An address outside every subnet is refused.
    let mut outside = lease(3);
    outside.ip_address = Ipv4Addr::new(192, 0, 2, 1);
    // (Kea 2.2: result 1; 2.6: result 4, which is not "lease exists": kea_versions.rs.)
    let r = c.lease4_add(&outside);
    if kea.daemons().kea_2_6() {
        assert!(matches!(r, Err(ControlError::Conflict { .. })), "{r:?}");
    } else {
        assert!(matches!(r, Err(ControlError::Failed { .. })), "{r:?}");
    }

    // Kea lower-cases hostnames (ASCII) as it stores them.
    let got = c.lease4_get_page(None, 1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].hostname.as_ref().unwrap().get(), "\"mixedcase-1\"");
    let next = c.lease4_get_page(Some(got[0].ip_address), 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ip_address, Ipv4Addr::new(10, 77, 2, 2));

    assert!(c.lease4_del(Ipv4Addr::new(10, 77, 2, 1)).unwrap());
    assert!(!c.lease4_del(Ipv4Addr::new(10, 77, 2, 1)).unwrap());
    c.lease4_wipe(Some(1)).unwrap();
    c.lease4_wipe(None).unwrap();
    assert!(c.lease4_get_all_paged(10).unwrap().is_empty());
    c.config_reload().unwrap();
    assert!(c.config_get().unwrap().get().contains("lease-database"));
}

#[test]
fn declined_and_expired_leases_round_trip_through_the_api() {
    let kea = KeaServer::start(KeaConfig::new());
    let c = ControlClient::unix(kea.socket_path());
    let mut declined = lease(20);
    declined.hw_address = String::new();
    declined.hostname = Some(RawValue::from_string("\"\"".into()).unwrap());
    declined.state = 1;
    let mut reclaimed = lease(21);
    reclaimed.state = 2;
    reclaimed.hostname = Some(RawValue::from_string("\"gone\"".into()).unwrap());
    for l in [&declined, &reclaimed] {
        if let Err(e) = c.lease4_update(l, true) {
            panic!("{} (state {}): {e}", l.ip_address, l.state);
        }
    }
    let got = c.lease4_get_all_paged(10).unwrap();
    assert_eq!(got, vec![declined, reclaimed]);
}
