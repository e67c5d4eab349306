//! Zone-file facts (SOA serial, record count) with NLnet Labs `domain`.

use std::path::Path;
use std::str::FromStr;

use domain::base::iana::Class;
use domain::base::{Name, Rtype, ToName};
use domain::rdata::ZoneRecordData;
use domain::zonefile::inplace::{Entry, Zonefile};

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
/// `file` only labels errors. Relative names are completed with `zone` as origin. The file must
/// hold exactly one SOA record, at the apex; `$INCLUDE` is refused (an archived zone must stand
/// alone).
pub fn zone_facts(file: &str, zone: &str, data: &[u8]) -> Result<(u32, u64), ZoneFileError> {
    let err = |line: Option<usize>, message: String| ZoneFileError {
        file: file.to_owned(),
        line,
        message,
    };
    let apex = normalize_zone_name(zone);
    let origin: Name<_> =
        Name::from_str(&apex).map_err(|e| err(None, format!("invalid zone name {zone:?}: {e}")))?;
    let data = &*crate::rdata_compat::rewrite_zone_text(data);
    let mut zf = Zonefile::from(data);
    zf.set_origin(origin.clone());
    zf.set_default_class(Class::IN);
    let mut records = 0u64;
    let mut serial = None;
    loop {
        let start = zf.current_offset();
        let entry = match zf.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                // `domain` keeps the position private but prints it as "LINE:COL: message".
                let text = e.to_string();
                let (pos, message) = split_position(&text);
                let line = pos.map(|(l, c)| error_line(data, start, l, c));
                return Err(err(line, message));
            }
        };
        // Counting lines is linear; only done for the rare entries that need it.
        let line = || Some(entry_line(data, start));
        match entry {
            Entry::Record(record) => {
                records += 1;
                if record.rtype() == Rtype::SOA {
                    let ZoneRecordData::Soa(soa) = record.data() else {
                        return Err(err(line(), "SOA record with unexpected data".into()));
                    };
                    if !record.owner().name_eq(&origin) {
                        return Err(err(
                            line(),
                            format!("SOA owner {} is not the zone apex {apex}", record.owner()),
                        ));
                    }
                    if serial.is_some() {
                        return Err(err(line(), "more than one SOA record".into()));
                    }
                    serial = Some(soa.serial().into_int());
                }
            }
            Entry::Include { path, .. } => {
                return Err(err(line(), format!("$INCLUDE {path} is not allowed")));
            }
        }
    }
    match serial {
        Some(serial) => Ok((serial, records)),
        None => Err(err(None, format!("no SOA record for {apex}"))),
    }
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

/// Split domain's "LINE:COL: message" into the position and the message.
fn split_position(text: &str) -> (Option<(usize, usize)>, String) {
    let mut parts = text.splitn(3, ':');
    if let (Some(l), Some(c), Some(rest)) = (parts.next(), parts.next(), parts.next())
        && let (Ok(line), Ok(col)) = (l.trim().parse::<usize>(), c.trim().parse::<usize>())
    {
        return (Some((line, col)), rest.trim().to_owned());
    }
    (None, text.to_owned())
}

/// The lines of `data`, 1-based index -> content (without line feed).
fn line_text(data: &[u8], line: usize) -> &[u8] {
    data.split(|&b| b == b'\n')
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
}

/// Whether a line holds nothing but blanks and a comment.
fn is_blank(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    t.is_empty() || t.starts_with(b";")
}

/// The 1-based line of the first token of the entry that starts scanning at byte `start`.
fn entry_line(data: &[u8], start: usize) -> usize {
    let start = start.min(data.len());
    let mut line = data[..start].iter().filter(|&&b| b == b'\n').count() + 1;
    // Skip blank and comment-only lines (the scanner consumes them as part of the entry).
    while is_blank(line_text(data, line)) {
        if data.split(|&b| b == b'\n').count() <= line {
            break;
        }
        line += 1;
    }
    line
}

/// The line an error belongs to. `domain` reports where scanning stopped, which is column 1 of
/// the next line when the bad token ended its line; step back to the last line with content,
/// but not before the entry's first line.
fn error_line(data: &[u8], start: usize, line: usize, col: usize) -> usize {
    let first = entry_line(data, start);
    let mut line = if col == 1 && line > 1 { line - 1 } else { line };
    while line > first && is_blank(line_text(data, line)) {
        line -= 1;
    }
    line.max(first)
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
            ("mx IN MX ( 10\n  mail 20 )\nx IN A 1.2.3.4\n", 8),
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
