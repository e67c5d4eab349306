//! Kea's DHCPv4 memfile CSV: header, rows, escapes, validity rules, reader and writer.
//!
//! The format is the one `kea-dhcp4` and `kea-lfc` read and write: split on commas only (no
//! quoting), LF line endings, one header line naming the columns. Kea 2.2 writes 11 columns,
//! Kea 2.4+ 12 (`pool_id`); older files have 9 or 10. Extra unknown trailing columns are kept
//! verbatim. Writing a parsed file gives back the same bytes for every file Kea writes.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The known column names, in order, of the newest schema (Kea 2.4+, with `pool_id`).
pub const COLUMNS: [&str; 12] = [
    "address",
    "hwaddr",
    "client_id",
    "valid_lifetime",
    "expire",
    "subnet_id",
    "fqdn_fwd",
    "fqdn_rev",
    "hostname",
    "state",
    "user_context",
    "pool_id",
];

/// Kea needs at least the columns up to `hostname` (schema 1.0) in a header.
pub const MIN_COLUMNS: usize = 9;

/// Columns of Kea 2.2's own schema (2.1: up to `user_context`).
pub const KEA_2_2_COLUMNS: usize = 11;

/// Longest hardware address Kea accepts (`HWAddr::MAX_HWADDR_LEN`).
pub const MAX_HWADDR_LEN: usize = 20;
/// Shortest non-empty client identifier Kea accepts.
pub const MIN_CLIENT_ID_LEN: usize = 2;
/// Longest client identifier Kea accepts.
pub const MAX_CLIENT_ID_LEN: usize = 255;

/// The header line of a lease file: which columns its rows have.
///
/// Kept as written so a parsed file is written back with the same schema. It also carries how
/// many columns the *loading* Kea knows ([`Header::kea_columns`]), which decides what happens
/// to values a row has beyond the header's columns.
#[derive(Clone, Debug)]
pub struct Header {
    columns: Vec<String>,
    /// Columns of the loading Kea's own schema: 11 (Kea 2.2) or 12 (Kea 2.4+, `pool_id`).
    kea_columns: usize,
}

impl PartialEq for Header {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
    }
}

impl Eq for Header {}

impl std::hash::Hash for Header {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.columns.hash(state);
    }
}

impl Header {
    /// The 11-column header Kea 2.2 writes (schema 2.1).
    pub fn kea_2_2() -> Self {
        Self::with_known_columns(11)
    }

    /// The 12-column header Kea 2.4 and later write (adds `pool_id`).
    pub fn kea_2_4() -> Self {
        Self::with_known_columns(12)
    }

    /// A header with the first `n` known columns (`MIN_COLUMNS..=12`); older schemas are shorter.
    pub fn with_known_columns(n: usize) -> Self {
        assert!(
            (MIN_COLUMNS..=COLUMNS.len()).contains(&n),
            "a Kea lease header has 9 to 12 known columns"
        );
        Self {
            columns: COLUMNS[..n].iter().map(|c| (*c).to_owned()).collect(),
            kea_columns: n.max(KEA_2_2_COLUMNS),
        }
    }

    /// Parses a header line (without its line feed).
    pub fn parse(line: &[u8]) -> Result<Self, RowErrorKind> {
        let text = std::str::from_utf8(line).map_err(|_| RowErrorKind::BadHeader {
            reason: "not UTF-8".into(),
        })?;
        let columns: Vec<String> = text.split(',').map(str::to_owned).collect();
        if columns.len() < MIN_COLUMNS {
            return Err(RowErrorKind::BadHeader {
                reason: format!(
                    "{} columns, Kea needs at least {MIN_COLUMNS} (up to hostname)",
                    columns.len()
                ),
            });
        }
        for (i, (got, want)) in columns.iter().zip(COLUMNS.iter()).enumerate() {
            if got != want {
                return Err(RowErrorKind::BadHeader {
                    reason: format!("column {} is `{got}`, expected `{want}`", i + 1),
                });
            }
        }
        let kea_columns = columns.len().clamp(KEA_2_2_COLUMNS, COLUMNS.len());
        Ok(Self {
            columns,
            kea_columns,
        })
    }

    /// The same header as read by a Kea whose own schema has `n` columns (11: Kea 2.2; 12:
    /// Kea 2.4 and later). A row may have more values than its header: Kea reads those up to
    /// its own schema's width as its columns (Kea 2.6 takes a twelfth value of an 11-column
    /// file as `pool_id`) and ignores the rest (Kea 2.2 ignores a twelfth value). By default a
    /// header assumes the schema it names itself, at least Kea 2.2's.
    pub fn read_by_kea_columns(mut self, n: usize) -> Self {
        self.kea_columns = n.clamp(KEA_2_2_COLUMNS, COLUMNS.len());
        self
    }

    /// Columns of the loading Kea's schema (see [`Header::read_by_kea_columns`]).
    pub fn kea_columns(&self) -> usize {
        self.kea_columns
    }

    /// Number of columns every row of this file has.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Always false: a header has at least [`MIN_COLUMNS`] columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The column names as written.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Whether rows carry `state` (schema 2.0+); if not, it reads as 0.
    pub fn has_state(&self) -> bool {
        self.len() > 9
    }

    /// Whether rows carry `user_context` (schema 2.1+).
    pub fn has_user_context(&self) -> bool {
        self.len() > 10
    }

    /// Whether rows carry `pool_id` (Kea 2.4+).
    pub fn has_pool_id(&self) -> bool {
        self.len() > 11
    }

    /// The header line, without its line feed.
    pub fn to_line(&self) -> String {
        self.columns.join(",")
    }
}

impl Default for Header {
    /// Kea 2.2's header, the one this project's daemons write.
    fn default() -> Self {
        Self::kea_2_2()
    }
}

/// A text column (`hostname`, `user_context`) as it is stored in the file: raw bytes in which
/// `,` and `&` appear as `&#x2c` / `&#x26` (Kea 3.3 also escapes control and non-ASCII bytes).
///
/// Kept in the stored form so files round-trip byte for byte whichever Kea wrote them;
/// [`EscapedText::decode`] gives the bytes Kea holds in memory.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EscapedText(Vec<u8>);

impl EscapedText {
    /// Wraps a field exactly as stored; fails if it holds a comma or a line feed.
    pub fn from_stored(raw: &[u8]) -> Result<Self, RowErrorKind> {
        if raw.contains(&b',') || raw.contains(&b'\n') {
            return Err(RowErrorKind::BadField {
                column: "text",
                reason: "a stored text field cannot hold a comma or line feed".into(),
            });
        }
        Ok(Self(raw.to_vec()))
    }

    /// Escapes `value` the way Kea up to 3.2 writes it: `,` → `&#x2c`, `&` → `&#x26`, and a
    /// line feed → `&#x0a` (which Kea itself would not escape, breaking the file).
    pub fn encode(value: &[u8]) -> Self {
        let mut out = Vec::with_capacity(value.len());
        for &b in value {
            match b {
                b',' => out.extend_from_slice(b"&#x2c"),
                b'&' => out.extend_from_slice(b"&#x26"),
                b'\n' => out.extend_from_slice(b"&#x0a"),
                _ => out.push(b),
            }
        }
        Self(out)
    }

    /// The stored (escaped) bytes.
    pub fn stored(&self) -> &[u8] {
        &self.0
    }

    /// The decoded bytes: every `&#xHH` (hex digits in either case) becomes byte `0xHH`;
    /// anything else, including an incomplete escape, stays as is.
    pub fn decode(&self) -> Vec<u8> {
        unescape(&self.0)
    }

    /// Whether the field is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for EscapedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes Kea's `&#xHH` escapes.
pub fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"&#x")
            && i + 5 <= raw.len()
            && let (Some(h), Some(l)) = (hex_val(raw[i + 3]), hex_val(raw[i + 4]))
        {
            out.push(h << 4 | l);
            i += 5;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// One DHCPv4 lease as a memfile row holds it.
///
/// Columns a shorter header lacks take Kea's defaults (`state` 0, empty `user_context`,
/// `pool_id` 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The leased address; the key by which later rows replace earlier ones.
    pub address: Ipv4Addr,
    /// Hardware address bytes (empty only in declined leases or with a client id).
    pub hwaddr: Vec<u8>,
    /// Client identifier bytes, empty if none.
    pub client_id: Vec<u8>,
    /// Valid lifetime in seconds; 0 in a row means "this lease was deleted".
    pub valid_lifetime: u32,
    /// Expiry in epoch seconds (= cltt + valid_lifetime; may exceed 2^32 for infinite leases).
    pub expire: u64,
    /// Subnet identifier.
    pub subnet_id: u32,
    /// Forward DNS update performed.
    pub fqdn_fwd: bool,
    /// Reverse DNS update performed.
    pub fqdn_rev: bool,
    /// Client hostname, as stored.
    pub hostname: EscapedText,
    /// Lease state; see [`LeaseState`].
    pub state: u32,
    /// User context (a JSON map as Kea writes it), as stored; empty if none.
    pub user_context: EscapedText,
    /// Pool identifier (Kea 2.4+ files; 0 otherwise).
    pub pool_id: u32,
    /// Values of unknown columns after the known ones, verbatim.
    pub extra: Vec<Vec<u8>>,
}

impl Lease {
    /// The client's last transmission time: `expire - valid_lifetime` (as Kea computes it).
    pub fn cltt(&self) -> i64 {
        self.expire as i64 - i64::from(self.valid_lifetime)
    }

    /// Whether this row deletes the lease (valid lifetime 0), as a release or delete writes it.
    pub fn is_deletion(&self) -> bool {
        self.valid_lifetime == 0
    }

    /// Makes the lease what Kea holds in memory after reading the row (and what LFC writes):
    /// the hostname lower-cased (ASCII only, as Kea's `Lease4` does), the user context
    /// re-rendered as Kea renders JSON, and both re-escaped minimally. Hardware address and numbers are already canonical once parsed.
    pub fn normalize(&mut self) {
        let mut host = self.hostname.decode();
        host.make_ascii_lowercase();
        self.hostname = EscapedText::encode(&host);
        let ctx = self.user_context.decode();
        let ctx = crate::kea_json::canonical_map(&ctx).unwrap_or(ctx);
        self.user_context = EscapedText::encode(&ctx);
    }

    /// The state as a typed value.
    pub fn lease_state(&self) -> LeaseState {
        LeaseState::from(self.state)
    }

    /// Checks Kea's row-validity rules that span fields (field syntax is checked when parsing).
    pub fn validate(&self) -> Result<(), RowErrorKind> {
        validate_parts(
            self.hwaddr.len(),
            self.client_id.len(),
            self.state,
            self.user_context.stored(),
        )
    }

    /// Writes the row for `header`'s columns (without a line feed) into `out`.
    pub fn write_row(&self, header: &Header, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(out, "{},", self.address);
        write_hex(out, &self.hwaddr);
        out.push(b',');
        write_hex(out, &self.client_id);
        let _ = write!(
            out,
            ",{},{},{},{},{},",
            self.valid_lifetime,
            self.expire,
            self.subnet_id,
            u8::from(self.fqdn_fwd),
            u8::from(self.fqdn_rev)
        );
        out.extend_from_slice(self.hostname.stored());
        let n = header.len();
        if n > 9 {
            let _ = write!(out, ",{}", self.state);
        }
        if n > 10 {
            out.push(b',');
            out.extend_from_slice(self.user_context.stored());
        }
        if n > 11 {
            let _ = write!(out, ",{}", self.pool_id);
        }
        for i in 12..n {
            out.push(b',');
            if let Some(v) = self.extra.get(i - 12) {
                out.extend_from_slice(v);
            }
        }
    }
}

pub(crate) fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// The lease states Kea knows (0–2 in Kea 2.x; 3.0 adds 3 and 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// 0: assigned.
    Default,
    /// 1: declined by the client (hwaddr and client_id are empty).
    Declined,
    /// 2: expired and reclaimed.
    ExpiredReclaimed,
    /// 3: released (Kea 3.0+).
    Released,
    /// 4: registered (Kea 3.0+).
    Registered,
    /// A value no Kea version defines.
    Other(u32),
}

impl From<u32> for LeaseState {
    fn from(v: u32) -> Self {
        match v {
            0 => Self::Default,
            1 => Self::Declined,
            2 => Self::ExpiredReclaimed,
            3 => Self::Released,
            4 => Self::Registered,
            n => Self::Other(n),
        }
    }
}

fn bad(column: &'static str, reason: &str) -> RowErrorKind {
    RowErrorKind::BadField {
        column,
        reason: reason.into(),
    }
}

/// Why a row (or the header) was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowErrorKind {
    /// The header line is missing, malformed, or names unknown columns in known positions.
    #[error("bad header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// The row has fewer columns than the header (more are read or ignored, as Kea does).
    #[error("{got} columns, the header has {want}")]
    ColumnCount {
        /// Columns in the row.
        got: usize,
        /// Columns in the header.
        want: usize,
    },
    /// A field does not parse.
    #[error("bad {column}: {reason}")]
    BadField {
        /// The column name.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Neither hwaddr nor client_id, and the lease is not declined.
    #[error("empty hwaddr and client_id (allowed only for declined leases)")]
    NoIdentifier,
}

/// A rejected row: where it is and why. Kea logs and skips such rows; this library reports them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {kind}", file.display())]
pub struct RowError {
    /// The lease file.
    pub file: PathBuf,
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// What is wrong.
    pub kind: RowErrorKind,
}

/// Errors reading a lease file as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Reading failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The lease file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The header (line 1) is not one Kea accepts.
    #[error(transparent)]
    Header(RowError),
}

/// An unsigned number as Kea reads it (`boost::lexical_cast`): an optional `+`, or a `-` that
/// wraps the value around (`-1` is 4294967295), as `strtoul` does.
fn parse_u32(column: &'static str, f: &[u8]) -> Result<u32, RowErrorKind> {
    let (neg, f) = sign(f);
    parse_digits(f)
        .and_then(|v| u32::try_from(v).ok())
        .map(|v| if neg { v.wrapping_neg() } else { v })
        .ok_or_else(|| bad(column, "not an unsigned 32-bit number"))
}

fn parse_u64(column: &'static str, f: &[u8]) -> Result<u64, RowErrorKind> {
    let (neg, f) = sign(f);
    parse_digits(f)
        .map(|v| if neg { v.wrapping_neg() } else { v })
        .ok_or_else(|| bad(column, "not an unsigned 64-bit number"))
}

fn sign(f: &[u8]) -> (bool, &[u8]) {
    match f.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, f),
    }
}

fn parse_digits(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in f {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn parse_bool(column: &'static str, f: &[u8]) -> Result<bool, RowErrorKind> {
    match f {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(bad(column, "must be 0 or 1")),
    }
}

/// Colon-separated hex as Kea's `decodeColonSeparatedHexString`: 1–2 hex digits per octet,
/// either case; empty string = no bytes; empty tokens (`::`) and longer tokens are rejected.
fn parse_colon_hex(column: &'static str, f: &[u8]) -> Result<Vec<u8>, RowErrorKind> {
    if f.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(f.len().div_ceil(3));
    for tok in f.split(|&b| b == b':') {
        let v = match tok {
            [a] => hex_val(*a),
            [a, b] => hex_val(*a).zip(hex_val(*b)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        out.push(v.ok_or_else(|| bad(column, "not colon-separated hex"))?);
    }
    Ok(out)
}

/// A dotted-quad IPv4 address exactly as [`Ipv4Addr`]'s `FromStr` reads it (four decimal
/// octets of at most three digits, no leading zeros), straight from the bytes.
fn parse_ipv4(f: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in f.split(|&b| b == b'.') {
        if n == 4 || part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut v = 0u16;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(b - b'0');
        }
        octets[n] = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

/// A row split and checked but not yet copied: borrowed fields, parsed numbers.
struct Fields<'a> {
    raw: [&'a [u8]; 12],
    /// The row has values beyond its header's columns (Kea reads or ignores them; LFC drops
    /// them), so it is not written as Kea writes rows.
    surplus: bool,
    address: Ipv4Addr,
    hwaddr: &'a [u8],
    hwaddr_len: usize,
    client_id: &'a [u8],
    client_id_len: usize,
    valid_lifetime: u32,
    expire: u64,
    subnet_id: u32,
    fqdn_fwd: bool,
    fqdn_rev: bool,
    hostname: &'a [u8],
    state: u32,
    user_context: &'a [u8],
    pool_id: u32,
}

/// Number of bytes in colon-separated hex, checking the syntax without allocating.
fn colon_hex_len(column: &'static str, f: &[u8]) -> Result<usize, RowErrorKind> {
    if f.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for tok in f.split(|&b| b == b':') {
        let ok = match tok {
            [a] => hex_val(*a).is_some(),
            [a, b] => hex_val(*a).is_some() && hex_val(*b).is_some(),
            _ => false,
        };
        if !ok {
            return Err(bad(column, "not colon-separated hex"));
        }
        n += 1;
    }
    Ok(n)
}

fn split_fields<'a>(
    header: &Header,
    line: &'a [u8],
    mut extra: Option<&mut Vec<Vec<u8>>>,
) -> Result<Fields<'a>, RowErrorKind> {
    let n = header.len();
    let mut fields: [&[u8]; 12] = [&[]; 12];
    let mut count = 0;
    for f in line.split(|&b| b == b',') {
        if count < 12 {
            fields[count] = f;
        } else if count < n
            && let Some(extra) = extra.as_deref_mut()
        {
            extra.push(f.to_vec());
        }
        count += 1;
    }
    // Fewer values than the header: Kea fails reading a missing column. More: Kea reads them
    // up to its own schema's width as its columns and ignores the rest.
    if count < n {
        return Err(RowErrorKind::ColumnCount {
            got: count,
            want: n,
        });
    }
    let known = n.max(header.kea_columns()).min(COLUMNS.len()).min(count);
    let address = parse_ipv4(fields[0]).ok_or_else(|| bad("address", "not an IPv4 address"))?;
    let hwaddr_len = colon_hex_len("hwaddr", fields[1])?;
    let client_id_len = colon_hex_len("client_id", fields[2])?;
    let f = Fields {
        raw: fields,
        surplus: count > n,
        address,
        hwaddr: fields[1],
        hwaddr_len,
        client_id: fields[2],
        client_id_len,
        valid_lifetime: parse_u32("valid_lifetime", fields[3])?,
        expire: parse_u64("expire", fields[4])?,
        subnet_id: parse_u32("subnet_id", fields[5])?,
        fqdn_fwd: parse_bool("fqdn_fwd", fields[6])?,
        fqdn_rev: parse_bool("fqdn_rev", fields[7])?,
        hostname: fields[8],
        state: if known > 9 {
            parse_u32("state", fields[9])?
        } else {
            0
        },
        user_context: if known > 10 { fields[10] } else { &[] },
        pool_id: if known > 11 {
            parse_u32("pool_id", fields[11])?
        } else {
            0
        },
    };
    validate_parts(f.hwaddr_len, f.client_id_len, f.state, f.user_context)?;
    Ok(f)
}

fn validate_parts(
    hwaddr_len: usize,
    client_id_len: usize,
    state: u32,
    user_context: &[u8],
) -> Result<(), RowErrorKind> {
    if hwaddr_len > MAX_HWADDR_LEN {
        return Err(bad("hwaddr", "longer than 20 bytes"));
    }
    if client_id_len != 0 && !(MIN_CLIENT_ID_LEN..=MAX_CLIENT_ID_LEN).contains(&client_id_len) {
        return Err(bad("client_id", "must be 2 to 255 bytes"));
    }
    if hwaddr_len == 0 && client_id_len == 0 && state != 1 {
        return Err(RowErrorKind::NoIdentifier);
    }
    if !user_context.is_empty() && crate::kea_json::canonical_map(&unescape(user_context)).is_none()
    {
        return Err(bad("user_context", "not a JSON map"));
    }
    Ok(())
}

/// The key facts of a valid row, checked without allocating: enough to apply Kea's load
/// semantics (later rows replace earlier ones by address; valid lifetime 0 deletes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowKey {
    /// The leased address.
    pub address: Ipv4Addr,
    /// The valid lifetime (0 = deletion).
    pub valid_lifetime: u32,
    /// Whether the row is written exactly as Kea writes it (lowercase two-digit hex, plain
    /// numbers, lowercase hostname, minimal `&#x` escapes), so LFC would copy it unchanged.
    pub canonical: bool,
}

fn canonical_hex(f: &[u8]) -> bool {
    f.is_empty()
        || f.split(|&b| b == b':').all(|t| {
            t.len() == 2
                && t.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
}

fn canonical_num(f: &[u8]) -> bool {
    !f.is_empty() && f[0] != b'+' && f[0] != b'-' && (f.len() == 1 || f[0] != b'0')
}

/// Whether a stored user context is exactly what Kea writes: its JSON rendering, escaped.
fn canonical_context(f: &[u8]) -> bool {
    if f.is_empty() {
        return true;
    }
    let decoded = unescape(f);
    crate::kea_json::canonical_map(&decoded).is_some_and(|c| c == decoded)
        && EscapedText::encode(&decoded).0 == f
}

fn canonical_text(f: &[u8], lowercase: bool) -> bool {
    let suspicious = f.contains(&b'&') || (lowercase && f.iter().any(u8::is_ascii_uppercase));
    if !suspicious {
        return true;
    }
    let mut d = unescape(f);
    if lowercase {
        d.make_ascii_lowercase();
    }
    EscapedText::encode(&d).0 == f
}

/// Checks one row against `header` with all of [`parse_row`]'s rules, without building a
/// [`Lease`]; used on the hot path of snapshots.
pub fn check_row(header: &Header, line: &[u8]) -> Result<RowKey, RowErrorKind> {
    let f = split_fields(header, line, None)?;
    let n = header.len();
    let r = &f.raw;
    let canonical = !f.surplus
        && canonical_hex(r[1])
        && canonical_hex(r[2])
        && [3usize, 4, 5, 9, 11]
            .iter()
            .all(|&i| i >= n || canonical_num(r[i]))
        && canonical_text(r[8], true)
        && canonical_context(f.user_context);
    Ok(RowKey {
        address: f.address,
        valid_lifetime: f.valid_lifetime,
        canonical,
    })
}

/// Parses one row (without its line feed) against `header`, applying Kea's validity rules.
pub fn parse_row(header: &Header, line: &[u8]) -> Result<Lease, RowErrorKind> {
    let mut extra = Vec::new();
    let f = split_fields(header, line, Some(&mut extra))?;
    Ok(Lease {
        address: f.address,
        hwaddr: parse_colon_hex("hwaddr", f.hwaddr)?,
        client_id: parse_colon_hex("client_id", f.client_id)?,
        valid_lifetime: f.valid_lifetime,
        expire: f.expire,
        subnet_id: f.subnet_id,
        fqdn_fwd: f.fqdn_fwd,
        fqdn_rev: f.fqdn_rev,
        hostname: EscapedText(f.hostname.to_vec()),
        state: f.state,
        user_context: EscapedText(f.user_context.to_vec()),
        pool_id: f.pool_id,
        extra,
    })
}

/// One parsed row and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the row's first byte in the file.
    pub offset: u64,
    /// Length of the row in bytes, including its line feed if it has one.
    pub len: u64,
    /// Whether the row ends with a line feed (false only for a final, possibly torn, row).
    pub terminated: bool,
    /// The lease.
    pub lease: Lease,
}

/// Streams the rows of one lease file: reads the header, then yields each row or its error.
///
/// Blank lines are skipped (as Kea does); every other bad row is yielded as a [`RowError`]
/// carrying the file name and line, so nothing is dropped silently. Memory use is one row.
pub struct LeaseReader<R> {
    input: R,
    file: PathBuf,
    header: Option<Header>,
    line: u64,
    offset: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> LeaseReader<R> {
    /// Reads the header from `input`; `file` names the source in errors. An empty input is a
    /// file without header or rows ([`LeaseReader::header`] is `None`).
    pub fn new(mut input: R, file: impl Into<PathBuf>) -> Result<Self, ParseError> {
        let file = file.into();
        let mut buf = Vec::new();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| ParseError::Io {
                file: file.clone(),
                source,
            })?;
        let header = if n == 0 {
            None
        } else {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            Some(Header::parse(line).map_err(|kind| {
                ParseError::Header(RowError {
                    file: file.clone(),
                    line: 1,
                    kind,
                })
            })?)
        };
        Ok(Self {
            input,
            file,
            done: header.is_none(),
            header,
            line: 1,
            offset: n as u64,
            buf,
        })
    }

    /// Reads the rows as a Kea whose own schema has `n` columns would
    /// ([`Header::read_by_kea_columns`]).
    pub fn read_by_kea_columns(mut self, n: usize) -> Self {
        self.header = self.header.map(|h| h.read_by_kea_columns(n));
        self
    }

    /// The file's header, `None` for an empty file.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The file name used in errors.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Reads the next non-blank line into the internal buffer; returns (line, offset, terminated).
    fn next_line(&mut self) -> Option<io::Result<(u64, u64, bool)>> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            let n = match self.input.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if n == 0 {
                self.done = true;
                return None;
            }
            self.line += 1;
            let offset = self.offset;
            self.offset += n as u64;
            let terminated = self.buf.last() == Some(&b'\n');
            if terminated {
                self.buf.pop();
            }
            if self.buf.is_empty() {
                continue;
            }
            return Some(Ok((self.line, offset, terminated)));
        }
    }

    /// Like [`Iterator::next`] but also hands out the raw row bytes (without line feed),
    /// so callers can copy rows verbatim without re-serialising them.
    pub fn next_raw(&mut self) -> Option<Result<(Record, &[u8]), ReadError>> {
        let (line, offset, terminated) = match self.next_line()? {
            Ok(v) => v,
            Err(source) => {
                return Some(Err(ReadError::Io {
                    file: self.file.clone(),
                    source,
                }));
            }
        };
        let header = self.header.as_ref().expect("rows only after a header");
        let len = self.buf.len() as u64 + u64::from(terminated);
        match parse_row(header, &self.buf) {
            Ok(lease) => Some(Ok((
                Record {
                    line,
                    offset,
                    len,
                    terminated,
                    lease,
                },
                &self.buf,
            ))),
            Err(kind) => Some(Err(ReadError::Row(RowError {
                file: self.file.clone(),
                line,
                kind,
            }))),
        }
    }
}

impl<R: BufRead> LeaseReader<R> {
    /// Like [`LeaseReader::next_raw`] but only checks the row ([`check_row`]: every rule, no
    /// allocation): its line number and key. For counting and validating large files fast.
    pub fn next_key(&mut self) -> Option<Result<(u64, RowKey), ReadError>> {
        let (line, _, _) = match self.next_line()? {
            Ok(v) => v,
            Err(source) => {
                return Some(Err(ReadError::Io {
                    file: self.file.clone(),
                    source,
                }));
            }
        };
        let header = self.header.as_ref().expect("rows only after a header");
        Some(match check_row(header, &self.buf) {
            Ok(key) => Ok((line, key)),
            Err(kind) => Err(ReadError::Row(RowError {
                file: self.file.clone(),
                line,
                kind,
            })),
        })
    }
}

impl<R: BufRead> Iterator for LeaseReader<R> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_raw().map(|r| r.map(|(rec, _)| rec))
    }
}

/// An error while streaming rows: a bad row (reading may go on) or an I/O error (it stops).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The row is malformed; Kea would log and skip it.
    #[error(transparent)]
    Row(RowError),
    /// Reading failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The lease file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A whole lease file in memory: header, valid rows and rejected rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseFile {
    /// The header; `None` for an empty file.
    pub header: Option<Header>,
    /// The valid rows, in file order.
    pub records: Vec<Record>,
    /// The rejected rows, in file order.
    pub errors: Vec<RowError>,
}

impl LeaseFile {
    /// Parses a whole file from `input`; `file` names it in errors.
    pub fn read(input: impl BufRead, file: impl Into<PathBuf>) -> Result<Self, ParseError> {
        Self::read_with(LeaseReader::new(input, file)?)
    }

    /// Reads every row of `reader` (e.g. one set up with [`LeaseReader::read_by_kea_columns`]).
    pub fn read_with<R: BufRead>(mut reader: LeaseReader<R>) -> Result<Self, ParseError> {
        let mut out = LeaseFile {
            header: reader.header().cloned(),
            ..Self::default()
        };
        for item in &mut reader {
            match item {
                Ok(rec) => out.records.push(rec),
                Err(ReadError::Row(e)) => out.errors.push(e),
                Err(ReadError::Io { file, source }) => return Err(ParseError::Io { file, source }),
            }
        }
        Ok(out)
    }

    /// Opens and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ParseError> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|source| ParseError::Io {
            file: path.to_owned(),
            source,
        })?;
        Self::read(io::BufReader::with_capacity(1 << 16, f), path)
    }

    /// Parses bytes held in memory.
    pub fn parse(bytes: &[u8], file: impl Into<PathBuf>) -> Result<Self, ParseError> {
        Self::read(bytes, file)
    }

    /// Writes the header and the valid rows (rejected rows are not written; a final row
    /// without line feed gets one).
    pub fn write_to(&self, out: impl Write) -> io::Result<()> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        let mut w = LeaseWriter::new(out, header.clone())?;
        for r in &self.records {
            w.write(&r.lease)?;
        }
        w.finish().map(|_| ())
    }

    /// The file as bytes (see [`LeaseFile::write_to`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        v
    }
}

/// Writes a lease file: the header, then one row per lease, as Kea writes them.
pub struct LeaseWriter<W: Write> {
    out: W,
    header: Header,
    buf: Vec<u8>,
}

impl<W: Write> LeaseWriter<W> {
    /// Writes `header` to `out` and returns the writer.
    pub fn new(mut out: W, header: Header) -> io::Result<Self> {
        out.write_all(header.to_line().as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            header,
            buf: Vec::with_capacity(256),
        })
    }

    /// Appends one row.
    pub fn write(&mut self, lease: &Lease) -> io::Result<()> {
        self.buf.clear();
        lease.write_row(&self.header, &mut self.buf);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)
    }

    /// The header rows are written with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";

    #[test]
    fn round_trips_kea_rows_byte_for_byte() {
        let text = format!(
            "{H11}10.77.0.10,00:0c:01:02:03:04,01:00:0c:01:02:03:04,4000,1764230000,1,1,1,a&#x2cb&#x26c.example,0,{{ \"k\": \"&#x2c\\u00e9\" }}\n\
             10.77.0.11,,,0,1764230000,1,0,0,,1,\n\
             10.77.0.12,00:0c:01:02:03:05,,4294967295,5764230000,1,0,0,,2,\n"
        );
        let f = LeaseFile::parse(text.as_bytes(), "x").unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.records.len(), 3);
        assert_eq!(f.records[0].lease.hostname.decode(), b"a,b&c.example");
        assert_eq!(f.records[2].lease.expire, 5_764_230_000);
        assert_eq!(f.to_bytes(), text.as_bytes());
    }

    #[test]
    fn older_and_newer_headers() {
        let h9 = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname\n10.0.0.1,01:02,,10,20,1,0,0,h\n";
        let f = LeaseFile::parse(h9.as_bytes(), "x").unwrap();
        assert_eq!(f.records[0].lease.state, 0);
        assert_eq!(f.to_bytes(), h9.as_bytes());
        let h12 = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n10.0.0.1,01:02,,10,20,1,0,0,h,0,,7\n";
        let f = LeaseFile::parse(h12.as_bytes(), "x").unwrap();
        assert_eq!(f.records[0].lease.pool_id, 7);
        assert_eq!(f.to_bytes(), h12.as_bytes());
    }

    #[test]
    fn bad_rows_are_reported_with_file_and_line() {
        let text = format!(
            "{H11}10.0.0.1,aabbcc,,1,2,1,0,0,,0,\n\n10.0.0.2,,,1,2,1,0,0,,0,\n10.0.0.3,01,,1,2,1,0,0,,0,\n10.0.0.4,01,,1,2,1,2,0,,0,\n10.0.0.5,01,,1,2,1,0,0,,0,[1]\n10.0.0.6,1:A,,1,2,1,0,0,,0\n10.0.0.7,1:A,,1,2,1,0,0,,0,\r\n"
        );
        let f = LeaseFile::parse(text.as_bytes(), "dir/leases4.csv").unwrap();
        let lines: Vec<u64> = f.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 6, 7, 8, 9]);
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.records[0].lease.hwaddr, vec![1]);
        assert!(
            f.errors[0]
                .to_string()
                .starts_with("dir/leases4.csv:2: bad hwaddr")
        );
        assert_eq!(f.errors[1].kind, RowErrorKind::NoIdentifier);
    }

    proptest::proptest! {
        #[test]
        fn ipv4_addresses_parse_as_the_standard_library_parses_them(
            s in "[0-9.]{0,18}|[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}|\\PC{0,16}"
        ) {
            proptest::prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{:?}", s);
        }
    }

    #[test]
    fn header_errors() {
        assert!(LeaseFile::parse(b"address,hwaddr\n", "x").is_err());
        assert!(LeaseFile::parse(b"", "x").unwrap().header.is_none());
    }
}
