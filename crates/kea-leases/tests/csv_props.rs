//! Property tests for the memfile CSV parser: no panic on any input; write → parse → write is
//! the identity, and parsing gives back the leases written.

use std::net::Ipv4Addr;

use kea_leases::csv::{EscapedText, Header, Lease, LeaseFile, LeaseWriter, unescape};
use proptest::prelude::*;

const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";

fn ctx_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        (any::<Vec<u8>>(), "[a-z,&]{1,8}").prop_map(|(bytes, key)| {
            // Kea's rendering: non-printable bytes as \u00XX.
            let mut v = String::new();
            for b in bytes {
                match b {
                    b'"' | b'\\' => v.push_str(&format!("\\u{b:04x}")),
                    0x20..=0x7e => v.push(char::from(b)),
                    _ => v.push_str(&format!("\\u{b:04x}")),
                }
            }
            format!("{{ \"{key}\": \"{v}\" }}").into_bytes()
        }),
    ]
}

prop_compose! {
    fn lease_strategy()(
        addr in any::<u32>(),
        hwaddr in proptest::collection::vec(any::<u8>(), 0..=20),
        client_id in prop_oneof![Just(Vec::new()), proptest::collection::vec(any::<u8>(), 2..=40)],
        valid in any::<u32>(),
        expire in any::<u64>(),
        subnet in any::<u32>(),
        fwd in any::<bool>(),
        rev in any::<bool>(),
        hostname in proptest::collection::vec(any::<u8>(), 0..40),
        state in 0u32..5,
        ctx in ctx_strategy(),
        pool in any::<u32>(),
    ) -> Lease {
        let state = if hwaddr.is_empty() && client_id.is_empty() { 1 } else { state };
        Lease {
            address: Ipv4Addr::from(addr),
            hwaddr,
            client_id,
            valid_lifetime: valid,
            expire,
            subnet_id: subnet,
            fqdn_fwd: fwd,
            fqdn_rev: rev,
            hostname: EscapedText::encode(&hostname),
            state,
            user_context: EscapedText::encode(&ctx),
            pool_id: pool,
            extra: Vec::new(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_never_panic(bytes in any::<Vec<u8>>()) {
        let _ = LeaseFile::parse(&bytes, "fuzz");
        let mut with_header = H11.as_bytes().to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = LeaseFile::parse(&with_header, "fuzz");
    }

    #[test]
    fn row_like_garbage_never_panics(rows in proptest::collection::vec("[0-9a-f:.,&#x{}\" \\\\-]{0,60}", 0..20)) {
        let text = format!("{H11}{}", rows.join("\n"));
        if let Ok(f) = LeaseFile::parse(text.as_bytes(), "fuzz") {
            // Whatever parsed writes back and parses to the same leases.
            let again = LeaseFile::parse(&f.to_bytes(), "again").unwrap();
            prop_assert!(again.errors.is_empty());
            let a: Vec<_> = f.records.iter().map(|r| &r.lease).collect();
            let b: Vec<_> = again.records.iter().map(|r| &r.lease).collect();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn write_parse_is_identity(leases in proptest::collection::vec(lease_strategy(), 0..30), cols in 9usize..=12) {
        let header = Header::with_known_columns(cols);
        let leases: Vec<Lease> = leases
            .into_iter()
            .map(|mut l| {
                // Columns a shorter header lacks read back as their defaults.
                if cols <= 9 { l.state = 0; if l.hwaddr.is_empty() && l.client_id.is_empty() { l.hwaddr = vec![1]; } }
                if cols <= 10 { l.user_context = EscapedText::default(); }
                if cols <= 11 { l.pool_id = 0; }
                l
            })
            .collect();
        let mut w = LeaseWriter::new(Vec::new(), header.clone()).unwrap();
        for l in &leases { w.write(l).unwrap(); }
        let bytes = w.finish().unwrap();
        let parsed = LeaseFile::parse(&bytes, "prop").unwrap();
        prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        prop_assert_eq!(parsed.header.as_ref(), Some(&header));
        let got: Vec<Lease> = parsed.records.iter().map(|r| r.lease.clone()).collect();
        prop_assert_eq!(&got, &leases);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn escaping_round_trips(bytes in any::<Vec<u8>>()) {
        let e = EscapedText::encode(&bytes);
        prop_assert!(!e.stored().contains(&b','));
        prop_assert!(!e.stored().contains(&b'\n'));
        prop_assert_eq!(unescape(e.stored()), bytes);
    }
}
