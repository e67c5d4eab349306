//! Zone-file facts (SOA serial, record count), read with [`crate::zonefile`].

use std::path::Path;

use crate::records::rr::{DName, parse_abs_name};
use crate::zonefile::ZoneChecker;

/// A zone file that does not parse or lacks a proper SOA; names the file and, when known, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ZoneFileError {
    /// The file (archive member or path on disk).
    pub file: String,
    /// The 1-based line of the problem, when it is tied to one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Normalise a zone name to lower case with exactly one trailing dot (`Example.COM` -> `example.com.`).
pub(crate) fn normalize_zone_name(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

/// Parse `data` as the zone file of `zone` and return its SOA serial and record count.
///
/// `file` only labels errors. Relative names are completed with `zone` as origin. Every record
/// is checked ([`crate::zonefile::ZoneReader`]: owner inside the zone, class, TTL, rdata of any
/// type in Knot's table); the file must hold exactly one SOA record, at the apex; `$INCLUDE` is
/// refused (an archived zone must stand alone).
pub fn zone_facts(file: &str, zone: &str, data: &[u8]) -> Result<(u32, u64), ZoneFileError> {
    zone_summary(file, zone, data).map(|s| (s.serial, s.records))
}

pub use crate::zonefile::{NewerType, ZoneSummary};

/// [`zone_facts`], also naming the records Knot could not load back from the file.
pub fn zone_summary(file: &str, zone: &str, data: &[u8]) -> Result<ZoneSummary, ZoneFileError> {
    summary_with(file, zone, data, true)
}

/// [`zone_facts`] for a zone file without SOA and NS records, whose apex comes from the target
/// zone at restore time (see [`crate::archive::ZoneFacts::apex_from_target`]): an SOA or NS
/// record is an error, the serial returned is 0.
pub fn zone_facts_without_apex(
    file: &str,
    zone: &str,
    data: &[u8],
) -> Result<(u32, u64), ZoneFileError> {
    summary_with(file, zone, data, false).map(|s| (s.serial, s.records))
}

fn summary_with(
    file: &str,
    zone: &str,
    data: &[u8],
    with_soa: bool,
) -> Result<ZoneSummary, ZoneFileError> {
    let mut checker = zone_checker(file, zone, with_soa)?;
    checker.feed(data)?;
    checker.finish()
}

/// A [`ZoneChecker`] for the zone file of `zone` (`file` labels errors), to be fed as the file
/// streams by; `with_soa` as in [`ZoneChecker::new`].
pub fn zone_checker(file: &str, zone: &str, with_soa: bool) -> Result<ZoneChecker, ZoneFileError> {
    let apex = normalize_zone_name(zone);
    let origin: DName = parse_abs_name(&apex).map_err(|e| ZoneFileError {
        file: file.to_owned(),
        line: None,
        message: format!("invalid zone name {zone:?}: {e}"),
    })?;
    Ok(ZoneChecker::new(file, &origin, with_soa))
}

/// [`zone_facts`] for a file on disk; errors name the path.
pub fn zone_facts_from_file(path: &Path, zone: &str) -> Result<(u32, u64), ZoneFileError> {
    let data = std::fs::read(path).map_err(|e| ZoneFileError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    zone_facts(&path.display().to_string(), zone, &data)
}

/// The zone whose file `member` is, in Knot's backup layout: `zonefiles/` + the zone name as
/// Knot prints it (trailing dot included) + `zone` (`zonefiles/example.com.zone` →
/// `example.com.`, the root zone `zonefiles/.zone` → `.`, `zonefiles/a/b.test.zone` → `a/b.test.`:
/// Knot does not escape `/` in names).
pub fn zone_of_member(member: &str) -> Option<String> {
    let name = member.strip_prefix("zonefiles/")?.strip_suffix("zone")?;
    (name.ends_with('.') && !name.starts_with('/') && !name.contains("//") && !name.contains("/."))
        .then(|| name.to_owned())
        .filter(|n| n == "." || !n.starts_with('.'))
}

/// The archive member of `zone`'s file in Knot's backup layout (inverse of [`zone_of_member`]).
pub fn member_of_zone(zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    format!("zonefiles/{zone}.zone")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 3600\n\
@   IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n\
    IN NS ns1\n\
ns1 IN A 192.0.2.1\n\
www IN A 192.0.2.2\n\
    IN AAAA 2001:db8::2\n";

    #[test]
    fn counts_records_and_reads_serial() {
        assert_eq!(
            zone_facts("z", "example.com", ZONE.as_bytes()).unwrap(),
            (2024010101, 5)
        );
    }

    #[test]
    fn bad_record_names_file_and_line() {
        let bad = ZONE.replace("www IN A 192.0.2.2", "www IN A 192.0.2.999");
        let e =
            zone_facts("zonefiles/example.com.zone", "example.com.", bad.as_bytes()).unwrap_err();
        assert_eq!(e.file, "zonefiles/example.com.zone");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(
            e.to_string().starts_with("zonefiles/example.com.zone:5: "),
            "{e}"
        );
    }

    #[test]
    fn error_lines_point_at_the_bad_record() {
        let cases = [
            ("www IN BOGUS 1.2.3.4\nx IN A 1.2.3.4\n", 7),
            ("www IN A 192.0.2.999 ; c\n\n; more\nx IN A 1.2.3.4\n", 7),
            ("mx IN MX ( 10\n  mail 20 )\nx IN A 1.2.3.4\n", 7),
            ("\n\n; c\nwww IN A 1.2.3.4 5\n", 10),
            ("www IN A 192.0.2.999", 7),
        ];
        for (tail, want) in cases {
            let text = format!("{ZONE}{tail}");
            let e = zone_facts("z", "example.com", text.as_bytes()).unwrap_err();
            assert_eq!(e.line, Some(want), "{tail:?}: {e}");
        }
    }

    #[test]
    fn missing_or_misplaced_soa_is_an_error() {
        let e = zone_facts("z", "example.com", b"www 3600 IN A 192.0.2.1\n").unwrap_err();
        assert!(e.message.contains("no SOA"), "{e}");
        // Relative names take the given zone as origin; absolute ones must match it.
        assert!(zone_facts("z", "example.org", ZONE.as_bytes()).is_ok());
        let abs = "example.com. 3600 IN SOA ns1.example.com. h.example.com. 1 2 3 4 5\n";
        let e = zone_facts("z", "example.org", abs.as_bytes()).unwrap_err();
        assert!(e.message.contains("outside the zone"), "{e}");
        let below = "www.example.com. 3600 IN SOA ns1.example.com. h.example.com. 1 2 3 4 5\n";
        let e = zone_facts("z", "example.com", below.as_bytes()).unwrap_err();
        assert!(e.message.contains("not the zone apex"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn two_soas_and_include_are_errors() {
        let two = format!("{ZONE}@ IN SOA ns1 h 2 1 1 1 1\n");
        let e = zone_facts("z", "example.com", two.as_bytes()).unwrap_err();
        assert!(e.message.contains("more than one SOA"), "{e}");
        assert_eq!(e.line, Some(7));
        let inc = format!("{ZONE}$INCLUDE other.zone\n");
        let e = zone_facts("z", "example.com", inc.as_bytes()).unwrap_err();
        assert!(e.message.contains("$INCLUDE"), "{e}");
    }
}
