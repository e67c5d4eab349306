//! No input makes the parsers panic: property tests over values files (zone names such as
//! `.` and `""`, odd records), archives (arbitrary bytes, and valid gzip of arbitrary tar
//! bytes) and lease rows. Each input is either accepted or refused with an error.

use std::io::Write;

use proptest::prelude::*;

use dnsdhcp::archive::{self, Limits};
use dnsdhcp::records::{self, SourceFile};

fn zone_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".".to_owned()),
        Just(String::new()),
        Just("..".to_owned()),
        Just("home.arpa".to_owned()),
        Just("1.168.192.in-addr.arpa".to_owned()),
        "[a-z0-9.\\-*_@ ]{0,30}",
        any::<String>(),
    ]
}

fn record() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("router IN A 192.168.1.1".to_owned()),
        Just("@ CNAME x".to_owned()),
        Just(". A 1.2.3.4".to_owned()),
        "[a-z0-9.@* ]{0,12} (IN )?(A|AAAA|CNAME|TXT|MX|SRV|PTR|NS|SOA|CAA|X) [ -~]{0,40}",
        any::<String>(),
    ]
}

/// A zone-file line: directives, records of many types (parentheses and quotes included), noise.
fn zone_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$TTL 3600".to_owned()),
        Just("$ORIGIN sub".to_owned()),
        Just("@ 60 IN SOA ( ns hm 1 2 3 4 5 )".to_owned()),
        "[a-z@*. ]{0,6} [0-9]{0,3} (IN )?(A|AAAA|NS|CNAME|TXT|MX|SRV|PTR|CAA|SOA|NSEC|RRSIG|DNSKEY|DS|HINFO|LOC|APL|SVCB|HTTPS|TYPE65000|WALLET|ZONEMD) [ -~]{0,30}",
        "[()\";\\\\ a-z0-9]{0,20}",
        "[ -~\t]{0,40}",
    ]
}

fn yaml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Entries that end inside an open `(` group or quote; the zone-file scanner of `domain` 0.12
/// indexed past its buffer on these (found by `values_files_never_panic`).
#[test]
fn records_left_open_are_refused_with_the_line() {
    for rec in [
        "a TXT (A",
        "x CAA (0 issue \"ca",
        "n NSEC3PARAM (1 0 0",
        "t TXT \"open",
    ] {
        let text = format!(
            "zones:\n  - name: home.arpa\nstaticRecords:\n  - {}\n",
            yaml_quote(rec)
        );
        let files = vec![SourceFile {
            path: "values.yaml".into(),
            text,
        }];
        let values = records::parse_values(files).expect("the YAML itself is well formed");
        let err = records::validate(&values).expect_err(rec).to_string();
        assert!(
            err.contains("values.yaml:4") && err.contains("never closed"),
            "{rec}: {err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn values_files_never_panic(
        zones in proptest::collection::vec(zone_name(), 0..4),
        recs in proptest::collection::vec(record(), 0..6),
        ttl in prop_oneof![Just(None), any::<i64>().prop_map(Some)],
    ) {
        let mut text = String::from("zones:\n");
        for z in &zones {
            text.push_str(&format!("  - name: {}\n", yaml_quote(z)));
            if let Some(t) = ttl {
                text.push_str(&format!("    defaultTtl: {t}\n"));
            }
        }
        text.push_str("staticRecords:\n");
        for r in &recs {
            text.push_str(&format!("  - {}\n", yaml_quote(r)));
        }
        let files = vec![SourceFile { path: "values.yaml".into(), text }];
        if let Ok(values) = records::parse_values(files) {
            let _ = records::validate(&values);
        }
    }

    #[test]
    fn raw_values_text_never_panics(text in any::<String>()) {
        let files = vec![SourceFile { path: "values.yaml".into(), text }];
        if let Ok(values) = records::parse_values(files) {
            let _ = records::validate(&values);
        }
    }

    #[test]
    fn archive_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar.gz");
        let data = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        } else {
            bytes
        };
        std::fs::write(&p, data).unwrap();
        let report = archive::verify(&p, &Limits::default());
        prop_assert!(!report.ok || report.problems.is_empty());
    }

    /// Zone files as archives carry them, fed in two pieces as they stream by.
    #[test]
    fn zone_files_never_panic(lines in proptest::collection::vec(zone_line(), 0..8), soa in any::<bool>(), cut in 0usize..64) {
        let text = lines.join("\n");
        let mut checker = archive::zone_checker("z.zone", "home.arpa", soa).expect("a valid zone name");
        let (head, tail) = text.as_bytes().split_at(cut.min(text.len()));
        if checker.feed(head).is_ok() && checker.feed(tail).is_ok() {
            let _ = checker.finish();
        }
    }

    #[test]
    fn lease_rows_never_panic(header in "[a-z_,]{0,120}", row in proptest::collection::vec(any::<u8>(), 0..200)) {
        let header = kea_leases::csv::Header::parse(header.as_bytes())
            .unwrap_or_else(|_| kea_leases::csv::Header::parse(
                b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context"
            ).unwrap());
        let _ = kea_leases::csv::parse_row(&header, &row);
    }
}
