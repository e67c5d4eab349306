//! A fast reader for the shape a long `staticRecords` list almost always has: a top-level key
//! followed by one single-line scalar per item.
//!
//! ```yaml
//! staticRecords:
//!   - "router IN A 192.168.1.1"
//!   - nas 300 IN A 192.168.1.10   # comments and blank lines are fine
//! ```
//!
//! At 100,000 records the general YAML parser takes most of the time of a `records plan`; this
//! reader takes a few milliseconds. It is only an accelerator: [`split`] declines (returns
//! `None`) at the first line it is not certain about — escapes, multi-line scalars, anchors,
//! tags, flow collections, maps, tabs, control characters, document markers — and the whole file
//! then goes through the general parser as before. What it accepts it reads exactly as YAML
//! does; a test compares both readers on the same text, positions included.

/// The list items read, and the file's text with the list taken out (the key line becomes
/// `<key>: []`, the item lines empty lines, so every other line keeps its number).
#[derive(Debug)]
pub struct Split {
    /// The text for the general parser.
    pub rest: String,
    /// 1-based line of the key.
    pub key_line: u32,
    /// 1-based line and column where the general parser places the list (see [`split`]).
    pub list_pos: (u32, u32),
    /// Each item: its text, and the 1-based line and column where its scalar starts.
    pub items: Vec<(String, u32, u32)>,
}

/// Finds `key:` at the top level of `text` and reads its list, if every line of it has the
/// simple shape; `None` otherwise (also when the list is empty: nothing to gain).
pub fn split(text: &str, key: &str) -> Option<Split> {
    if text.starts_with('\u{feff}') || text.contains('\r') {
        return None;
    }
    let (key_start, key_line) = key_line(text, key)?;
    let mut items = Vec::new();
    let mut indent: Option<usize> = None;
    let mut list_pos = (0, 0);
    let mut end = text.len();
    for (n, (pos, line)) in lines_from(text, key_start).enumerate().skip(1) {
        let line_no = key_line + n as u32;
        let spaces = line.len() - line.trim_start_matches(' ').len();
        let body = &line[spaces..];
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if body.starts_with('\t') {
            return None;
        }
        let ends_list = match indent {
            None => false,
            Some(0) => spaces == 0 && !body.starts_with('-'),
            Some(d) => spaces < d,
        };
        if ends_list {
            // Only another top-level key may follow: anything else is for the general parser.
            if spaces != 0 || body.starts_with("---") || body.starts_with("...") {
                return None;
            }
            end = pos;
            break;
        }
        if indent.is_some_and(|d| d != spaces) {
            return None;
        }
        let value = body.strip_prefix('-')?;
        let gap = value.len() - value.trim_start_matches(' ').len();
        if gap == 0 {
            return None;
        }
        let column = spaces + 1 + gap;
        let item = scalar(&value[gap..])?;
        if indent.is_none() {
            indent = Some(spaces);
            // Where the general parser places the list: at the first `-`, or at the first item
            // when the `-` stands in the key's column.
            list_pos = if spaces == 0 {
                (line_no, column as u32 + 1)
            } else {
                (line_no, spaces as u32 + 1)
            };
        }
        items.push((item, line_no, column as u32 + 1));
    }
    if items.is_empty() {
        return None;
    }
    let taken = &text[key_start..end];
    let newlines = taken.matches('\n').count();
    let mut rest = String::with_capacity(text.len() - taken.len() + key.len() + newlines + 8);
    rest.push_str(&text[..key_start]);
    rest.push_str(key);
    rest.push_str(": []");
    rest.extend(std::iter::repeat_n('\n', newlines));
    rest.push_str(&text[end..]);
    Some(Split {
        rest,
        key_line,
        list_pos,
        items,
    })
}

/// Where the line `key:` (optionally followed by spaces and a comment) at column 1 starts, and
/// its 1-based number.
fn key_line(text: &str, key: &str) -> Option<(usize, u32)> {
    lines_from(text, 0)
        .enumerate()
        .find_map(|(n, (start, line))| {
            let after = line.strip_prefix(key)?.strip_prefix(':')?;
            only_comment(after).then_some((start, n as u32 + 1))
        })
}

/// The lines of `text` from byte `from` (a line start): where each starts, and its text
/// without the line feed.
fn lines_from(text: &str, from: usize) -> impl Iterator<Item = (usize, &str)> {
    text[from..].split_inclusive('\n').scan(from, |start, raw| {
        let at = *start;
        *start += raw.len();
        Some((at, raw.strip_suffix('\n').unwrap_or(raw)))
    })
}

/// Whether the rest of a line is empty or spaces, or a comment after at least one space.
fn only_comment(rest: &str) -> bool {
    let trimmed = rest.trim_start_matches(' ');
    trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())
}

/// One single-line scalar and what may follow it on its line (spaces, a comment); `None` when
/// it is anything but a plain or quoted string that needs no unescaping.
fn scalar(s: &str) -> Option<String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let (content, after) = match s.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let q = *q as char;
            let close = s[1..].find(q)? + 1;
            let content = &s[1..close];
            if q == '"' && content.contains('\\') {
                return None;
            }
            (content, &s[close + 1..])
        }
        b if b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' => {
            // A plain scalar: a comment starts at ` #`; `: ` or a final `:` would make a map.
            let content = match s.find(" #") {
                Some(i) => &s[..i],
                None => s,
            };
            let content = content.trim_end_matches(' ');
            if content.contains(": ") || content.ends_with(':') || content.contains('#') {
                return None;
            }
            // Without a space it could read as a number, a boolean or null.
            if !content.contains(' ') {
                return None;
            }
            (content, &s[content.len()..])
        }
        _ => return None,
    };
    if !only_comment(after) {
        return None;
    }
    Some(content.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_simple_shape_and_keeps_line_numbers() {
        let text = "zones:\n  - name: home.arpa\nstaticRecords:   # the list\n  - \"a IN A 10.0.0.1\"\n\n  # note\n  - 'b A 10.0.0.2'  # two\n  - c 60 A 10.0.0.3\nother: 1\n";
        let s = split(text, "staticRecords").unwrap();
        assert_eq!(s.key_line, 3);
        assert_eq!(s.list_pos, (4, 3));
        assert_eq!(
            s.items,
            [
                ("a IN A 10.0.0.1".to_owned(), 4, 5),
                ("b A 10.0.0.2".to_owned(), 7, 5),
                ("c 60 A 10.0.0.3".to_owned(), 8, 5),
            ]
        );
        assert_eq!(
            s.rest,
            "zones:\n  - name: home.arpa\nstaticRecords: []\n\n\n\n\n\nother: 1\n"
        );
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        for list in [
            "  - \"a \\\" b\"\n",                // an escape
            "  - a TXT\n    continued\n",        // a multi-line plain scalar
            "  - \"open\n    close\"\n",         // a multi-line quoted scalar
            "  - &x a A 1.2.3.4\n",              // an anchor
            "  - !!str a A 1.2.3.4\n",           // a tag
            "  - [a, b]\n",                      // a flow sequence
            "  - name: a\n",                     // a map
            "  - 12\n",                          // a number
            "  - true\n",                        // a boolean
            "  - a: b c\n",                      // a map in disguise
            "  - 'it''s'\n",                     // a quote in single quotes
            "  - \"a\" junk\n",                  // text after the scalar
            "  - \"a\"# c\n",                    // a comment without a space
            "\t- a A 1.2.3.4\n",                 // a tab
            "  - a A 1.2.3.4\n - b A 1.2.3.4\n", // another indentation
            "  - a A 1.2.3.4\n  x: 1\n",         // a key inside the list
            "  - a A 1.2.3.4\n---\nx: 1\n",      // a document marker
            "  -\n    a A 1.2.3.4\n",            // the item on the next line
            "  - a\u{1}b c\n",                   // a control character
            "",                                  // no items at all
        ] {
            let text = format!("staticRecords:\n{list}");
            assert!(split(&text, "staticRecords").is_none(), "{list:?}");
        }
        assert!(split("staticRecords: []\n", "staticRecords").is_none());
        assert!(split("x:\n  staticRecords:\n  - a A 1.2.3.4\n", "staticRecords").is_none());
        assert!(split("staticRecords:\r\n  - a A 1.2.3.4\r\n", "staticRecords").is_none());
    }

    #[test]
    fn a_list_at_the_key_indentation_ends_at_the_next_key() {
        let text = "staticRecords:\n- a A 10.0.0.1\n- \"b A 10.0.0.2\"\nzones: [home.arpa]\n";
        let s = split(text, "staticRecords").unwrap();
        assert_eq!(s.items.len(), 2);
        assert_eq!(s.list_pos, (2, 3));
        assert_eq!(s.rest, "staticRecords: []\n\n\nzones: [home.arpa]\n");
    }
}
