//! `dnsdhcp values convert`: values written for the original chart (`segments[]`) become values
//! this chart and the `records` commands read, with every unmapped setting as a comment; the
//! converted static records are applied into a real `knotd`.

use std::fs;
use std::process::Command;

use dnsdhcp::records::{self, ApplyOptions};
use dnsdhcp::target::LocalTarget;
use test_support::knot::KnotServer;

/// The original chart's values layout (its values.yaml at 092b784, with records and leases).
const ORIGINAL: &str = r#"global:
  namespace: dns-dhcp
  storage:
    className: "local-path"
  images:
    knot: cznic/knot:latest
services:
  dns:
    enabled: true
stork:
  enabled: true
segments:
  - name: "128"
    domain: seg128.test
    ipv4:
      network: 192.0.2.0/24
      dns: 192.0.2.5
      dhcp: 192.0.2.5
      gateway: 192.0.2.1
      dhcpRange:
        start: 192.0.2.100
        end: 192.0.2.200
    ipv6:
      network: fd00:128::/64
      dhcpRange:
        start: fd00:128::1000
        end: fd00:128::2000
    upstream:
      - 1.1.1.1
      - 8.8.8.8
    staticRecords:
      - "nas IN A 192.0.2.10"
      - "nas IN AAAA fd00:128::10"
      - "www IN CNAME nas"
      - "garbage"
    staticLeases:
      - macAddress: "02:00:00:00:00:10"
        address: 192.0.2.10
        hostname: nas
"#;

fn convert(path: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsdhcp"))
        .args(["values", "convert", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn values_convert_maps_segments_and_comments_every_unmapped_setting() {
    let work = tempfile::tempdir().unwrap();
    let old = work.path().join("old.yaml");
    fs::write(&old, ORIGINAL).unwrap();
    let yaml = convert(&old);
    for want in [
        "id: 128",
        "pools: [\"192.0.2.100 - 192.0.2.200\"]",
        "routers: [\"192.0.2.1\"]",
        "dnsServers: [\"192.0.2.5\"]",
        "domain: \"seg128.test\"",
        "hwAddress: \"02:00:00:00:00:10\"",
        "ipAddress: \"192.0.2.10\"",
        "forwarders: [\"1.1.1.1\", \"8.8.8.8\"]",
        "storageClass: \"local-path\"",
        "generatedPrefix: \"myhost\"",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in\n{yaml}");
    }
    // Every setting without a counterpart is a comment naming it.
    for unmapped in [
        "#   global.namespace = ",
        "#   global.images.knot = ",
        "#   stork.enabled = ",
        "#   services.dns.enabled = ",
        "#   segments[0].ipv4.dhcp = ",
        "#   segments[0].ipv6.dhcpRange.start = ",
        "#   segments[0].staticRecords[3] = \"garbage\"",
    ] {
        assert!(yaml.contains(unmapped), "missing {unmapped:?} in\n{yaml}");
    }
    // Nothing mapped is listed as unmapped.
    assert!(!yaml.contains("#   segments[0].domain"), "{yaml}");
    assert!(!yaml.contains("#   segments[0].staticLeases"), "{yaml}");

    // The converted values are read by `records` and give the same records as the old ones.
    let new = work.path().join("new.yaml");
    fs::write(&new, &yaml).unwrap();
    let knot = KnotServer::start(&[
        ("seg128.test", &zone("seg128.test")),
        ("2.0.192.in-addr.arpa", &zone("2.0.192.in-addr.arpa")),
        (
            "0.0.0.0.0.0.0.0.8.2.1.0.0.0.d.f.ip6.arpa",
            &zone("0.0.0.0.0.0.0.0.8.2.1.0.0.0.d.f.ip6.arpa"),
        ),
    ]);
    let t = LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        ..LocalTarget::default()
    };
    let mut client = t.knot().unwrap();
    let from_new = records::load_values(&[&new]).expect("converted values load");
    let outcome = records::apply(&mut client, &from_new, &ApplyOptions::default()).unwrap();
    assert_eq!(outcome.committed.len(), 3, "{:?}", outcome.committed);
    // The original values (minus the record the old chart could not have loaded either) plan
    // nothing more: the same records.
    fs::write(&old, ORIGINAL.replace("      - \"garbage\"\n", "")).unwrap();
    let from_old = records::load_values(&[&old]).unwrap();
    let (_, plan) = records::plan_from_knot(&mut client, &from_old).unwrap();
    let changes: usize = plan.zones.iter().map(|z| z.changes.len()).sum();
    assert_eq!(changes, 0, "{}", records::render_plan(&plan, false));
    drop(client); // Knot 3.2 serves one control connection at a time
    let ptr = knot.knotc_ok(&["zone-read", "2.0.192.in-addr.arpa", "10", "PTR"]);
    assert!(ptr.contains("nas.seg128.test."), "{ptr}");
}

fn zone(name: &str) -> String {
    format!(
        "$TTL 3600\n@ IN SOA ns1.seg128.test. hostmaster.seg128.test. 1 3600 900 604800 300\n@ IN NS ns1.seg128.test.\n; {name}\n"
    )
}
