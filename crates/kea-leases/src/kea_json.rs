//! Kea's JSON, byte-exact: strings are byte strings (`\u00XX` is byte `XX`; escapes above
//! `00FF` are rejected), maps are sorted by key with the last duplicate winning, and values are
//! rendered the way Kea's `Element::toJSON` writes them (`{ "k": v, ... }`, `[ a, b ]`, non-printable
//! bytes as `\u00XX`). Used for user contexts, which Kea parses and re-renders on load.

use std::collections::BTreeMap;

/// A parsed JSON value with byte-string strings.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, kept as written (Kea re-renders integers the same way).
    Number(String),
    /// A string's bytes.
    Str(Vec<u8>),
    /// A list.
    List(Vec<Node>),
    /// A map, sorted by key bytes.
    Map(BTreeMap<Vec<u8>, Node>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 128;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Node> {
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            b'{' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.eat(b"}").is_none() {
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.ws();
                        self.eat(b":")?;
                        let v = self.value()?;
                        m.insert(k, v);
                        self.ws();
                        if self.eat(b",").is_some() {
                            continue;
                        }
                        self.eat(b"}")?;
                        break;
                    }
                }
                self.depth -= 1;
                Some(Node::Map(m))
            }
            b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.eat(b"]").is_none() {
                    loop {
                        v.push(self.value()?);
                        self.ws();
                        if self.eat(b",").is_some() {
                            continue;
                        }
                        self.eat(b"]")?;
                        break;
                    }
                }
                self.depth -= 1;
                Some(Node::List(v))
            }
            b'"' => self.string().map(Node::Str),
            b't' => self.eat(b"true").map(|_| Node::Bool(true)),
            b'f' => self.eat(b"false").map(|_| Node::Bool(false)),
            b'n' => self.eat(b"null").map(|_| Node::Null),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                // Must be a JSON number.
                text.parse::<f64>().ok()?;
                Some(Node::Number(text.to_owned()))
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        self.eat(b"\"")?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            let v = u16::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            u8::try_from(v).ok()?
                        }
                        _ => return None,
                    });
                }
                _ => out.push(c),
            }
        }
    }
}

/// Parses one JSON value (surrounding whitespace allowed); `None` if it is not valid JSON.
pub fn parse(s: &[u8]) -> Option<Node> {
    let mut p = Parser { s, i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    (p.i == s.len()).then_some(v)
}

/// Writes `bytes` as a JSON string the way Kea does.
pub fn render_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Renders `node` as Kea's `Element::toJSON` does.
pub fn render(out: &mut Vec<u8>, node: &Node) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Node::Number(n) => out.extend_from_slice(n.as_bytes()),
        Node::Str(s) => render_str(out, s),
        Node::List(v) => {
            out.extend_from_slice(b"[ ");
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                render(out, x);
            }
            out.extend_from_slice(b" ]");
        }
        Node::Map(m) => {
            out.extend_from_slice(b"{ ");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                // Kea writes map keys without escaping them.
                out.push(b'"');
                out.extend_from_slice(k);
                out.extend_from_slice(b"\": ");
                render(out, v);
            }
            out.extend_from_slice(b" }");
        }
    }
}

/// Kea's rendering of a user context: `Some` only if `text` is a JSON map.
pub fn canonical_map(text: &[u8]) -> Option<Vec<u8>> {
    match parse(text)? {
        n @ Node::Map(_) => {
            let mut out = Vec::with_capacity(text.len());
            render(&mut out, &n);
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kea() {
        let c = canonical_map(br#"{"z":1,"a":{"y":[true,null,"x\u00e9\/"]},"m":{},"l":[],"a":2}"#)
            .unwrap();
        assert_eq!(
            String::from_utf8(c).unwrap(),
            r#"{ "a": 2, "l": [  ], "m": {  }, "z": 1 }"#
        );
        let c = canonical_map("{ \"k\": \"caf\u{e9}\" }".as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(c).unwrap(),
            r#"{ "k": "caf\u00c3\u00a9" }"#
        );
        assert!(canonical_map(b"[ 1 ]").is_none());
        assert!(canonical_map(br#"{ "k": "\u0100" }"#).is_none());
        assert!(canonical_map(b"{ \"k\": 1 } x").is_none());
    }
}
