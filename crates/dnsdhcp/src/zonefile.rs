//! One reader for zone files and for records as Knot prints them, used by backup (zone facts),
//! verify and both restore paths.
//!
//! A small RFC 1035 tokenizer (parentheses, quotes, escapes, comments, `$ORIGIN`, `$TTL`) splits
//! a zone file into records, so a record of a type NLnet Labs `domain` cannot parse never stops
//! the file. Rdata of the types `domain` knows is parsed by it (canonical wire form); every other
//! type in Knot's type table is checked against the syntax Knot prints it in, or the RFC 3597
//! generic form (`\# LEN HEX`). Types Knot prints but cannot read back by name (NULL, MB, ...;
//! Knot writes them as `NULL \# 0`) are sent to Knot as `TYPEnnn`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use bytes::Bytes;
use domain::base::iana::Rtype;
use domain::base::name::{Name, ToName};

use crate::archive::ZoneFileError;
use crate::records::rr::{DName, fast_canonical_rdata, fqdn, parse_rr};

/// One record of a zone file or of Knot's `zone-read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The 1-based line the record starts on (0 for records Knot sent).
    pub line: usize,
    /// The bytes of the file the record's entry spans, end of line included (empty for records
    /// Knot sent).
    pub span: std::ops::Range<usize>,
    /// Absolute owner, lower case.
    pub owner: DName,
    /// TTL in seconds.
    pub ttl: u32,
    /// Record type.
    pub rtype: Rtype,
    /// Rdata as Knot's parser takes it for [`type_name`](Self::type_name).
    pub data: String,
    /// What two records of one RRset are compared by: canonical wire form for the types `domain`
    /// parses, the normalised presentation (as Knot prints it) for the others.
    pub key: Vec<u8>,
    /// Whether the type was written in a form Knot's zone-file parser reads (`TYPEnnn`, or a
    /// mnemonic it knows).
    pub type_readable: bool,
}

impl ZoneRecord {
    /// The type as Knot's zone-file parser reads it: its mnemonic, or `TYPEnnn` for the types
    /// Knot prints by name but cannot read back.
    pub fn type_name(&self) -> String {
        knot_type_name(self.rtype)
    }

    /// Whether Knot can load this record back from the line it wrote to a zone file.
    pub fn knot_loads_by_name(&self) -> bool {
        self.type_readable
    }
}

/// The type name the newest known Knot's zone-file parser reads for `rtype`.
pub fn knot_type_name(rtype: Rtype) -> String {
    KnotTable::LATEST.type_name(rtype)
}

/// The type tables of the Knot versions this tool knows: which mnemonics each one's zone-file
/// parser reads. A type it does not read by name it still loads as `TYPEnnn \# LEN HEX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum KnotTable {
    /// Knot 3.2 (Debian 12 ships 3.2.6).
    #[serde(rename = "3.2")]
    V3_2,
    /// Knot 3.4 (Debian 13 ships 3.4.6): reads WALLET too.
    #[serde(rename = "3.4")]
    V3_4,
}

/// Types whose mnemonic Knot reads only from 3.4 on (3.2 prints and reads them as `TYPEnnn`).
const READ_SINCE_3_4: &[u16] = &[262];

impl KnotTable {
    /// The newest table known.
    pub const LATEST: KnotTable = KnotTable::V3_4;
    /// The oldest table known.
    pub const OLDEST: KnotTable = KnotTable::V3_2;

    /// The table for knotd `major.minor`: its own, else the nearest lower known one (the
    /// oldest for anything older). The flag says whether the table is the version's own.
    pub fn for_version(major: u32, minor: u32) -> (KnotTable, bool) {
        match (major, minor) {
            (3, 2) => (KnotTable::V3_2, true),
            (3, 4) => (KnotTable::V3_4, true),
            (3, 3) => (KnotTable::V3_2, false),
            (m, n) if (m, n) > (3, 4) => (KnotTable::V3_4, false),
            _ => (KnotTable::V3_2, false),
        }
    }

    /// `3.2`, `3.4`.
    pub fn name(self) -> &'static str {
        match self {
            KnotTable::V3_2 => "3.2",
            KnotTable::V3_4 => "3.4",
        }
    }

    /// Whether this Knot's zone-file parser reads the mnemonic of `rtype`.
    pub fn reads(self, rtype: Rtype) -> bool {
        let code = rtype.to_int();
        match lookup_code(code) {
            Some(t) if t.knot_reads => self >= KnotTable::V3_4 || !READ_SINCE_3_4.contains(&code),
            _ => false,
        }
    }

    /// The type name this Knot's zone-file parser reads for `rtype`: its mnemonic or `TYPEnnn`.
    pub fn type_name(self, rtype: Rtype) -> String {
        match lookup_code(rtype.to_int()) {
            Some(t) if self.reads(rtype) => t.name.to_owned(),
            _ => format!("TYPE{}", rtype.to_int()),
        }
    }
}

/// A record in the form a given Knot loads: type name, rdata and comparison key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnotForm {
    /// `TYPEnnn` or the mnemonic.
    pub type_name: String,
    /// The rdata (RFC 3597 generic form when converted).
    pub data: String,
    /// The comparison key of that rdata (as [`ZoneRecord::key`]).
    pub key: Vec<u8>,
}

/// How `rec` must be written for a Knot of `table` to load it: `None` when as it is; a form
/// converted to RFC 3597 (`TYPEnnn \# LEN HEX`) when that Knot does not read its type by name;
/// an error when the rdata cannot be converted (this tool encodes character-string types only).
pub fn knot_form(rec: &ZoneRecord, table: KnotTable) -> Result<Option<KnotForm>, String> {
    if table.reads(rec.rtype) {
        return Ok(None);
    }
    let type_name = format!("TYPE{}", rec.rtype.to_int());
    if rec.data.starts_with("\\#") {
        // Already generic: only a mnemonic this Knot does not read needs renaming (a
        // `TYPEnnn` token reads everywhere).
        let by_mnemonic = !rec.type_readable || KnotTable::LATEST.reads(rec.rtype);
        return Ok(by_mnemonic.then(|| KnotForm {
            type_name,
            data: rec.data.clone(),
            key: rec.key.clone(),
        }));
    }
    let wire = generic_wire_of(rec.rtype, &tokens_of(&rec.data)?)
        .map_err(|m| format!("Knot {} reads it only in RFC 3597 form: {m}", table.name()))?;
    let mut key = b"#".to_vec();
    key.extend_from_slice(&wire);
    Ok(Some(KnotForm {
        type_name,
        data: format!("\\# {} {}", wire.len(), hex::encode(&wire)),
        key,
    }))
}

/// The RFC 3597 wire form of rdata `tokens` of `rtype` in presentation form, for the types
/// this tool encodes: those whose rdata is character strings (WALLET, SPF).
fn generic_wire_of(rtype: Rtype, tokens: &[&str]) -> Result<Vec<u8>, String> {
    match lookup_code(rtype.to_int()) {
        Some(t) if matches!(t.syntax, Syntax::Fields([Field::Text])) => charstr_wire(tokens),
        t => Err(format!(
            "this tool cannot write {} rdata in that form",
            t.map_or("this type's", |t| t.name)
        )),
    }
}

/// The wire form of character strings as a zone file writes them (quoted or plain, `\X` and
/// `\DDD` escapes): each one a length octet and its octets.
fn charstr_wire(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    for t in tokens {
        if !is_charstr(t) {
            return Err(format!("{t:?} is not a character string"));
        }
        let body = t
            .strip_prefix('"')
            .and_then(|b| b.strip_suffix('"'))
            .unwrap_or(t);
        let octets = unescape(body)?;
        wire.push(u8::try_from(octets.len()).map_err(|_| format!("{t:?} is too long"))?);
        wire.extend_from_slice(&octets);
    }
    Ok(wire)
}

/// The octets of a character string's text: `\DDD` is the octet DDD, `\X` is X.
fn unescape(body: &str) -> Result<Vec<u8>, String> {
    let b = body.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1..i + 4) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                let n = u32::from(d[0] - b'0') * 100
                    + u32::from(d[1] - b'0') * 10
                    + u32::from(d[2] - b'0');
                out.push(u8::try_from(n).map_err(|_| format!("escape \\{n} is over 255"))?);
                i += 4;
            }
            _ => {
                let c = *b.get(i + 1).ok_or("a string ends with a backslash")?;
                out.push(c);
                i += 2;
            }
        }
    }
    Ok(out)
}

/// How the rdata of a type is checked.
#[derive(Clone, Copy, Debug)]
enum Syntax {
    /// `domain` parses it (canonical wire key).
    Domain,
    /// `domain` parses it, but some of Knot's forms (`keyNNN=`, escaped `alpn`) it refuses:
    /// those are checked as [`Syntax::Fields`] of priority, target and parameters.
    Svcb,
    /// A sequence of fields as Knot prints them.
    Fields(&'static [Field]),
    /// `LOC` (RFC 1876 presentation).
    Loc,
    /// `APL` items (`[!]1:192.0.2.0/24`, `2:2001:db8::/32`).
    Apl,
    /// Only the generic form: Knot prints no other.
    Generic,
}

/// One field of [`Syntax::Fields`].
#[derive(Clone, Copy, Debug)]
enum Field {
    U8,
    U16,
    U32,
    Name,
    /// A number or a mnemonic (CERT type and algorithm).
    Mnemonic,
    Ipv4,
    /// Four groups of hex digits (NID, L64).
    L64,
    Eui48,
    Eui64,
    /// Exactly one character string (URI target).
    CharStr,
    /// One or more character strings (SPF, WALLET).
    Text,
    /// The rest is base64.
    Base64,
    /// The rest is hex.
    Hex,
    /// The rest are type names (CSYNC bitmap).
    Types,
}

/// One entry of Knot's type table.
struct KnotType {
    name: &'static str,
    code: u16,
    syntax: Syntax,
    /// Knot's zone-file parser reads the mnemonic.
    knot_reads: bool,
}

use Field as F;

const fn t(name: &'static str, code: u16, syntax: Syntax, knot_reads: bool) -> KnotType {
    KnotType {
        name,
        code,
        syntax,
        knot_reads,
    }
}

/// Every type in Knot's rrtype descriptor table (`src/libknot/descriptor.c`, 3.2 and 3.4) that a
/// zone can hold; meta types (OPT, TSIG, TKEY, IXFR, AXFR, ANY) are not zone data.
const KNOT_TYPES: &[KnotType] = &[
    t("A", 1, Syntax::Domain, true),
    t("NS", 2, Syntax::Domain, true),
    t("MD", 3, Syntax::Generic, false),
    t("MF", 4, Syntax::Generic, false),
    t("CNAME", 5, Syntax::Domain, true),
    t("SOA", 6, Syntax::Domain, true),
    t("MB", 7, Syntax::Generic, false),
    t("MG", 8, Syntax::Generic, false),
    t("MR", 9, Syntax::Generic, false),
    t("NULL", 10, Syntax::Generic, false),
    t("PTR", 12, Syntax::Domain, true),
    t("HINFO", 13, Syntax::Domain, true),
    t("MINFO", 14, Syntax::Domain, true),
    t("MX", 15, Syntax::Domain, true),
    t("TXT", 16, Syntax::Domain, true),
    t("RP", 17, Syntax::Domain, true),
    t("AFSDB", 18, Syntax::Fields(&[F::U16, F::Name]), true),
    t("RT", 21, Syntax::Fields(&[F::U16, F::Name]), true),
    t("SIG", 24, Syntax::Generic, false),
    t(
        "KEY",
        25,
        Syntax::Fields(&[F::U16, F::U8, F::U8, F::Base64]),
        true,
    ),
    t("PX", 26, Syntax::Generic, false),
    t("AAAA", 28, Syntax::Domain, true),
    t("LOC", 29, Syntax::Loc, true),
    t("NXT", 30, Syntax::Generic, false),
    t("SRV", 33, Syntax::Domain, true),
    t("NAPTR", 35, Syntax::Domain, true),
    t("KX", 36, Syntax::Fields(&[F::U16, F::Name]), true),
    t(
        "CERT",
        37,
        Syntax::Fields(&[F::Mnemonic, F::U16, F::Mnemonic, F::Base64]),
        true,
    ),
    t("DNAME", 39, Syntax::Domain, true),
    t("APL", 42, Syntax::Apl, true),
    t("DS", 43, Syntax::Domain, true),
    t("SSHFP", 44, Syntax::Domain, true),
    t("IPSECKEY", 45, Syntax::Domain, true),
    t("RRSIG", 46, Syntax::Domain, true),
    t("NSEC", 47, Syntax::Domain, true),
    t("DNSKEY", 48, Syntax::Domain, true),
    t("DHCID", 49, Syntax::Fields(&[F::Base64]), true),
    t("NSEC3", 50, Syntax::Domain, true),
    t("NSEC3PARAM", 51, Syntax::Domain, true),
    t("TLSA", 52, Syntax::Domain, true),
    t(
        "SMIMEA",
        53,
        Syntax::Fields(&[F::U8, F::U8, F::U8, F::Hex]),
        true,
    ),
    t("CDS", 59, Syntax::Domain, true),
    t("CDNSKEY", 60, Syntax::Domain, true),
    t("OPENPGPKEY", 61, Syntax::Domain, true),
    t(
        "CSYNC",
        62,
        Syntax::Fields(&[F::U32, F::U16, F::Types]),
        true,
    ),
    t("ZONEMD", 63, Syntax::Domain, true),
    t("SVCB", 64, Syntax::Svcb, true),
    t("HTTPS", 65, Syntax::Svcb, true),
    t("SPF", 99, Syntax::Fields(&[F::Text]), true),
    t("NID", 104, Syntax::Fields(&[F::U16, F::L64]), true),
    t("L32", 105, Syntax::Fields(&[F::U16, F::Ipv4]), true),
    t("L64", 106, Syntax::Fields(&[F::U16, F::L64]), true),
    t("LP", 107, Syntax::Fields(&[F::U16, F::Name]), true),
    t("EUI48", 108, Syntax::Fields(&[F::Eui48]), true),
    t("EUI64", 109, Syntax::Fields(&[F::Eui64]), true),
    t(
        "URI",
        256,
        Syntax::Fields(&[F::U16, F::U16, F::CharStr]),
        true,
    ),
    t("CAA", 257, Syntax::Domain, true),
    // Knot 3.4 reads WALLET by name; 3.2 prints and reads it as TYPE262.
    t("WALLET", 262, Syntax::Fields(&[F::Text]), true),
];

fn lookup_code(code: u16) -> Option<&'static KnotType> {
    KNOT_TYPES.iter().find(|t| t.code == code)
}

/// Whether Knot's zone-file parser reads the type token `token` (`TYPEnnn` always).
fn type_token_readable(token: &str) -> bool {
    match KNOT_TYPES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(token))
    {
        Some(t) => t.knot_reads,
        None => true,
    }
}

/// The type code of a type token: a mnemonic of Knot's table or `TYPEnnn`.
fn type_code(token: &str) -> Option<u16> {
    if let Some(t) = KNOT_TYPES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(token))
    {
        return Some(t.code);
    }
    let digits = token
        .get(..4)?
        .eq_ignore_ascii_case("TYPE")
        .then(|| &token[4..])?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Parses the rdata `data` of a record of type `type_token` (relative names completed with
/// `origin`) into the record's data to send and its comparison key.
pub fn parse_rdata(
    origin: &DName,
    type_token: &str,
    data: &str,
) -> Result<(Rtype, String, Vec<u8>), String> {
    let code = type_code(type_token).ok_or_else(|| format!("unknown record type {type_token}"))?;
    let rtype = Rtype::from_int(code);
    let tokens = tokens_of(data)?;
    let known = lookup_code(code);
    if tokens.first() == Some(&"\\#") {
        return match known.map(|t| t.syntax) {
            Some(Syntax::Domain | Syntax::Svcb) => domain_rdata(origin, rtype, data),
            _ => {
                let wire = generic_wire(&tokens[1..])?;
                let mut key = b"#".to_vec();
                key.extend_from_slice(&wire);
                Ok((rtype, tokens.join(" "), key))
            }
        };
    }
    let Some(known) = known else {
        return Err(format!(
            "type {type_token} has no presentation form but RFC 3597's (\\# LEN HEX)"
        ));
    };
    match known.syntax {
        Syntax::Domain => domain_rdata(origin, rtype, data),
        Syntax::Svcb => domain_rdata(origin, rtype, data).or_else(|e| {
            check_svcb(&tokens).map_err(|m| format!("{e}; {m}"))?;
            Ok((rtype, tokens.join(" "), text_key(&tokens)))
        }),
        Syntax::Generic => Err(format!(
            "{} rdata must be in the generic form (\\# LEN HEX)",
            known.name
        )),
        Syntax::Loc => {
            check_loc(&tokens)?;
            Ok((rtype, tokens.join(" "), text_key(&tokens)))
        }
        Syntax::Apl => {
            tokens.iter().try_for_each(|t| check_apl(t))?;
            Ok((rtype, tokens.join(" "), text_key(&tokens)))
        }
        Syntax::Fields(fields) => {
            check_fields(fields, &tokens).map_err(|m| format!("{} rdata: {m}", known.name))?;
            Ok((rtype, tokens.join(" "), text_key(&tokens)))
        }
    }
}

/// A record as Knot's `zone-read` presents it (absolute owner).
pub fn parse_served(owner: &str, ttl: u32, rtype: &str, data: &str) -> Result<ZoneRecord, String> {
    let owner = parse_name(owner, None)?;
    let type_readable = type_token_readable(rtype);
    let (rtype, data, key) = parse_rdata(&owner, rtype, data)?;
    Ok(ZoneRecord {
        line: 0,
        span: 0..0,
        type_readable,
        owner,
        ttl,
        rtype,
        data,
        key,
    })
}

fn text_key(tokens: &[&str]) -> Vec<u8> {
    let mut key = b"T".to_vec();
    key.extend_from_slice(tokens.join(" ").as_bytes());
    key
}

/// `domain`'s parse, with the fast path for the common simple types.
fn domain_rdata(
    origin: &DName,
    rtype: Rtype,
    data: &str,
) -> Result<(Rtype, String, Vec<u8>), String> {
    if let Some(wire) = fast_canonical_rdata(rtype, data) {
        return Ok((rtype, data.to_owned(), wire));
    }
    let rr = parse_rr(origin, 0, &format!("@ 0 IN {rtype} {data}"))?;
    Ok((rtype, rr.data, rr.wire))
}

/// Wire bytes of RFC 3597 generic rdata (the tokens after `\#`).
fn generic_wire(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let (len, hex_parts) = tokens
        .split_first()
        .ok_or("generic rdata without a length")?;
    let len: usize = len
        .parse()
        .map_err(|_| format!("generic rdata length {len:?} is not a number"))?;
    let hex: String = hex_parts.concat();
    let wire = hex::decode(&hex).map_err(|e| format!("generic rdata: {e}"))?;
    if wire.len() != len {
        return Err(format!(
            "generic rdata says {len} octets but holds {}",
            wire.len()
        ));
    }
    Ok(wire)
}

/// Splits rdata text into tokens (quoted strings keep their quotes, escapes are kept).
fn tokens_of(data: &str) -> Result<Vec<&str>, String> {
    let mut lexer = Lexer::new(data.as_bytes());
    let mut out = Vec::new();
    let mut tokens = Vec::new();
    while lexer.next_entry(&mut tokens).map_err(|(_, m)| m)?.is_some() {
        out.append(&mut tokens);
    }
    Ok(out)
}

fn is_uint(t: &str, max: u64) -> bool {
    !t.is_empty()
        && t.len() <= 10
        && t.bytes().all(|b| b.is_ascii_digit())
        && t.parse::<u64>().is_ok_and(|v| v <= max)
}

fn check_fields(fields: &[Field], tokens: &[&str]) -> Result<(), String> {
    let mut i = 0;
    for f in fields {
        let rest = &tokens[i.min(tokens.len())..];
        let tok = rest.first().copied();
        let need = |ok: bool, what: &str| -> Result<(), String> {
            match tok {
                None => Err(format!("missing {what}")),
                Some(t) if !ok => Err(format!("{t:?} is not {what}")),
                Some(_) => Ok(()),
            }
        };
        let t = tok.unwrap_or("");
        match f {
            F::U8 => need(is_uint(t, 0xff), "a number 0..255")?,
            F::U16 => need(is_uint(t, 0xffff), "a number 0..65535")?,
            F::U32 => need(is_uint(t, 0xffff_ffff), "a 32-bit number")?,
            F::Name => need(
                plain_target(t, 1) || parse_name(t, Some(&Name::root_bytes())).is_ok(),
                "a domain name",
            )?,
            F::Mnemonic => need(
                is_uint(t, 0xffff)
                    || (!t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')),
                "a number or mnemonic",
            )?,
            F::Ipv4 => need(t.parse::<Ipv4Addr>().is_ok(), "an IPv4 address")?,
            F::L64 => need(hex_groups(t, ':', 4, 1..=4), "four groups of hex digits")?,
            F::Eui48 => need(hex_groups(t, '-', 6, 2..=2), "an EUI-48 address")?,
            F::Eui64 => need(hex_groups(t, '-', 8, 2..=2), "an EUI-64 address")?,
            F::CharStr => need(is_charstr(t), "a character string")?,
            F::Text => {
                need(
                    !rest.is_empty() && rest.iter().all(|t| is_charstr(t)),
                    "character strings",
                )?;
                i = tokens.len();
                continue;
            }
            F::Base64 => {
                let b64: String = rest.concat();
                need(
                    !rest.is_empty() && domain::utils::base64::decode::<Vec<u8>>(&b64).is_ok(),
                    "base64",
                )?;
                i = tokens.len();
                continue;
            }
            F::Hex => {
                let h: String = rest.concat();
                need(!rest.is_empty() && hex::decode(&h).is_ok(), "hex")?;
                i = tokens.len();
                continue;
            }
            F::Types => {
                if let Some(bad) = rest
                    .iter()
                    .find(|t| type_code(t).is_none() && Rtype::from_str(t).is_err())
                {
                    return Err(format!("{bad:?} is not a record type"));
                }
                i = tokens.len();
                continue;
            }
        }
        i += 1;
    }
    match tokens.get(i) {
        Some(extra) => Err(format!("unexpected {extra:?}")),
        None => Ok(()),
    }
}

fn hex_groups(t: &str, sep: char, n: usize, width: std::ops::RangeInclusive<usize>) -> bool {
    let parts: Vec<&str> = t.split(sep).collect();
    parts.len() == n
        && parts
            .iter()
            .all(|p| width.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A character string: quoted (`"..."`) or a plain token, at most 255 octets (escapes counted
/// as one).
fn is_charstr(t: &str) -> bool {
    let body = match t.strip_prefix('"') {
        Some(rest) => match rest.strip_suffix('"') {
            Some(b) if !rest.is_empty() => b,
            _ => return false,
        },
        None => t,
    };
    let mut octets = 0;
    let mut chars = body.as_bytes().iter().peekable();
    while let Some(&c) = chars.next() {
        octets += 1;
        if c == b'\\' {
            match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let (a, b) = (chars.next(), chars.next());
                    if !matches!((a, b), (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit())
                    {
                        return false;
                    }
                }
                Some(_) => {}
                None => return false,
            }
        }
    }
    octets <= 255
}

fn check_loc(tokens: &[&str]) -> Result<(), String> {
    let bad = || format!("LOC rdata {:?} is not as Knot prints it", tokens.join(" "));
    let mut i = 0;
    for hemi in [["N", "S"], ["E", "W"]] {
        let mut nums = 0;
        while i < tokens.len() && !hemi.iter().any(|h| tokens[i].eq_ignore_ascii_case(h)) {
            if nums == 3 || tokens[i].parse::<f64>().is_err() {
                return Err(bad());
            }
            nums += 1;
            i += 1;
        }
        if nums == 0 || i == tokens.len() {
            return Err(bad());
        }
        i += 1;
    }
    let rest = &tokens[i..];
    if rest.is_empty()
        || rest.len() > 4
        || !rest
            .iter()
            .all(|t| t.trim_end_matches(['m', 'M']).parse::<f64>().is_ok())
    {
        return Err(bad());
    }
    Ok(())
}

fn check_apl(item: &str) -> Result<(), String> {
    let bad = || format!("APL item {item:?} is not [!]AFI:ADDRESS/PREFIX");
    let body = item.strip_prefix('!').unwrap_or(item);
    let (afi, rest) = body.split_once(':').ok_or_else(bad)?;
    let (addr, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let ok = match afi {
        "1" => addr.parse::<Ipv4Addr>().is_ok() && prefix <= 32,
        "2" => addr.parse::<Ipv6Addr>().is_ok() && prefix <= 128,
        _ => false,
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// SVCB/HTTPS as Knot prints it: priority, target, then `key[=value]` parameters with keys
/// Knot names or `keyNNN`.
fn check_svcb(tokens: &[&str]) -> Result<(), String> {
    const KEYS: &[&str] = &[
        "mandatory",
        "alpn",
        "no-default-alpn",
        "port",
        "ipv4hint",
        "ech",
        "ipv6hint",
        "dohpath",
        "ohttp",
        "tls-supported-groups",
    ];
    let [prio, target, params @ ..] = tokens else {
        return Err("SVCB rdata needs a priority and a target".into());
    };
    if !is_uint(prio, 0xffff) || parse_name(target, Some(&Name::root_bytes())).is_err() {
        return Err(format!(
            "SVCB rdata {:?} is not as Knot prints it",
            tokens.join(" ")
        ));
    }
    for p in params {
        let key = p.split_once('=').map_or(*p, |(k, _)| k);
        let numbered = key.strip_prefix("key").is_some_and(|n| is_uint(n, 0xffff));
        if !numbered && !KEYS.contains(&key) {
            return Err(format!("SVCB parameter {p:?} has an unknown key"));
        }
    }
    Ok(())
}

/// Parses a (possibly relative) name; `@` is `origin`.
fn parse_name(text: &str, origin: Option<&DName>) -> Result<DName, String> {
    let absolute = ends_with_unescaped_dot(text);
    let full = match origin {
        _ if absolute => text.to_owned(),
        Some(o) if text == "@" => return Ok(o.clone()),
        Some(o) if o.is_root() => format!("{text}."),
        Some(o) => format!("{text}.{}", fqdn(o)),
        None => return Err(format!("{text:?} is not an absolute name")),
    };
    Name::<Vec<u8>>::from_str(&full)
        .map(|n| n.to_canonical_name::<Bytes>())
        .map_err(|e| format!("invalid domain name {text:?}: {e}"))
}

fn ends_with_unescaped_dot(text: &str) -> bool {
    let Some(body) = text.strip_suffix('.') else {
        return false;
    };
    let backslashes = body.bytes().rev().take_while(|&b| b == b'\\').count();
    backslashes % 2 == 0
}

/// Where one entry of a zone file is: the line it starts on, the bytes it spans, whether the
/// owner is left blank. Its tokens go into a buffer the caller reuses.
struct RawEntry {
    line: usize,
    span: std::ops::Range<usize>,
    blank_owner: bool,
}

/// Splits zone-file text into entries (RFC 1035 section 5.1).
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    /// `data` is not the end of the file: an entry it ends inside is not returned; the lexer
    /// stops before it (see [`Lexer::stalled`]).
    partial: bool,
    stalled: bool,
}

impl<'a> Lexer<'a> {
    fn new(data: &'a [u8]) -> Self {
        Lexer {
            data,
            pos: 0,
            line: 1,
            line_start: 0,
            partial: false,
            stalled: false,
        }
    }

    /// A lexer of `data`, a piece of a file starting at the beginning of line `line`;
    /// `partial` when more of the file follows.
    fn piece(data: &'a [u8], line: usize, partial: bool) -> Self {
        Lexer {
            line,
            partial,
            ..Lexer::new(data)
        }
    }

    fn text(&self, from: usize, to: usize) -> Result<&'a str, (usize, String)> {
        std::str::from_utf8(&self.data[from..to]).map_err(|_| (self.line, "not UTF-8 text".into()))
    }

    /// Moves past the quoted string at the position (its opening quote), which may span
    /// lines. `Ok(false)`: a partial piece ended inside it.
    fn skip_quoted(&mut self, start_line: usize) -> Result<bool, (usize, String)> {
        self.pos += 1;
        loop {
            match self.data.get(self.pos) {
                None if self.partial => return Ok(false),
                None => return Err((start_line, "unterminated quoted string".into())),
                Some(b'\\') => self.pos += 2,
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(true);
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Moves past the unquoted token at the position, up to a blank, a comment or a
    /// parenthesis (possibly past the end, after a trailing backslash).
    fn skip_bare(&mut self) {
        let d = self.data;
        while let Some(&b) = d.get(self.pos) {
            match b {
                b'\\' => self.pos += 2,
                // `key="value"` (SVCB parameters) is one token.
                b'"' => {
                    self.pos += 1;
                    while let Some(&q) = d.get(self.pos) {
                        self.pos += if q == b'\\' { 2 } else { 1 };
                        if q == b'"' {
                            break;
                        }
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                _ => self.pos += 1,
            }
        }
    }

    /// The next entry, its tokens in `tokens` (cleared first), or the line and message of a
    /// syntax error. In a partial piece, `None` with [`stalled`](Self::stalled) set means the
    /// entry goes on in the next piece: the position is back at its start.
    fn next_entry(
        &mut self,
        tokens: &mut Vec<&'a str>,
    ) -> Result<Option<RawEntry>, (usize, String)> {
        let resume = (self.pos, self.line, self.line_start);
        tokens.clear();
        let mut entry = RawEntry {
            line: 0,
            span: 0..0,
            blank_owner: false,
        };
        let mut depth = 0u32;
        let d = self.data;
        while self.pos < d.len() {
            let c = d[self.pos];
            match c {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                    if depth == 0 && !tokens.is_empty() {
                        entry.span.end = self.pos;
                        return Ok(Some(entry));
                    }
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b';' => {
                    while self.pos < d.len() && d[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'(' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err((self.line, "unbalanced ')'".into()));
                    }
                    depth -= 1;
                    self.pos += 1;
                }
                _ => {
                    let start = self.pos;
                    let start_line = self.line;
                    let line_start = self.line_start;
                    if c == b'"' {
                        if !self.skip_quoted(start_line)? {
                            return Ok(self.stall(resume));
                        }
                    } else {
                        self.skip_bare();
                    }
                    if self.partial && self.pos >= d.len() {
                        return Ok(self.stall(resume));
                    }
                    self.pos = self.pos.min(d.len());
                    if tokens.is_empty() {
                        entry.line = start_line;
                        entry.span.start = start;
                        entry.blank_owner = start != line_start;
                    }
                    tokens.push(self.text(start, self.pos)?);
                }
            }
        }
        // Mid-line at the end of a piece: the rest of the line (a comment, the entry, or the
        // first token after a blank owner's indentation) is in the next one.
        if self.partial && (depth > 0 || !tokens.is_empty() || self.pos > self.line_start) {
            return Ok(self.stall(resume));
        }
        if depth > 0 {
            return Err((self.line, "unbalanced '('".into()));
        }
        entry.span.end = self.pos;
        Ok((!tokens.is_empty()).then_some(entry))
    }

    /// Goes back to `resume` (position, line, line start) and says the entry is incomplete.
    fn stall(&mut self, resume: (usize, usize, usize)) -> Option<RawEntry> {
        (self.pos, self.line, self.line_start) = resume;
        self.stalled = true;
        None
    }
}

/// What the entries before a record set for it (RFC 1035 directives and TTL inheritance).
struct Scope {
    apex: DName,
    origin: DName,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
}

/// A record's TTL, type token and rdata tokens, as [`Scope::head`] splits them.
struct Head<'t, 's> {
    ttl: u32,
    type_token: &'s str,
    rdata: &'t [&'s str],
}

impl Scope {
    fn new(apex: &DName) -> Self {
        Scope {
            apex: apex.clone(),
            origin: apex.clone(),
            default_ttl: None,
            last_ttl: None,
        }
    }

    /// Applies `$ORIGIN` or `$TTL`; `$INCLUDE` and anything else are errors. Returns whether
    /// the origin changed (names written before it no longer mean the same).
    fn directive(&mut self, tokens: &[&str]) -> Result<bool, String> {
        match (tokens[0].to_ascii_uppercase().as_str(), &tokens[1..]) {
            ("$ORIGIN", [name]) => {
                self.origin = parse_name(name, Some(&self.origin))?;
                Ok(true)
            }
            ("$TTL", [ttl]) => {
                self.default_ttl = Some(parse_ttl(ttl)?);
                Ok(false)
            }
            ("$INCLUDE", [path, ..]) => Err(format!("$INCLUDE {path} is not allowed")),
            (d, _) => Err(format!("unsupported or malformed directive {d}")),
        }
    }

    /// Splits the tokens after the owner into TTL (given, `$TTL` or the last one), class (IN
    /// only), type and rdata.
    fn head<'t, 's>(&mut self, mut tokens: &'t [&'s str]) -> Result<Head<'t, 's>, String> {
        let mut ttl = None;
        let mut class = None;
        for _ in 0..2 {
            let Some(&tok) = tokens.first() else { break };
            if ttl.is_none() && tok.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(tok)?);
            } else if class.is_none() && is_class(tok) {
                class = Some(tok);
            } else {
                break;
            }
            tokens = &tokens[1..];
        }
        if let Some(c) = class
            && !c.eq_ignore_ascii_case("IN")
            && !c.eq_ignore_ascii_case("CLASS1")
        {
            return Err(format!("class {c} is not supported (only IN)"));
        }
        if ttl.is_some() {
            self.last_ttl = ttl;
        }
        let ttl = match ttl.or(self.default_ttl).or(self.last_ttl) {
            Some(t) => t,
            None => return Err("no TTL and no $TTL before this record".into()),
        };
        let (&type_token, rdata) = tokens.split_first().ok_or("a record without a type")?;
        Ok(Head {
            ttl,
            type_token,
            rdata,
        })
    }

    fn outside(&self, owner: &DName) -> String {
        format!(
            "owner {} is outside the zone {}",
            fqdn(owner),
            fqdn(&self.apex)
        )
    }
}

/// Reads the records of one zone file, checking each: owner inside the zone, class IN, TTL in
/// range, rdata well-formed for its type.
pub struct ZoneReader<'a> {
    file: String,
    lexer: Lexer<'a>,
    scope: Scope,
    tokens: Vec<&'a str>,
    last_owner: Option<(&'a str, DName)>,
}

impl<'a> ZoneReader<'a> {
    /// A reader of `data`, the zone file of `apex`; `file` labels errors.
    pub fn new(file: &str, apex: &DName, data: &'a [u8]) -> Self {
        ZoneReader {
            file: file.to_owned(),
            lexer: Lexer::new(data),
            scope: Scope::new(apex),
            tokens: Vec::new(),
            last_owner: None,
        }
    }

    fn err(&self, line: usize, message: impl Into<String>) -> ZoneFileError {
        file_error(&self.file, line, message)
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<ZoneRecord>, ZoneFileError> {
        let mut tokens = std::mem::take(&mut self.tokens);
        let result = loop {
            let entry = match self.lexer.next_entry(&mut tokens) {
                Ok(Some(e)) => e,
                Ok(None) => break Ok(None),
                Err((line, message)) => break Err(self.err(line, message)),
            };
            match self.record(&entry, &tokens) {
                Ok(Some(rec)) => break Ok(Some(rec)),
                Ok(None) => {}
                Err(message) => break Err(self.err(entry.line, message)),
            }
        };
        self.tokens = tokens;
        result
    }

    fn record(
        &mut self,
        entry: &RawEntry,
        tokens: &[&'a str],
    ) -> Result<Option<ZoneRecord>, String> {
        let mut tokens = tokens;
        if !entry.blank_owner && tokens[0].starts_with('$') {
            if self.scope.directive(tokens)? {
                self.last_owner = None;
            }
            return Ok(None);
        }
        let owner = if entry.blank_owner {
            match &self.last_owner {
                Some((_, name)) => name.clone(),
                None => return Err("a record without owner before any owner".into()),
            }
        } else {
            let tok = tokens[0];
            tokens = &tokens[1..];
            match &self.last_owner {
                Some((t, name)) if *t == tok && tok != "@" => name.clone(),
                _ => {
                    let name = parse_name(tok, Some(&self.scope.origin))?;
                    self.last_owner = Some((tok, name.clone()));
                    name
                }
            }
        };
        let head = self.scope.head(tokens)?;
        if !owner.ends_with(&self.scope.apex) {
            return Err(self.scope.outside(&owner));
        }
        let data = head.rdata.join(" ");
        let (rtype, data, key) = parse_rdata(&self.scope.origin, head.type_token, &data)?;
        Ok(Some(ZoneRecord {
            line: entry.line,
            span: entry.span.clone(),
            type_readable: type_token_readable(head.type_token),
            owner,
            ttl: head.ttl,
            rtype,
            data,
            key,
        }))
    }
}

fn file_error(file: &str, line: usize, message: impl Into<String>) -> ZoneFileError {
    ZoneFileError {
        file: file.to_owned(),
        line: (line > 0).then_some(line),
        message: message.into(),
    }
}

/// What [`ZoneChecker`] found in a zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSummary {
    /// The SOA serial (0 for a file without apex, see [`ZoneChecker::new`]).
    pub serial: u32,
    /// Every record, SOA included.
    pub records: u64,
    /// Lines of records Knot wrote but cannot read back by type name (`NULL \# 0`): such a
    /// file cannot be loaded by Knot as it is.
    pub unloadable: Vec<usize>,
    /// Record types written by a name that older Knot versions do not read (WALLET before
    /// 3.4), one entry per type.
    pub newer_types: Vec<NewerType>,
}

/// Records of a type written by a name not every known Knot reads (e.g. WALLET, which Knot
/// 3.2 reads only as `TYPE262`): a restore into an older Knot converts them to RFC 3597 form,
/// or stops before any change when it cannot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewerType {
    /// The type code.
    pub code: u16,
    /// Its mnemonic.
    pub name: String,
    /// The first line of such a record (of one that cannot be converted, if any).
    pub line: usize,
    /// How many records of the type.
    pub records: u64,
    /// Whether every one can be written in RFC 3597 form.
    pub convertible: bool,
}

/// Notes a record of `rtype` with rdata `rdata` on `line` in `types` when an older Knot would
/// not read it as written (its mnemonic, not RFC 3597 form).
fn note_newer_type(types: &mut Vec<NewerType>, line: usize, rtype: Rtype, rdata: &[&str]) {
    let generic = rdata.first() == Some(&"\\#");
    if generic || KnotTable::OLDEST.reads(rtype) || !KnotTable::LATEST.reads(rtype) {
        return;
    }
    let convertible = generic_wire_of(rtype, rdata).is_ok();
    let code = rtype.to_int();
    match types.iter_mut().find(|t| t.code == code) {
        Some(t) => {
            t.records += 1;
            if t.convertible && !convertible {
                (t.convertible, t.line) = (false, line);
            }
        }
        None => types.push(NewerType {
            code,
            name: KnotTable::LATEST.type_name(rtype),
            line,
            records: 1,
            convertible,
        }),
    }
}

/// Where a record's owner is relative to the zone apex.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Apex,
    Below,
    Outside,
}

/// Checks a zone file as it streams by, fed in pieces of any size, without building its
/// records: the same checks as [`ZoneReader`] (owner inside the zone, class, TTL, rdata of any
/// type in Knot's table), plus exactly one SOA, at the apex. Memory: the unfinished entry at
/// the end of a piece. The common types (names in plain hostname characters, A, AAAA, TXT,
/// MX, SRV, the field-checked types) are checked on the tokens as they lie in the piece; the
/// rest go through [`parse_rdata`].
pub struct ZoneChecker {
    file: String,
    scope: Scope,
    apex_text: String,
    /// Where the current origin is relative to the apex.
    origin_place: Place,
    last_owner: String,
    last_place: Option<Place>,
    with_soa: bool,
    /// The start of an entry that goes on in the next piece.
    pending: Vec<u8>,
    /// Size `pending` must reach before it is lexed again (keeps a long entry linear).
    retry_at: usize,
    line: usize,
    serial: Option<u32>,
    records: u64,
    unloadable: Vec<usize>,
    newer_types: Vec<NewerType>,
}

impl ZoneChecker {
    /// A checker of the zone file of `apex`; `file` labels errors. Without `with_soa` the file
    /// must hold no SOA and no NS record (its apex comes from the target zone at restore time).
    pub fn new(file: &str, apex: &DName, with_soa: bool) -> Self {
        ZoneChecker {
            file: file.to_owned(),
            scope: Scope::new(apex),
            apex_text: fqdn(apex),
            origin_place: Place::Apex,
            last_owner: String::new(),
            last_place: None,
            with_soa,
            pending: Vec::new(),
            retry_at: 0,
            line: 1,
            serial: None,
            records: 0,
            unloadable: Vec::new(),
            newer_types: Vec::new(),
        }
    }

    /// Checks the next piece of the file.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), ZoneFileError> {
        if self.pending.is_empty() {
            let used = self.run(piece, true)?;
            self.keep(&piece[used..]);
        } else {
            self.pending.extend_from_slice(piece);
            if self.pending.len() >= self.retry_at {
                let mut pending = std::mem::take(&mut self.pending);
                let used = self.run(&pending, true)?;
                pending.drain(..used);
                self.pending = pending;
                self.retry_at = self.pending.len() * 2;
            }
        }
        Ok(())
    }

    fn keep(&mut self, rest: &[u8]) {
        self.pending.extend_from_slice(rest);
        self.retry_at = rest.len() * 2;
    }

    /// Checks what is left and returns the summary: the file has ended.
    pub fn finish(mut self) -> Result<ZoneSummary, ZoneFileError> {
        let pending = std::mem::take(&mut self.pending);
        self.run(&pending, false)?;
        let serial = match self.serial {
            Some(serial) => serial,
            None if !self.with_soa => 0,
            None => {
                let apex = &self.apex_text;
                return Err(file_error(
                    &self.file,
                    0,
                    format!("no SOA record for {apex}"),
                ));
            }
        };
        Ok(ZoneSummary {
            serial,
            records: self.records,
            unloadable: self.unloadable,
            newer_types: self.newer_types,
        })
    }

    /// Checks the complete entries of `data`; returns how many bytes they span.
    fn run(&mut self, data: &[u8], partial: bool) -> Result<usize, ZoneFileError> {
        let mut lexer = Lexer::piece(data, self.line, partial);
        let mut tokens = Vec::with_capacity(16);
        loop {
            match lexer.next_entry(&mut tokens) {
                Ok(Some(e)) => self
                    .entry(&e, &tokens)
                    .map_err(|m| file_error(&self.file, e.line, m))?,
                Ok(None) => break,
                Err((line, m)) => return Err(file_error(&self.file, line, m)),
            }
        }
        self.line = lexer.line;
        Ok(lexer.pos)
    }

    fn entry(&mut self, entry: &RawEntry, tokens: &[&str]) -> Result<(), String> {
        let mut tokens = tokens;
        if !entry.blank_owner && tokens[0].starts_with('$') {
            if self.scope.directive(tokens)? {
                self.origin_place = self.place_of(&self.scope.origin);
                self.last_place = None;
            }
            return Ok(());
        }
        let place = if entry.blank_owner {
            self.last_place
                .ok_or("a record without owner before any owner")?
        } else {
            let tok = tokens[0];
            tokens = &tokens[1..];
            match self.last_place {
                Some(p) if self.last_owner == tok && tok != "@" => p,
                _ => {
                    let p = self.owner_place(tok)?;
                    self.last_owner.clear();
                    self.last_owner.push_str(tok);
                    self.last_place = Some(p);
                    p
                }
            }
        };
        let head = self.scope.head(tokens)?;
        if place == Place::Outside {
            let owner = parse_name(&self.last_owner, Some(&self.scope.origin))?;
            return Err(self.scope.outside(&owner));
        }
        let (rtype, readable, soa) = self.check_rdata(head.type_token, head.rdata)?;
        note_newer_type(&mut self.newer_types, entry.line, rtype, head.rdata);
        self.count(entry.line, place, rtype, readable, soa)
    }

    /// Counts one checked record: SOA (one, at the apex, its serial), NS, unloadable types.
    fn count(
        &mut self,
        line: usize,
        place: Place,
        rtype: Rtype,
        readable: bool,
        soa: Option<String>,
    ) -> Result<(), String> {
        self.records += 1;
        if !readable {
            self.unloadable.push(line);
        }
        if !self.with_soa && (rtype == Rtype::SOA || rtype == Rtype::NS) {
            return Err(format!(
                "{rtype} record in a zone file whose SOA and NS come from the target zone"
            ));
        }
        if let Some(data) = soa {
            if place != Place::Apex {
                let owner = parse_name(&self.last_owner, Some(&self.scope.origin))?;
                return Err(format!(
                    "SOA owner {} is not the zone apex {}",
                    fqdn(&owner),
                    self.apex_text
                ));
            }
            if self.serial.is_some() {
                return Err("more than one SOA record".into());
            }
            self.serial =
                Some(soa_field(&data, 2).ok_or_else(|| "SOA record without a serial".to_owned())?);
        }
        Ok(())
    }

    fn place_of(&self, name: &DName) -> Place {
        if *name == self.scope.apex {
            Place::Apex
        } else if name.ends_with(&self.scope.apex) {
            Place::Below
        } else {
            Place::Outside
        }
    }

    /// Where the owner token `tok` is, from its text when it is a plain name.
    fn owner_place(&self, tok: &str) -> Result<Place, String> {
        if tok == "@" {
            return Ok(self.origin_place);
        }
        let origin_len = self.scope.origin.as_slice().len();
        match plain_name(tok) {
            Some(Plain::Relative(len)) if len + origin_len <= 255 => Ok(match self.origin_place {
                Place::Outside => Place::Outside,
                _ => Place::Below,
            }),
            Some(Plain::Absolute(len)) if len < 255 => {
                let apex = self.apex_text.as_bytes();
                let owner = tok.as_bytes();
                Ok(if owner.eq_ignore_ascii_case(apex) {
                    Place::Apex
                } else if apex == b"."
                    || (owner.len() > apex.len()
                        && owner[owner.len() - apex.len() - 1] == b'.'
                        && owner[owner.len() - apex.len()..].eq_ignore_ascii_case(apex))
                {
                    Place::Below
                } else {
                    Place::Outside
                })
            }
            _ => Ok(self.place_of(&parse_name(tok, Some(&self.scope.origin))?)),
        }
    }

    /// Checks rdata `rdata` of type `type_token`: the type, whether Knot reads the token back,
    /// and for an SOA its rdata in presentation form.
    fn check_rdata(
        &self,
        type_token: &str,
        rdata: &[&str],
    ) -> Result<(Rtype, bool, Option<String>), String> {
        let known = KNOT_TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(type_token));
        let readable = known.is_none_or(|t| t.knot_reads);
        if let Some(t) = known
            && rdata.first() != Some(&"\\#")
            && t.code != 6
        {
            let origin_len = self.scope.origin.as_slice().len();
            let fast = match (t.code, t.syntax, rdata) {
                (1, _, [a]) => a.parse::<Ipv4Addr>().is_ok(),
                (28, _, [a]) => a.parse::<Ipv6Addr>().is_ok(),
                (16, _, [_, ..]) => rdata.iter().all(|s| plain_quoted(s)),
                (2 | 5 | 12 | 39, _, [n]) => plain_target(n, origin_len),
                (15, _, [p, n]) => is_uint(p, 0xffff) && plain_target(n, origin_len),
                (33, _, [p, w, port, n]) => {
                    [p, w, port].iter().all(|v| is_uint(v, 0xffff)) && plain_target(n, origin_len)
                }
                (_, Syntax::Fields(fields), _) => {
                    check_fields(fields, rdata).map_err(|m| format!("{} rdata: {m}", t.name))?;
                    true
                }
                (_, Syntax::Loc, _) => {
                    check_loc(rdata)?;
                    true
                }
                (_, Syntax::Apl, _) => {
                    rdata.iter().try_for_each(|t| check_apl(t))?;
                    true
                }
                _ => false,
            };
            if fast {
                return Ok((Rtype::from_int(t.code), readable, None));
            }
        }
        let (rtype, data, _) = parse_rdata(&self.scope.origin, type_token, &rdata.join(" "))?;
        let soa = (rtype == Rtype::SOA).then_some(data);
        Ok((rtype, readable, soa))
    }
}

/// A name written in plain hostname characters (letters, digits, `-`, `_`, `*`, `/`), no
/// escapes, labels of 1 to 63 octets: its wire length without the root label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plain {
    Relative(usize),
    Absolute(usize),
}

fn plain_name(text: &str) -> Option<Plain> {
    let (body, absolute) = match text.strip_suffix('.') {
        Some(b) => (b, true),
        None => (text, false),
    };
    let mut len = 0;
    for label in body.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b'/'))
        {
            return None;
        }
        len += label.len() + 1;
    }
    Some(if absolute {
        Plain::Absolute(len)
    } else {
        Plain::Relative(len)
    })
}

/// A plain name that is valid as rdata below an origin of wire length `origin_len`.
fn plain_target(text: &str, origin_len: usize) -> bool {
    match plain_name(text) {
        Some(Plain::Absolute(len)) => len < 255,
        Some(Plain::Relative(len)) => len + origin_len <= 255,
        None => false,
    }
}

/// A quoted character string of at most 255 octets without escapes or inner quotes.
fn plain_quoted(t: &str) -> bool {
    t.len() >= 2
        && t.len() <= 257
        && t.starts_with('"')
        && t.ends_with('"')
        && !t[1..t.len() - 1].contains(['"', '\\'])
}

/// A zone file ready for a Knot of `table` to load: every record it cannot read back by type
/// name (`NULL \\# 0`; WALLET on Knot 3.2) rewritten as `TYPEnnn` in RFC 3597 form
/// ([`knot_form`]), and the SOA serial replaced by `serial(archived)`. Other entries keep their
/// bytes. Returns the new text and the serial it holds.
pub fn loadable_zone_file(
    file: &str,
    apex: &DName,
    data: &[u8],
    table: KnotTable,
    serial: impl Fn(u32) -> u32,
) -> Result<(Vec<u8>, u32), ZoneFileError> {
    let mut reader = ZoneReader::new(file, apex, data);
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut copied = 0;
    let mut soa_serial = None;
    while let Some(rec) = reader.next_record()? {
        let mut rewrite = None;
        if rec.rtype == Rtype::SOA {
            let current = soa_field(&rec.data, 2)
                .ok_or_else(|| reader.err(rec.line, "SOA record without a serial"))?;
            let wanted = serial(current);
            soa_serial = Some(wanted);
            if wanted != current {
                rewrite = Some((rec.type_name(), with_soa_serial(&rec.data, wanted)));
            }
        } else if let Some(form) = knot_form(&rec, table).map_err(|m| reader.err(rec.line, m))? {
            rewrite = Some((form.type_name, form.data));
        }
        if let Some((type_name, rdata)) = rewrite {
            out.extend_from_slice(&data[copied..rec.span.start]);
            let line = format!("{} {} {type_name} {rdata}\n", fqdn(&rec.owner), rec.ttl,);
            out.extend_from_slice(line.as_bytes());
            copied = rec.span.end;
        }
    }
    out.extend_from_slice(&data[copied..]);
    let serial =
        soa_serial.ok_or_else(|| reader.err(0, format!("no SOA record for {}", fqdn(apex))))?;
    Ok((out, serial))
}

/// Field `i` of SOA rdata in presentation form, as a number.
fn soa_field(rdata: &str, i: usize) -> Option<u32> {
    rdata.split_whitespace().nth(i)?.parse().ok()
}

/// SOA rdata (`mname rname serial refresh retry expire minimum`) with another serial.
pub fn with_soa_serial(rdata: &str, serial: u32) -> String {
    rdata
        .split_whitespace()
        .enumerate()
        .map(|(i, f)| {
            if i == 2 {
                serial.to_string()
            } else {
                f.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_class(tok: &str) -> bool {
    ["IN", "CH", "HS", "CS", "NONE", "ANY"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(tok))
        || tok
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("CLASS"))
}

/// A TTL: seconds, or BIND's units (`1h30m`).
fn parse_ttl(tok: &str) -> Result<u32, String> {
    let bad = || format!("invalid TTL {tok:?}");
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in tok.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10).ok_or_else(bad)? + u64::from(d));
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(bad()),
        };
        total += num.take().ok_or_else(bad)? * unit;
    }
    total += num.unwrap_or(0);
    if total > u64::from(u32::MAX) {
        return Err(format!("TTL {tok} is larger than {}", u32::MAX));
    }
    Ok(total as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::rr::parse_abs_name;

    /// A zone with one record of every type in Knot's table, as written for Knot to load.
    const SOURCE: &str = include_str!("../tests/data/types.test.zone");
    /// The same zone as Knot 3.2.6 writes it in `zone-backup`.
    const KNOT_3_2: &str = include_str!("../tests/data/knot-3.2.6-types.test.zone");

    fn read_all(zone: &str, text: &str) -> Result<Vec<ZoneRecord>, ZoneFileError> {
        let apex = parse_abs_name(zone).unwrap();
        let mut r = ZoneReader::new("z", &apex, text.as_bytes());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    fn keyed(records: &[ZoneRecord]) -> Vec<(String, u16, Vec<u8>)> {
        let mut v: Vec<_> = records
            .iter()
            .map(|r| (fqdn(&r.owner), r.rtype.to_int(), r.key.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_knot_type_is_read_from_source_and_from_knots_dump() {
        let source = read_all("types.test", SOURCE).unwrap();
        let dumped = read_all("types.test", KNOT_3_2).unwrap();
        assert_eq!(source.len(), 57);
        assert_eq!(dumped.len(), 57);
        let codes: std::collections::BTreeSet<u16> =
            dumped.iter().map(|r| r.rtype.to_int()).collect();
        for t in KNOT_TYPES
            .iter()
            .filter(|t| !matches!(t.code, 4 | 8 | 24 | 30))
        {
            assert!(
                codes.contains(&t.code),
                "{} missing from the test zone",
                t.name
            );
        }
        // Every record Knot printed parses the way Knot's zone-read would present it.
        for r in &dumped {
            let again = parse_served(&fqdn(&r.owner), r.ttl, &r.type_name(), &r.data).unwrap();
            assert_eq!(again.key, r.key, "{r:?}");
        }
    }

    #[test]
    fn records_domain_parses_compare_equal_between_source_and_dump() {
        let source = keyed(&read_all("types.test", SOURCE).unwrap());
        let dumped = keyed(&read_all("types.test", KNOT_3_2).unwrap());
        let wire_types = [1u16, 2, 5, 6, 12, 15, 16, 28, 33, 39, 43, 48, 52];
        for t in wire_types {
            let a: Vec<_> = source.iter().filter(|k| k.1 == t).collect();
            let b: Vec<_> = dumped.iter().filter(|k| k.1 == t).collect();
            assert_eq!(a, b, "type {t}");
        }
    }

    #[test]
    fn null_is_sent_to_knot_by_number() {
        let recs = read_all("types.test", KNOT_3_2).unwrap();
        let null = recs.iter().find(|r| r.rtype == Rtype::NULL).unwrap();
        assert_eq!(null.data, "\\# 0");
        assert_eq!(null.type_name(), "TYPE10");
        assert!(!null.knot_loads_by_name());
        let a = recs.iter().find(|r| r.rtype == Rtype::A).unwrap();
        assert!(a.knot_loads_by_name());
        assert_eq!(a.type_name(), "A");
    }

    #[test]
    fn malformed_rdata_of_types_domain_lacks_is_still_an_error() {
        let head = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n";
        for (bad, what) in [
            ("@ URI 10 \"x\"", "URI"),
            ("@ EUI48 00-00-5e-00-53", "EUI48"),
            ("@ L32 10 10.1.2", "L32"),
            ("@ LOC 52 N 4 E", "LOC"),
            ("@ APL 3:1.2.3.4/8", "APL"),
            ("@ CSYNC 1 2 NOTATYPE", "CSYNC"),
            ("@ NULL \\# 2 01", "generic"),
            ("@ TYPE65280 abc", "RFC 3597"),
            ("@ BOGUS 1", "unknown record type"),
            ("@ SVCB 1 . nokey=1", "SVCB"),
            ("www.other.test. A 192.0.2.1", "outside the zone"),
            ("@ CH TXT \"x\"", "class CH"),
        ] {
            let text = format!("{head}{bad}\n");
            let e = read_all("types.test", &text).unwrap_err();
            assert_eq!(e.line, Some(3), "{bad}: {e}");
            assert!(e.message.contains(what), "{bad}: {e}");
        }
    }

    /// The checker's verdict on `text` fed in pieces of `size` bytes.
    fn check_in_pieces(zone: &str, text: &str, size: usize) -> Result<ZoneSummary, ZoneFileError> {
        let apex = parse_abs_name(zone).unwrap();
        let mut c = ZoneChecker::new("z", &apex, true);
        for piece in text.as_bytes().chunks(size.max(1)) {
            c.feed(piece)?;
        }
        c.finish()
    }

    #[test]
    fn checker_agrees_with_the_reader_in_pieces_of_any_size() {
        let head = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n";
        let mut good = vec![
            ("types.test", SOURCE.to_owned()),
            ("types.test", KNOT_3_2.to_owned()),
            (
                "example.com",
                "$ORIGIN example.com.\n$TTL 1h\n@ IN SOA ns h ( 7 ; serial\n 2 3 4 5 )\n  IN 300 NS ns\nns A 192.0.2.1\n\n; c\n   \n$ORIGIN sub.example.com.\nx TXT \"a;b\" \"c\\\"d\"\n  MX 10 Mail.Example.COM.\nWWW.sub.EXAMPLE.com. SRV 1 2 3 t\n*.w CNAME a.b\n0/25 PTR x.y.\n\\046x A 192.0.2.2".to_owned(),
            ),
        ];
        for n in [".", "a\\000b.test", "UPPER.test"] {
            let owner = if n == "." {
                "x.".to_owned()
            } else {
                format!("x.{n}.")
            };
            good.push((
                n,
                format!("$TTL 60\n@ SOA ns. h. 1 2 3 4 5\n@ NS ns.\n{owner} A 192.0.2.1\n"),
            ));
        }
        let mut bad = Vec::new();
        for tail in [
            "@ URI 10 \"x\"",
            "@ EUI48 00-00-5e-00-53",
            "www.other.test. A 192.0.2.1",
            "www.other.test. A 192.0.2.999",
            "x A 192.0.2.999",
            "x AAAA 2001:db8::g",
            "x TXT \"unterminated",
            "x MX 70000 mail",
            "x SRV 1 2 3",
            "x CNAME a b",
            "xtypes.test. A 192.0.2.1",
            "x ) A 192.0.2.1",
            "@ SOA ns h 2 2 3 4 5",
            "y.types.test. SOA ns h 2 2 3 4 5",
            &format!("{}.types.test. A 192.0.2.1", "a".repeat(64)),
            &format!("{} A 192.0.2.1", vec!["b".repeat(60); 5].join(".")),
        ] {
            bad.push(format!("{head}x A 192.0.2.1\n{tail}\nz A 192.0.2.1\n"));
        }
        for (zone, text) in &good {
            let records = read_all(zone, text).unwrap().len() as u64;
            for size in [1, 2, 3, 7, 64, 4096, text.len()] {
                let s = check_in_pieces(zone, text, size)
                    .unwrap_or_else(|e| panic!("{zone} {size}: {e}"));
                assert_eq!(s.records, records, "{zone} in pieces of {size}");
            }
        }
        for text in &bad {
            let Err(whole) = check_in_pieces("types.test", text, text.len()) else {
                panic!("{text} is accepted")
            };
            assert_eq!(whole.line, Some(4), "{text}: {whole}");
            if let Err(e) = read_all("types.test", text) {
                assert_eq!(e.line, whole.line, "{text}: {e} vs {whole}");
                assert_eq!(e.message, whole.message, "{text}");
            }
            for size in [1, 2, 5, 64] {
                let e = check_in_pieces("types.test", text, size).unwrap_err();
                assert_eq!(e, whole, "{text} in pieces of {size}");
            }
        }
    }

    #[test]
    fn names_knot_serves_are_read() {
        let cases = [
            (".", "@ 60 SOA ns. h. 1 2 3 4 5\nns. 60 A 192.0.2.1\n"),
            (
                "a/b.test",
                "@ 60 SOA ns. h. 1 2 3 4 5\nwww.a/b.test. 60 A 192.0.2.1\n",
            ),
            (
                "x\\000y.test",
                "@ 60 SOA ns. h. 1 2 3 4 5\nwww.x\\000y.test. 60 A 192.0.2.1\n",
            ),
            (
                "UPPER.Test",
                "@ 60 SOA ns. h. 1 2 3 4 5\nWWW 60 A 192.0.2.1\n",
            ),
        ];
        for (zone, text) in cases {
            let recs = read_all(zone, text).unwrap_or_else(|e| panic!("{zone}: {e}"));
            assert_eq!(recs.len(), 2, "{zone}");
            assert_eq!(recs[0].owner, parse_abs_name(zone).unwrap());
        }
        let long = format!(
            "{}.test",
            [
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(56)
            ]
            .join(".")
        );
        assert_eq!(long.len() + 2, 255);
        let text = format!("@ 60 SOA ns. h. 1 2 3 4 5\n{long}. 60 A 192.0.2.1\n");
        assert_eq!(read_all(&long, &text).unwrap().len(), 2);
    }

    #[test]
    fn loadable_file_renames_null_and_sets_the_serial() {
        let apex = parse_abs_name("types.test").unwrap();
        let (text, serial) =
            loadable_zone_file("z", &apex, KNOT_3_2.as_bytes(), KnotTable::LATEST, |_| {
                2024010105
            })
            .unwrap();
        assert_eq!(serial, 2024010105);
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("null.types.test. 3600 TYPE10 \\# 0\n"),
            "{text}"
        );
        assert!(!text.contains("\tNULL\t"), "{text}");
        assert!(text.contains(" 2024010105 3600 900 604800 300\n"), "{text}");
        let before = read_all("types.test", KNOT_3_2).unwrap();
        let after = read_all("types.test", &text).unwrap();
        assert_eq!(before.len(), after.len());
        // Without a serial only the unloadable lines change.
        let (kept, serial) =
            loadable_zone_file("z", &apex, KNOT_3_2.as_bytes(), KnotTable::LATEST, |s| s).unwrap();
        assert_eq!(serial, 2024010101);
        let kept = String::from_utf8(kept).unwrap();
        let changed: Vec<_> = KNOT_3_2
            .lines()
            .zip(kept.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        // A multi-line SOA is replaced as a whole.
        let multi = "$TTL 60\n@ SOA ns h ( 7\n 2 3 4 5 )\nwww A 192.0.2.1\n";
        let (text, _) =
            loadable_zone_file("z", &apex, multi.as_bytes(), KnotTable::LATEST, |_| 9).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "$TTL 60\ntypes.test. 60 SOA ns.types.test. h.types.test. 9 2 3 4 5\nwww A 192.0.2.1\n"
        );
    }

    #[test]
    fn wallet_is_converted_to_rfc_3597_for_knot_3_2_only() {
        let apex = parse_abs_name("t").unwrap();
        let zone = "$TTL 60\n@ SOA ns h 1 2 3 4 5\nw WALLET \"hello\" \"a\\\"b\\032c\" plain\nn NULL \\# 0\n";
        let recs = read_all("t", zone).unwrap();
        let form = knot_form(&recs[1], KnotTable::V3_2).unwrap().unwrap();
        assert_eq!(form.type_name, "TYPE262");
        assert_eq!(
            form.data,
            format!("\\# 18 {}", hex::encode(b"\x05hello\x05a\"b c\x05plain"))
        );
        assert_eq!(knot_form(&recs[1], KnotTable::V3_4).unwrap(), None);
        // NULL is read by number on every version.
        let null = knot_form(&recs[2], KnotTable::V3_4).unwrap().unwrap();
        assert_eq!(
            (null.type_name.as_str(), null.data.as_str()),
            ("TYPE10", "\\# 0")
        );
        // The converted file reads back to the same wire form as Knot 3.2 serves it.
        let (text, _) =
            loadable_zone_file("z", &apex, zone.as_bytes(), KnotTable::V3_2, |s| s).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("w.t. 60 TYPE262 \\# 18 "), "{text}");
        let served = parse_served("w.t.", 60, "TYPE262", &form.data).unwrap();
        assert_eq!(served.key, form.key);
        let (same, _) =
            loadable_zone_file("z", &apex, zone.as_bytes(), KnotTable::V3_4, |s| s).unwrap();
        assert!(
            String::from_utf8(same)
                .unwrap()
                .contains("w WALLET \"hello\"")
        );
    }

    #[test]
    fn unknown_versions_take_the_nearest_lower_table() {
        assert_eq!(KnotTable::for_version(3, 2), (KnotTable::V3_2, true));
        assert_eq!(KnotTable::for_version(3, 3), (KnotTable::V3_2, false));
        assert_eq!(KnotTable::for_version(3, 4), (KnotTable::V3_4, true));
        assert_eq!(KnotTable::for_version(3, 5), (KnotTable::V3_4, false));
        assert_eq!(KnotTable::for_version(4, 0), (KnotTable::V3_4, false));
        assert_eq!(KnotTable::for_version(3, 1), (KnotTable::V3_2, false));
        assert!(!KnotTable::V3_2.reads(Rtype::from_int(262)));
        assert!(KnotTable::V3_4.reads(Rtype::from_int(262)));
        assert!(KnotTable::V3_2.reads(Rtype::URI));
        assert!(!KnotTable::V3_4.reads(Rtype::NULL));
    }

    #[test]
    fn syntax_blank_owners_parentheses_and_directives() {
        let text = "$ORIGIN example.com.\n$TTL 1h\n@ IN SOA ns h ( 7 ; serial\n 2 3 4 5 )\n  IN 300 NS ns\nns A 192.0.2.1\n$ORIGIN sub.example.com.\nx TXT \"a;b\" \"c\\\"d\"\n";
        let recs = read_all("example.com", text).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].ttl, 3600);
        assert_eq!(recs[1].ttl, 300);
        assert_eq!(fqdn(&recs[1].owner), "example.com.");
        assert_eq!(fqdn(&recs[3].owner), "x.sub.example.com.");
        assert_eq!(recs[3].line, 8);
    }
}
