//! PTR derivation: the reverse name of an address and the reverse zone that holds it.

use std::net::IpAddr;

use super::rr::{DName, in_zone};

/// The reverse-lookup name of `addr` (`d.c.b.a.in-addr.arpa.` or 32 nibbles `.ip6.arpa.`),
/// built straight in wire form.
pub fn reverse_name(addr: IpAddr) -> DName {
    let mut wire = Vec::with_capacity(72);
    let mut label = |text: &[u8]| {
        wire.push(text.len() as u8);
        wire.extend_from_slice(text);
    };
    match addr {
        IpAddr::V4(v4) => {
            for &o in v4.octets().iter().rev() {
                let digits = [b'0' + o / 100, b'0' + o / 10 % 10, b'0' + o % 10];
                let skip = if o >= 100 {
                    0
                } else if o >= 10 {
                    1
                } else {
                    2
                };
                label(&digits[skip..]);
            }
            label(b"in-addr");
        }
        IpAddr::V6(v6) => {
            for b in v6.octets().iter().rev() {
                label(&[hex(b & 0x0f) as u8]);
                label(&[hex(b >> 4) as u8]);
            }
            label(b"ip6");
        }
    }
    label(b"arpa");
    wire.push(0);
    DName::from_octets(bytes::Bytes::from(wire)).expect("a reverse name is a valid name")
}

fn hex(n: u8) -> char {
    char::from_digit(u32::from(n), 16).expect("a nibble")
}

/// Whether `zone` is a reverse zone on a boundary PTRs are derived into: IPv4 `/8`, `/16`,
/// `/24` (1–3 octet labels under `in-addr.arpa.`) or IPv6 on any nibble boundary from `/4` to
/// `/124` (1–31 nibble labels under `ip6.arpa.`).
pub fn is_reverse_zone(zone: &DName) -> bool {
    let text = zone.to_string().to_ascii_lowercase();
    let labels: Vec<&str> = text.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    if text.ends_with("in-addr.arpa") && n >= 3 {
        let octets = &labels[..n - 2];
        (1..=3).contains(&octets.len())
            && octets
                .iter()
                .all(|l| !l.is_empty() && l.len() <= 3 && l.parse::<u8>().is_ok())
    } else if text.ends_with("ip6.arpa") && n >= 3 {
        let nibbles = &labels[..n - 2];
        (1..=31).contains(&nibbles.len())
            && nibbles
                .iter()
                .all(|l| l.len() == 1 && l.chars().all(|c| c.is_ascii_hexdigit()))
    } else {
        false
    }
}

/// The most specific zone of `zones` (reverse zones only) that contains the reverse name of
/// `addr`, with that reverse name.
pub fn reverse_zone_for(addr: IpAddr, zones: &[DName]) -> Option<(&DName, DName)> {
    let name = reverse_name(addr);
    zones
        .iter()
        .filter(|z| in_zone(&name, z) && is_reverse_zone(z))
        .max_by_key(|z| z.label_count())
        .map(|z| (z, name))
}

/// [`reverse_zone_for`] when every zone of `reverse_zones` is known to be a reverse zone.
pub fn most_specific_reverse_zone(
    addr: IpAddr,
    reverse_zones: &[DName],
) -> Option<(&DName, DName)> {
    let name = reverse_name(addr);
    reverse_zones
        .iter()
        .filter(|z| in_zone(&name, z))
        .max_by_key(|z| z.label_count())
        .map(|z| (z, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::rr::parse_abs_name;

    fn zones(names: &[&str]) -> Vec<DName> {
        names.iter().map(|n| parse_abs_name(n).unwrap()).collect()
    }

    #[test]
    fn ipv4_octet_boundaries_most_specific_wins() {
        let zs = zones(&[
            "home.arpa",
            "192.in-addr.arpa",
            "168.192.in-addr.arpa",
            "1.168.192.in-addr.arpa",
        ]);
        let (z, n) = reverse_zone_for("192.168.1.7".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "1.168.192.in-addr.arpa");
        assert_eq!(n.to_string(), "7.1.168.192.in-addr.arpa");
        let (z, _) = reverse_zone_for("192.168.2.7".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "168.192.in-addr.arpa");
        let (z, _) = reverse_zone_for("192.1.2.7".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "192.in-addr.arpa");
        assert!(reverse_zone_for("10.0.0.1".parse().unwrap(), &zs).is_none());
    }

    #[test]
    fn ipv6_any_nibble_boundary() {
        let zs = zones(&[
            "d.f.ip6.arpa",
            "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
            "1.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        ]);
        let (z, n) = reverse_zone_for("fd00::10".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa");
        assert!(n.to_string().starts_with("0.1.0.0.0.0"));
        let (z, _) = reverse_zone_for("fd00:0:1::5".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "1.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa");
        let (z, _) = reverse_zone_for("fd12::1".parse().unwrap(), &zs).unwrap();
        assert_eq!(z.to_string(), "d.f.ip6.arpa");
    }

    #[test]
    fn non_boundary_zones_are_not_reverse_zones() {
        for z in [
            "0/26.1.168.192.in-addr.arpa",
            "5.1.168.192.in-addr.arpa",
            "in-addr.arpa",
            "x.ip6.arpa",
        ] {
            assert!(!is_reverse_zone(&parse_abs_name(z).unwrap()), "{z}");
        }
    }
}
