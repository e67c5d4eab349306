//! Resource records in one canonical form, parsed with NLnet Labs' `domain`.
//!
//! Both sides of a comparison (the values, and Knot's presentation format from `zone-read`) are
//! parsed into the same representation: lowercase absolute owner, type, and the rdata in RFC 4034
//! canonical wire form. Two records are the same record exactly when those are equal.

use bytes::Bytes;
use domain::base::iana::{Class, Rtype};
use domain::base::name::{Name, ToName};
use domain::base::rdata::ComposeRecordData;
use domain::base::zonefile_fmt::{DisplayKind, ZonefileFmt};
use domain::zonefile::inplace::{Entry, Zonefile};

/// An absolute domain name.
pub type DName = Name<Bytes>;

/// Largest TTL (RFC 2181, section 8).
pub const MAX_TTL: u32 = 2_147_483_647;

/// A record parsed into canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRr {
    /// Absolute owner, lowercase.
    pub owner: DName,
    /// Record type.
    pub rtype: Rtype,
    /// TTL in seconds.
    pub ttl: u32,
    /// Rdata in presentation format with absolute names (as sent to Knot).
    pub data: String,
    /// Rdata in canonical wire form (what comparisons use).
    pub wire: Vec<u8>,
}

/// Whether `name` is `zone` or a name below it (labels compared without regard to ASCII case).
///
/// `domain`'s `Name::ends_with` walks both names' labels from the back, and an uncompressed
/// name finds each previous label by scanning from its start: quadratic in the label count,
/// and an IPv6 reverse name has 34 labels. This compares the wire forms' tails and walks
/// `name`'s labels once, to see that the tail starts at a label.
pub fn in_zone(name: &DName, zone: &DName) -> bool {
    let (name, zone) = (name.as_slice(), zone.as_slice());
    let Some(start) = name.len().checked_sub(zone.len()) else {
        return false;
    };
    if !name[start..].eq_ignore_ascii_case(zone) {
        return false;
    }
    let mut label = 0;
    while label < start {
        label += 1 + usize::from(name[label]);
    }
    label == start
}

/// `name` as text with its trailing dot (`.` for the root).
pub fn fqdn(name: &impl ToName) -> String {
    use std::fmt::Write as _;
    if let Some(text) = name.as_flat_slice().and_then(plain_fqdn) {
        return text;
    }
    let mut s = String::with_capacity(name.compose_len() as usize + 1);
    for label in name.iter_labels() {
        if label.is_root() {
            continue;
        }
        // Letters, digits, `-`, `_` and `*` print as themselves; anything else is escaped.
        let plain = label
            .as_slice()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'));
        match std::str::from_utf8(label.as_slice()) {
            Ok(text) if plain => {
                s.push_str(text);
                s.push('.');
            }
            _ => {
                let _ = write!(s, "{label}.");
            }
        }
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The text of an absolute name's wire form when every label is plain (letters, digits, `-`,
/// `_`, `*`: printed as themselves); `None` otherwise.
fn plain_fqdn(wire: &[u8]) -> Option<String> {
    let mut text = String::with_capacity(wire.len());
    push_plain_fqdn(wire, &mut text).then_some(text)
}

/// Appends [`plain_fqdn`]'s text to `out`; false (with `out` partly written) if the name is not
/// plain or the wire form is malformed.
fn push_plain_fqdn(wire: &[u8], out: &mut String) -> bool {
    if wire == [0] {
        out.push('.');
        return true;
    }
    let mut i = 0;
    while i < wire.len() {
        let n = usize::from(wire[i]);
        if n == 0 {
            return i + 1 == wire.len();
        }
        let Some(label) = wire.get(i + 1..i + 1 + n) else {
            return false;
        };
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
        {
            return false;
        }
        // Plain labels are ASCII: copied whole, not char by char.
        out.push_str(std::str::from_utf8(label).expect("ASCII"));
        out.push('.');
        i += 1 + n;
    }
    false
}

/// [`fqdn`] written into `out` (cleared first), reusing its allocation.
pub fn fqdn_into(name: &impl ToName, out: &mut String) {
    out.clear();
    if let Some(wire) = name.as_flat_slice()
        && push_plain_fqdn(wire, out)
    {
        return;
    }
    out.clear();
    out.push_str(&fqdn(name));
}

/// Parses an absolute or relative name; a name without a trailing dot is taken as absolute.
pub fn parse_abs_name(text: &str) -> Result<DName, String> {
    let t = text.trim();
    let t = if t.ends_with('.') {
        t.to_owned()
    } else {
        format!("{t}.")
    };
    let n: Name<Vec<u8>> = t
        .parse()
        .map_err(|e| format!("invalid domain name `{text}`: {e}"))?;
    Ok(n.to_canonical_name::<Bytes>())
}

/// Parses one record `text` (zone-file syntax: `owner [ttl] [class] TYPE rdata`), with `origin`
/// for relative names and `default_ttl` when none is given.
pub fn parse_rr(origin: &DName, default_ttl: u32, text: &str) -> Result<ParsedRr, String> {
    if let Some(rr) = parse_simple_address(origin, default_ttl, text) {
        return Ok(rr);
    }
    check_grouping(text)?;
    let mut zf = Zonefile::with_capacity(text.len() + 24);
    zf.extend_from_slice(format!("$TTL {default_ttl}\n").as_bytes());
    zf.extend_from_slice(text.as_bytes());
    zf.extend_from_slice(b"\n");
    zf.set_origin(origin.clone());
    zf.set_default_class(Class::IN);
    let rec = match zf.next_entry() {
        Ok(Some(Entry::Record(rec))) => rec,
        Ok(Some(Entry::Include { .. })) => return Err("$INCLUDE is not allowed here".into()),
        Ok(None) => return Err("empty record".into()),
        Err(e) => return Err(clean_error(&e.to_string())),
    };
    match zf.next_entry() {
        Ok(None) => {}
        _ => return Err("more than one record in one entry".into()),
    }
    if rec.class() != Class::IN {
        return Err(format!("class {} is not supported (only IN)", rec.class()));
    }
    let owner = rec.owner().to_canonical_name::<Bytes>();
    let rtype = rec.rtype();
    let ttl = rec.ttl().as_secs();
    let data = rec.data();
    let mut wire = Vec::new();
    data.compose_canonical_rdata(&mut wire)
        .map_err(|_| "record data too long".to_string())?;
    let data = data.display_zonefile(DisplayKind::Simple).to_string();
    Ok(ParsedRr {
        owner,
        rtype,
        ttl,
        data,
        wire,
    })
}

/// The common case without the zone-file scanner: `owner [ttl] [IN] A|AAAA address` with a plain
/// relative owner (or `@`). `None` for anything else (the full parser then decides).
fn parse_simple_address(origin: &DName, default_ttl: u32, text: &str) -> Option<ParsedRr> {
    if text.starts_with(char::is_whitespace) || text.contains(['\\', '"', '(', ')', ';', '$']) {
        return None;
    }
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (&owner, rest) = tokens.split_first()?;
    let (ttl, rest) = match rest.first() {
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => (t.parse::<u32>().ok()?, &rest[1..]),
        _ => (default_ttl, rest),
    };
    let rest = match rest.first() {
        Some(c) if c.eq_ignore_ascii_case("IN") => &rest[1..],
        _ => rest,
    };
    let [rtype, data] = rest else {
        return None;
    };
    let (rtype, wire, data) = if rtype.eq_ignore_ascii_case("A") {
        let a: std::net::Ipv4Addr = data.parse().ok()?;
        (Rtype::A, a.octets().to_vec(), a.to_string())
    } else if rtype.eq_ignore_ascii_case("AAAA") {
        let a: std::net::Ipv6Addr = data.parse().ok()?;
        (Rtype::AAAA, a.octets().to_vec(), a.to_string())
    } else {
        return None;
    };
    let owner = if owner == "@" {
        origin.clone()
    } else if !owner.ends_with('.')
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
    {
        relative_name(owner, origin)?
    } else {
        return None;
    };
    Some(ParsedRr {
        owner,
        rtype,
        ttl,
        data,
        wire,
    })
}

/// `owner` (plain labels: letters, digits, `-`, `_`, `*`) below `origin`, lowercase, built
/// straight in wire form; `None` when a label is empty or too long, or the name too long.
fn relative_name(owner: &str, origin: &DName) -> Option<DName> {
    let mut wire = Vec::with_capacity(owner.len() + 1 + origin.as_slice().len());
    for label in owner.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.extend_from_slice(origin.as_slice());
    Name::from_octets(Bytes::from(wire)).ok()
}

/// Refuses an entry whose parentheses or double quotes are not closed, before the zone-file
/// scanner sees it: `domain`'s in-place scanner (0.12) indexes past its buffer when an entry ends
/// inside an open `(` group, so such text must never reach it. Follows RFC 1035 §5.1: `\`
/// escapes the next character, `;` starts a comment outside quotes, and `(`/`)` count only
/// outside quotes.
fn check_grouping(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                bytes.next();
            }
            b'"' => quoted = !quoted,
            _ if quoted => {}
            b';' => {
                for c in bytes.by_ref() {
                    if c == b'\n' {
                        break;
                    }
                }
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return Err("unbalanced parentheses: `)` without `(`".into()),
            b')' => depth -= 1,
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated quoted string: a `\"` is never closed".into());
    }
    if depth > 0 {
        return Err("unbalanced parentheses: a `(` is never closed".into());
    }
    Ok(())
}

fn clean_error(s: &str) -> String {
    // domain reports positions within the synthetic text; they mean nothing to the user.
    match s.split_once(" at line") {
        Some((head, _)) => head.to_owned(),
        None => s.to_owned(),
    }
}

/// Parses a record as Knot presents it (absolute owner, TTL, type name, rdata text).
pub fn parse_knot_rr(owner: &str, ttl: u32, rtype: &str, data: &str) -> Result<ParsedRr, String> {
    let line = format!("{owner} {ttl} IN {rtype} {data}");
    parse_rr(&Name::root_bytes(), ttl, &line)
}

/// The canonical wire rdata of `data` as Knot presents it, for the common types whose
/// presentation is simple (A, AAAA, and single absolute names without escapes: PTR, CNAME, NS,
/// DNAME). `None` means: use the full parser. Gives the same bytes as [`parse_rr`]'s `wire`.
pub fn fast_canonical_rdata(rtype: Rtype, data: &str) -> Option<Vec<u8>> {
    let mut wire = Vec::new();
    fast_canonical_rdata_into(rtype, data, &mut wire).then_some(wire)
}

/// [`fast_canonical_rdata`] into a reused buffer: `true` when `wire` now holds the rdata.
pub fn fast_canonical_rdata_into(rtype: Rtype, data: &str, wire: &mut Vec<u8>) -> bool {
    wire.clear();
    match rtype {
        Rtype::A => data
            .parse::<std::net::Ipv4Addr>()
            .map(|a| wire.extend_from_slice(&a.octets()))
            .is_ok(),
        Rtype::AAAA => data
            .parse::<std::net::Ipv6Addr>()
            .map(|a| wire.extend_from_slice(&a.octets()))
            .is_ok(),
        Rtype::PTR | Rtype::CNAME | Rtype::NS | Rtype::DNAME => canonical_name_wire(data, wire),
        Rtype::TXT => txt_wire(data, wire),
        _ => false,
    }
}

/// Wire form of TXT presentation made of quoted strings without escapes; `false` otherwise.
fn txt_wire(text: &str, wire: &mut Vec<u8>) -> bool {
    if text.contains('\\') {
        return false;
    }
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix('"') else {
            return false;
        };
        let Some(end) = body.find('"') else {
            return false;
        };
        let s = &body[..end];
        if s.len() > 255 {
            return false;
        }
        wire.push(s.len() as u8);
        wire.extend_from_slice(s.as_bytes());
        rest = body[end + 1..].trim_start();
    }
    !wire.is_empty()
}

/// Lowercase wire form of an absolute name written without escapes; `false` otherwise.
fn canonical_name_wire(text: &str, wire: &mut Vec<u8>) -> bool {
    let Some(body) = text.strip_suffix('.') else {
        return false;
    };
    if body.is_empty() || text.len() > 254 || text.contains(['\\', '"', ' ', '\t', '(', ';']) {
        return false;
    }
    for label in body.split('.') {
        if label.is_empty() || label.len() > 63 {
            wire.clear();
            return false;
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    true
}

/// The canonical wire form of an already canonical (lowercase) name.
pub fn name_wire(name: &DName) -> Vec<u8> {
    name.as_slice().to_vec()
}

/// Types a static record may not have: managed by Knot itself (SOA, DNSSEC) or not zone data.
pub fn forbidden_type(rtype: Rtype) -> bool {
    matches!(
        rtype,
        Rtype::SOA
            | Rtype::RRSIG
            | Rtype::NSEC
            | Rtype::NSEC3
            | Rtype::NSEC3PARAM
            | Rtype::DNSKEY
            | Rtype::CDS
            | Rtype::CDNSKEY
            | Rtype::ZONEMD
            | Rtype::OPT
            | Rtype::TSIG
            | Rtype::TKEY
            | Rtype::ANY
            | Rtype::AXFR
            | Rtype::IXFR
    )
}

/// DNSSEC types that may sit beside a CNAME and that the tool never touches.
pub fn dnssec_type(rtype: Rtype) -> bool {
    matches!(
        rtype,
        Rtype::RRSIG
            | Rtype::NSEC
            | Rtype::NSEC3
            | Rtype::NSEC3PARAM
            | Rtype::DNSKEY
            | Rtype::CDS
            | Rtype::CDNSKEY
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_zone_agrees_with_domains_ends_with() {
        let names = [
            ".",
            "arpa.",
            "ip6.arpa.",
            "8.b.d.0.1.0.0.2.ip6.arpa.",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "10.in-addr.arpa.",
            "0.10.in-addr.arpa.",
            "110.in-addr.arpa.",
            "a.10.in-addr.arpa.",
            "home.arpa.",
            "HOME.Arpa.",
            "nas.home.arpa.",
            "xhome.arpa.",
            "x.home.arpa.",
            "home.arpa.home.arpa.",
            "\\.home.arpa.",
            "a\\.home.arpa.",
            "\\003abc.arpa.",
        ];
        let parsed: Vec<DName> = names.iter().map(|n| parse_abs_name(n).unwrap()).collect();
        for name in &parsed {
            for zone in &parsed {
                assert_eq!(
                    in_zone(name, zone),
                    name.ends_with(zone),
                    "{name} in {zone}"
                );
            }
        }
        assert!(in_zone(&parsed[4], &parsed[3]));
        assert!(
            !in_zone(&parsed[12], &parsed[9]),
            "xhome.arpa. is not in home.arpa."
        );
    }

    fn zone() -> DName {
        parse_abs_name("home.arpa").unwrap()
    }

    #[test]
    fn open_groups_and_quotes_are_refused_before_the_scanner() {
        // Each of these once made domain's in-place scanner index past its buffer.
        for (text, want) in [
            ("a TXT (A", "`(` is never closed"),
            ("a TXT ( A B", "`(` is never closed"),
            ("a TXT A (", "`(` is never closed"),
            ("a TXT (\"A\"", "`(` is never closed"),
            ("a TXT (\\065", "`(` is never closed"),
            ("a TXT \"A", "`\"` is never closed"),
            ("a TXT A)", "`)` without `(`"),
        ] {
            let err = parse_rr(&zone(), 60, text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        // Grouping characters that are quoted, escaped or commented out do not count.
        for text in [
            "a TXT \"(\"",
            "a TXT \\(",
            "a TXT ( x ; ) not closing\n)",
            "a TXT ( \"x)\" )",
        ] {
            assert!(parse_rr(&zone(), 60, text).is_ok(), "{text}");
        }
    }

    #[test]
    fn plain_names_print_from_their_wire_form_and_others_take_the_escaping_path() {
        for text in [
            ".",
            "a.",
            "www.example.com.",
            "_dmarc.x-y.*.z9.",
            "UPPER.case.",
        ] {
            // (Parsing lowercases.)
            let text = &text.to_ascii_lowercase();
            let name = parse_abs_name(text).unwrap();
            assert_eq!(
                plain_fqdn(name.as_slice()).as_deref(),
                Some(&text[..]),
                "{text}"
            );
            assert_eq!(fqdn(&name), *text);
            let mut out = String::from("left over");
            fqdn_into(&name, &mut out);
            assert_eq!(out, *text);
        }
        for text in ["a\\.b.", "sp\\032ace.", "\\195\\169t\\195\\169."] {
            let name = parse_abs_name(text).unwrap();
            assert_eq!(plain_fqdn(name.as_slice()), None, "{text}");
            assert_eq!(fqdn(&name), format!("{name}."));
            let mut out = String::from("left over");
            fqdn_into(&name, &mut out);
            assert_eq!(out, fqdn(&name));
        }
        // Malformed wire forms are refused, never read past their end.
        for wire in [&b""[..], b"\x01a", b"\x05ab\x00", b"\x01a\x00\x00"] {
            assert_eq!(plain_fqdn(wire), None, "{wire:?}");
        }
    }

    #[test]
    fn relative_and_absolute_names_compare_equal() {
        let a = parse_rr(&zone(), 3600, "@ IN MX 10 mail").unwrap();
        let b = parse_knot_rr("home.arpa.", 3600, "MX", "10 MAIL.home.arpa.").unwrap();
        assert_eq!(a.owner, b.owner);
        assert_eq!(a.wire, b.wire);
        assert_eq!(a.data, "10 mail.home.arpa.");
        assert_eq!(fqdn(&a.owner), "home.arpa.");
    }

    #[test]
    fn default_ttl_class_and_ttl_order() {
        let a = parse_rr(&zone(), 1234, "router A 192.168.1.1").unwrap();
        assert_eq!(a.ttl, 1234);
        let b = parse_rr(&zone(), 1234, "router IN 60 A 192.168.1.1").unwrap();
        assert_eq!(b.ttl, 60);
        assert_eq!(a.wire, b.wire);
        assert_eq!(fqdn(&a.owner), "router.home.arpa.");
    }

    #[test]
    fn txt_and_aaaa_forms() {
        let a = parse_rr(&zone(), 1, r#"t TXT "a b" c"#).unwrap();
        let b = parse_knot_rr("t.home.arpa.", 1, "TXT", r#""a b" "c""#).unwrap();
        assert_eq!(a.wire, b.wire);
        let c = parse_rr(&zone(), 1, "x AAAA fd00:0::10").unwrap();
        assert_eq!(c.data, "fd00::10");
    }

    #[test]
    fn fast_path_matches_the_parser() {
        for (t, d) in [
            ("A", "192.168.1.1"),
            ("AAAA", "fd00::10"),
            ("AAAA", "2001:db8:0:0:1::1"),
            ("PTR", "Router.Home.arpa."),
            ("CNAME", "x.y."),
            ("NS", "ns1.home.arpa."),
            ("TXT", "\"a b\" \"c\""),
            ("TXT", "\"\""),
        ] {
            let rtype: Rtype = t.parse().unwrap();
            let full = parse_knot_rr("a.home.arpa.", 1, t, d).unwrap();
            assert_eq!(
                fast_canonical_rdata(rtype, d).unwrap(),
                full.wire,
                "{t} {d}"
            );
        }
        assert!(fast_canonical_rdata(Rtype::PTR, "a\\.b.c.").is_none());
        assert!(fast_canonical_rdata(Rtype::MX, "10 a.b.").is_none());
    }

    #[test]
    fn simple_address_path_matches_the_scanner() {
        for text in [
            "router IN A 192.168.1.1",
            "Router 60 IN A 192.168.1.1",
            "@ AAAA fd00:0:0::10",
            "a.b in 5 aaaa 2001:db8::1",
            "*.wild A 10.0.0.1",
        ] {
            let fast = parse_simple_address(&zone(), 77, text);
            // The scanner alone (what parse_rr does when the fast path declines).
            let full = {
                let mut zf = Zonefile::new();
                zf.extend_from_slice(format!("$TTL 77\n{text}\n").as_bytes());
                zf.set_origin(zone());
                zf.set_default_class(Class::IN);
                let Ok(Some(Entry::Record(rec))) = zf.next_entry() else {
                    panic!("{text}")
                };
                let mut wire = Vec::new();
                rec.data().compose_canonical_rdata(&mut wire).unwrap();
                (
                    rec.owner().to_canonical_name::<Bytes>(),
                    rec.ttl().as_secs(),
                    wire,
                )
            };
            if text.starts_with("a.b in 5") {
                // "in 5": class then TTL; the fast path leaves that order to the scanner.
                assert!(fast.is_none() || fast.as_ref().unwrap().ttl == 5);
                continue;
            }
            let fast = fast.unwrap_or_else(|| panic!("fast path declined {text}"));
            assert_eq!((fast.owner, fast.ttl, fast.wire), full, "{text}");
        }
        assert!(parse_simple_address(&zone(), 1, "x A 1.2.3.4 ; c").is_none());
        assert!(parse_simple_address(&zone(), 1, " x A 1.2.3.4").is_none());
    }

    #[test]
    fn bad_rdata_is_an_error() {
        assert!(parse_rr(&zone(), 1, "x A 300.1.1.1").is_err());
        assert!(parse_rr(&zone(), 1, "x A 1.2.3.4\ny A 1.2.3.4").is_err());
        assert!(parse_rr(&zone(), 1, "x BOGUS 1").is_err());
    }
}
