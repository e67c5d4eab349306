//! Record types that Knot serves but NLnet Labs `domain` 0.12 cannot parse in presentation form.
//!
//! Kea's DDNS adds a DHCID record beside every name it registers (RFC 4701), and `domain` 0.12
//! has no DHCID rdata type: a zone file holding one fails with "unknown record type with concrete
//! data". Such rdata is rewritten into the RFC 3597 generic form (`\# LEN HEX`), which `domain`
//! parses for any type and Knot accepts in `zone-set`; the record and its wire form are unchanged.

use std::borrow::Cow;

/// The RFC 3597 generic form of `data` for types `domain` cannot parse, or `None` when it can
/// (or when `data` is not valid for the type, so that the real parser reports the error).
pub fn generic_rdata(rtype: &str, data: &str) -> Option<String> {
    if !rtype.eq_ignore_ascii_case("DHCID") {
        return None;
    }
    // DHCID rdata is one base64 blob, possibly split by white space.
    let b64: String = data.split_whitespace().collect();
    let bytes: Vec<u8> = domain::utils::base64::decode(&b64).ok()?;
    Some(format!("\\# {} {}", bytes.len(), hex::encode(&bytes)))
}

/// Rewrites every single-line record of zone-file `text` whose type needs it (see
/// [`generic_rdata`]) into the generic form. Lines keep their numbers, so errors still point at
/// the right line. Multi-line records are left alone.
pub fn rewrite_zone_text(text: &[u8]) -> Cow<'_, [u8]> {
    let Ok(s) = std::str::from_utf8(text) else {
        return Cow::Borrowed(text);
    };
    if !s
        .as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"DHCID"))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(s.len() + 64);
    let mut changed = false;
    for line in s.split_inclusive('\n') {
        match rewrite_line(line) {
            Some(new) => {
                out.push_str(&new);
                changed = true;
            }
            None => out.push_str(line),
        }
    }
    if changed {
        Cow::Owned(out.into_bytes())
    } else {
        Cow::Borrowed(text)
    }
}

fn rewrite_line(line: &str) -> Option<String> {
    let body = line.split(';').next().unwrap_or("");
    if body.contains('(') || body.contains('"') {
        return None;
    }
    let tokens: Vec<&str> = body.split_whitespace().collect();
    // owner, TTL and class come first: the type is at most the fourth token (or the first
    // after a leading blank that repeats the previous owner).
    let at = tokens
        .iter()
        .take(4)
        .position(|t| t.eq_ignore_ascii_case("DHCID"))?;
    let generic = generic_rdata(tokens[at], &tokens[at + 1..].join(" "))?;
    let indent = &line[..line.len() - line.trim_start().len()];
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    Some(format!(
        "{indent}{} {generic}{newline}",
        tokens[..=at].join("\t")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcid_becomes_generic_and_other_lines_stay() {
        let text = b"; comment\nlaptop.home.arpa.\t1200\tDHCID\tAAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=\n\t1200\tA\t10.0.0.5\n";
        let out = rewrite_zone_text(text);
        let out = std::str::from_utf8(&out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "; comment");
        assert!(
            lines[1].starts_with("laptop.home.arpa.\t1200\tDHCID \\# 35 0002016"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "\t1200\tA\t10.0.0.5");
    }

    #[test]
    fn invalid_base64_is_left_for_the_parser_to_report() {
        assert_eq!(generic_rdata("DHCID", "not*base64"), None);
        assert_eq!(generic_rdata("A", "10.0.0.1"), None);
        let text = b"x 60 DHCID not*base64\n";
        assert!(matches!(rewrite_zone_text(text), Cow::Borrowed(_)));
    }
}
