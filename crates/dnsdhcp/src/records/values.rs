//! Helm values files: load, deep-merge as Helm does, and extract `zones` and `staticRecords`
//! with the file, line and column of every entry.
//!
//! Merge rules (those of `helm install -f a.yaml -f b.yaml`): later files win; maps merge key by
//! key; lists and scalars replace; a `null` in a later file removes the key. Keys other than
//! `zones` and `staticRecords` are ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::{Diagnostic, RecordsError};

/// One values file as read: its path (as given) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path the file was read from, as given by the caller.
    pub path: PathBuf,
    /// The whole text of the file.
    pub text: String,
}

/// A place in one of the values files: index into [`Values::files`], 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Index of the file in [`Values::files`] (32 bits: a `Pos` is kept per declared RRset).
    pub file: u32,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
}

/// A `zones[]` entry.
#[derive(Debug, Clone)]
pub struct ZoneEntry {
    /// `name`, as written (trailing dot optional).
    pub name: String,
    /// `defaultTtl`: TTL for records of this zone that give none (default [`DEFAULT_TTL`]).
    pub default_ttl: Option<i64>,
    /// Where the entry is.
    pub pos: Pos,
}

/// The TTL of a record that gives none, unless its zone sets `defaultTtl`.
pub const DEFAULT_TTL: u32 = 3600;

/// A `staticRecords[]` entry, still as text.
#[derive(Debug, Clone)]
pub enum RecordEntry {
    /// One-line form: `owner [ttl] [IN] TYPE rdata`.
    Line {
        /// The line as written.
        text: String,
        /// The zone it belongs to when the values say so (a segment's `domain` in values
        /// written for the original chart); else found from the owner.
        zone: Option<String>,
        /// Where it is.
        pos: Pos,
    },
    /// Structured form.
    Structured {
        /// `name`: owner, relative to the zone, `@`, or absolute with a trailing dot.
        name: String,
        /// `zone`: the zone the record belongs to.
        zone: Option<String>,
        /// `type`.
        rtype: String,
        /// `ttl`.
        ttl: Option<i64>,
        /// `data`: the rdata in presentation format.
        data: String,
        /// `ptr`: derive a PTR (A/AAAA only; default true).
        ptr: Option<bool>,
        /// Where the entry is.
        pos: Pos,
    },
}

impl RecordEntry {
    /// Where the entry is.
    pub fn pos(&self) -> Pos {
        match self {
            RecordEntry::Line { pos, .. } | RecordEntry::Structured { pos, .. } => *pos,
        }
    }
}

/// The merged values: the files (for messages) and the entries that matter here.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// The files in merge order.
    pub files: Vec<SourceFile>,
    /// `zones`, in order (the first is the default zone).
    pub zones: Vec<ZoneEntry>,
    /// `staticRecords`, in order.
    pub records: Vec<RecordEntry>,
}

impl Values {
    /// `path:line:column` of `pos` (cheap: no snippet).
    pub fn location(&self, pos: Pos) -> String {
        match self.files.get(pos.file as usize) {
            Some(f) => format!("{}:{}:{}", f.path.display(), pos.line, pos.column),
            None => format!(":{}:{}", pos.line, pos.column),
        }
    }

    /// The files' paths, in [`Pos::file`] order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// A diagnostic at `pos` with `message`, with the file name and a snippet of the line.
    pub fn diagnostic(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        let file = self.files.get(pos.file as usize);
        let path = file.map(|f| f.path.clone()).unwrap_or_default();
        let source_line = file
            .and_then(|f| f.text.lines().nth(pos.line.saturating_sub(1) as usize))
            .filter(|_| pos.line > 0)
            .map(str::to_owned);
        Diagnostic {
            path,
            line: pos.line,
            column: pos.column,
            message: message.into(),
            source_line,
        }
    }
}

/// `path:line:column` of `pos`, `files` being the values files' paths in [`Pos::file`] order.
pub fn location(files: &[PathBuf], pos: Pos) -> String {
    match files.get(pos.file as usize) {
        Some(path) => format!("{}:{}:{}", path.display(), pos.line, pos.column),
        None => format!(":{}:{}", pos.line, pos.column),
    }
}

/// Reads the values files at `paths` and merges them (later files win).
pub fn load_values<P: AsRef<Path>>(paths: &[P]) -> Result<Values, RecordsError> {
    parse_values(read_values_files(paths)?)
}

/// Reads the values files at `paths` whole, in order (for [`parse_values`]).
pub fn read_values_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<SourceFile>, RecordsError> {
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let path = p.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| RecordsError::Read {
            path: path.clone(),
            source,
        })?;
        files.push(SourceFile { path, text });
    }
    Ok(files)
}

/// Merges already-read values files (in order, later wins) and extracts zones and records.
pub fn parse_values(files: Vec<SourceFile>) -> Result<Values, RecordsError> {
    let mut merged: Option<Node> = None;
    for (idx, f) in files.iter().enumerate() {
        let node = parse_yaml(idx, f)?;
        if matches!(node.kind, Kind::Null) {
            // An empty file declares nothing and removes nothing.
            continue;
        }
        merged = Some(match merged {
            None => node,
            Some(base) => merge(base, node),
        });
    }
    let mut values = Values {
        files,
        ..Values::default()
    };
    let mut diags = Vec::new();
    let Some(Node {
        kind: Kind::Map(top),
        ..
    }) = merged
    else {
        // Empty files or a non-map document: nothing declared.
        return Ok(values);
    };
    let mut zones = Vec::new();
    let mut records = Vec::new();
    let mut segment_zones = Vec::new();
    for (key, node) in top {
        match key.as_str() {
            "zones" => extract_zones(&values, node, &mut diags, &mut zones),
            "staticRecords" => extract_records(
                &values,
                node,
                None,
                "staticRecords",
                &mut diags,
                &mut records,
            ),
            "segments" => {
                extract_segments(&values, node, &mut diags, &mut segment_zones, &mut records)
            }
            other => unread_records(&values, other, &node, &mut diags),
        }
    }
    // A segment's zones join the listed ones (once).
    for z in segment_zones {
        if !zones
            .iter()
            .any(|o: &ZoneEntry| crate::zones::same_zone(&o.name, &z.name))
        {
            zones.push(z);
        }
    }
    values.zones = zones;
    values.records = records;
    if diags.is_empty() {
        Ok(values)
    } else {
        Err(RecordsError::Invalid(diags.into()))
    }
}

fn extract_zones(
    values: &Values,
    node: Node,
    diags: &mut Vec<Diagnostic>,
    zones: &mut Vec<ZoneEntry>,
) {
    let items = match node.kind {
        Kind::Null => return,
        Kind::Seq(items) => items,
        _ => {
            diags.push(values.diagnostic(node.pos, "`zones` must be a list"));
            return;
        }
    };
    for item in items {
        let pos = item.pos;
        match item.kind {
            Kind::Map(fields) => {
                let mut name = None;
                let mut default_ttl = None;
                for (k, v) in fields {
                    match k.as_str() {
                        "name" => match v.kind {
                            Kind::Str(s) => name = Some(s),
                            _ => diags.push(values.diagnostic(v.pos, "`name` must be a string")),
                        },
                        "defaultTtl" => match v.kind {
                            Kind::Int(i) => default_ttl = Some(i),
                            Kind::Null => {}
                            _ => diags
                                .push(values.diagnostic(v.pos, "`defaultTtl` must be an integer")),
                        },
                        _ => {}
                    }
                }
                match name {
                    Some(name) => zones.push(ZoneEntry {
                        name,
                        default_ttl,
                        pos,
                    }),
                    None => diags.push(values.diagnostic(pos, "zone entry without `name`")),
                }
            }
            Kind::Str(name) => zones.push(ZoneEntry {
                name,
                default_ttl: None,
                pos,
            }),
            _ => diags.push(values.diagnostic(pos, "a zone must be a map with `name`")),
        }
    }
}

/// `staticRecords` entries; `zone` is the zone of records that do not name one (a segment's
/// domain), `key` names the list in messages.
fn extract_records(
    values: &Values,
    node: Node,
    zone: Option<&str>,
    key: &str,
    diags: &mut Vec<Diagnostic>,
    out: &mut Vec<RecordEntry>,
) {
    let zone = zone.map(str::to_owned);
    let items = match node.kind {
        Kind::Null => return,
        Kind::Seq(items) => items,
        _ => {
            diags.push(values.diagnostic(node.pos, format!("`{key}` must be a list")));
            return;
        }
    };
    // Reserved at once: grown by doubling, a list of 100,000 entries held twice its size for
    // a moment, and a quarter more for good.
    out.reserve_exact(items.len());
    for item in items {
        let pos = item.pos;
        match item.kind {
            Kind::Str(text) => out.push(RecordEntry::Line {
                text,
                zone: zone.clone(),
                pos,
            }),
            Kind::Map(fields) => {
                if let Some(entry) = structured_record(values, fields, pos, &zone, diags) {
                    out.push(entry);
                }
            }
            _ => diags.push(values.diagnostic(
                pos,
                "a static record must be a string (`owner [ttl] [IN] TYPE rdata`) or a map",
            )),
        }
    }
}

/// A `staticRecords` entry written as a map (`name`, `type`, `data`, optional `zone`, `ttl`,
/// `ptr`); `None`, with a diagnostic for each problem, if it is not a usable record.
fn structured_record(
    values: &Values,
    fields: Vec<(String, Node)>,
    pos: Pos,
    default_zone: &Option<String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<RecordEntry> {
    let mut name = None;
    let mut zone = None;
    let mut rtype = None;
    let mut ttl = None;
    let mut data = None;
    let mut ptr = None;
    let mut ok = true;
    for (k, v) in fields {
        let vpos = v.pos;
        let mut bad = |what: &str| {
            diags.push(values.diagnostic(vpos, format!("`{k}` must be {what}")));
        };
        match (k.as_str(), v.kind) {
            ("name", Kind::Str(s)) => name = Some(s),
            // `name: 1` (a PTR owner in a reverse zone) is an integer in YAML.
            ("name", Kind::Int(i)) => name = Some(i.to_string()),
            ("data", Kind::Int(i)) => data = Some(i.to_string()),
            ("zone", Kind::Str(s)) => zone = Some(s),
            ("type", Kind::Str(s)) => rtype = Some(s),
            ("data", Kind::Str(s)) => data = Some(s),
            ("ttl", Kind::Int(i)) => ttl = Some(i),
            ("ptr", Kind::Bool(b)) => ptr = Some(b),
            ("zone" | "ttl" | "ptr", Kind::Null) => {}
            ("name" | "zone" | "type" | "data", _) => {
                bad("a string (quote it)");
                ok = false
            }
            ("ttl", _) => {
                bad("an integer");
                ok = false
            }
            ("ptr", _) => {
                bad("true or false");
                ok = false
            }
            _ => {
                diags.push(values.diagnostic(vpos, format!("unknown key `{k}`")));
                ok = false
            }
        }
    }
    let mut missing = |what: &str| {
        diags.push(values.diagnostic(pos, format!("record without `{what}`")));
    };
    match (name, rtype, data) {
        (Some(name), Some(rtype), Some(data)) if ok => Some(RecordEntry::Structured {
            name,
            zone: zone.or_else(|| default_zone.clone()),
            rtype,
            ttl,
            data,
            ptr,
            pos,
        }),
        (name, rtype, data) => {
            if name.is_none() {
                missing("name")
            }
            if rtype.is_none() {
                missing("type")
            }
            if data.is_none() {
                missing("data")
            }
            None
        }
    }
}

/// `segments[]` of values written for the original chart: each segment's `domain` is a zone,
/// its `ipv4.network` / `ipv6.network` give its reverse zones (on octet / nibble boundaries),
/// and its `staticRecords` belong to its domain (TTL 3600 unless the zone says otherwise; A and
/// AAAA get PTRs in the reverse zones, as the original chart derived them).
fn extract_segments(
    values: &Values,
    node: Node,
    diags: &mut Vec<Diagnostic>,
    zones: &mut Vec<ZoneEntry>,
    records: &mut Vec<RecordEntry>,
) {
    let items = match node.kind {
        Kind::Null => return,
        Kind::Seq(items) => items,
        _ => return, // not the original chart's layout: nothing here for the tool
    };
    for (i, item) in items.into_iter().enumerate() {
        let Kind::Map(fields) = item.kind else {
            continue;
        };
        let get = |path: &[&str]| -> Option<(String, Pos)> { lookup_str(&fields, path) };
        let domain = get(&["domain"]).or_else(|| get(&["zone", "forward"]));
        let reverse4 = get(&["zone", "reverseV4"]).or_else(|| {
            get(&["ipv4", "network"])
                .or_else(|| get(&["ipv4", "subnet"]))
                .and_then(|(n, p)| reverse_zone(&n).map(|z| (z, p)))
        });
        let reverse6 = get(&["zone", "reverseV6"]).or_else(|| {
            get(&["ipv6", "network"])
                .or_else(|| get(&["ipv6", "subnet"]))
                .and_then(|(n, p)| reverse_zone(&n).map(|z| (z, p)))
        });
        let statics = fields
            .iter()
            .find(|(k, _)| k == "staticRecords")
            .map(|(_, v)| v.clone());
        let Some((domain, dpos)) = domain else {
            if let Some(n) = statics.filter(|n| !matches!(n.kind, Kind::Null)) {
                diags.push(values.diagnostic(
                    n.pos,
                    format!("`segments[{i}].staticRecords`: the segment has no `domain`, so its records have no zone"),
                ));
            }
            continue;
        };
        for (name, zpos) in [Some((domain.clone(), dpos)), reverse4, reverse6]
            .into_iter()
            .flatten()
        {
            zones.push(ZoneEntry {
                name,
                default_ttl: None,
                pos: zpos,
            });
        }
        if let Some(n) = statics {
            let key = format!("segments[{i}].staticRecords");
            extract_records(values, n, Some(&domain), &key, diags, records);
        }
    }
}

/// The string at `path` below `fields` (nested maps), with its position.
fn lookup_str(fields: &[(String, Node)], path: &[&str]) -> Option<(String, Pos)> {
    let (first, rest) = path.split_first()?;
    let node = &fields.iter().find(|(k, _)| k == first)?.1;
    match (&node.kind, rest.is_empty()) {
        (Kind::Str(s), true) if !s.trim().is_empty() => Some((s.trim().to_owned(), node.pos)),
        (Kind::Map(m), false) => lookup_str(m, rest),
        _ => None,
    }
}

/// The reverse zone of a network in CIDR form, on the enclosing octet (IPv4) or nibble (IPv6)
/// boundary: `192.168.128.0/24` → `128.168.192.in-addr.arpa`, `fd00:128::/64` →
/// `0.0.0.0.8.2.1.0.0.0.d.f.ip6.arpa`. `None` for anything else or a prefix shorter than one
/// label.
pub fn reverse_zone(network: &str) -> Option<String> {
    let (addr, len) = network.trim().split_once('/')?;
    let len: u32 = len.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) if (8..=32).contains(&len) => {
            let octets = a.octets();
            let mut labels: Vec<String> = octets[..(len / 8) as usize]
                .iter()
                .map(u8::to_string)
                .collect();
            labels.reverse();
            Some(format!("{}.in-addr.arpa", labels.join(".")))
        }
        std::net::IpAddr::V6(a) if (4..=128).contains(&len) => {
            let hex: String = a.octets().iter().map(|b| format!("{b:02x}")).collect();
            let mut labels: Vec<String> = hex
                .chars()
                .take((len / 4) as usize)
                .map(String::from)
                .collect();
            labels.reverse();
            Some(format!("{}.ip6.arpa", labels.join(".")))
        }
        _ => None,
    }
}

/// Static records under a key the tool does not read would be silently ignored: that is an
/// error naming the key (`key` is the dotted path of `node`).
fn unread_records(values: &Values, key: &str, node: &Node, diags: &mut Vec<Diagnostic>) {
    match &node.kind {
        Kind::Map(fields) => {
            for (k, v) in fields {
                let path = format!("{key}.{k}");
                if k == "staticRecords" && !matches!(v.kind, Kind::Null) {
                    diags.push(values.diagnostic(
                        v.pos,
                        format!(
                            "`{path}` holds static records, but only `staticRecords` and `segments[].staticRecords` are read; move them"
                        ),
                    ));
                } else {
                    unread_records(values, &path, v, diags);
                }
            }
        }
        Kind::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                unread_records(values, &format!("{key}[{i}]"), v, diags);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// A YAML tree with positions.

#[derive(Debug, Clone, PartialEq)]
struct Node {
    kind: Kind,
    pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    /// Floats and integers beyond i64: kept as text (only used for messages).
    Other,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn parse_yaml(idx: usize, f: &SourceFile) -> Result<Node, RecordsError> {
    if f.text.trim().is_empty() {
        return Ok(Node {
            kind: Kind::Null,
            pos: Pos::default(),
        });
    }
    if let Some(node) = parse_yaml_fast(idx, f) {
        return Ok(node);
    }
    parse_yaml_general(idx, &f.path, &f.text)
}

/// The general YAML parser over the whole text.
fn parse_yaml_general(idx: usize, path: &Path, text: &str) -> Result<Node, RecordsError> {
    // Comments are never read: the parser only checks their syntax.
    let mut options = serde_saphyr::Options::default();
    options.emit_comments = false;
    let raw: Spanned<RawNode> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| RecordsError::Yaml {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line() as u32).unwrap_or(0),
            column: e.location().map(|l| l.column() as u32).unwrap_or(0),
            message: e.to_string(),
        })?;
    Ok(to_node(idx, raw))
}

/// A long top-level `staticRecords` list of one-line strings read by [`simple_list`], the rest
/// of the file by the general parser; `None` (read it all with the general parser) whenever the
/// list has another shape, the rest does not parse, or the list's key is not where the general
/// parser puts it (a duplicate key, or text that only looks like a key).
fn parse_yaml_fast(idx: usize, f: &SourceFile) -> Option<Node> {
    const KEY: &str = "staticRecords";
    let split = super::simple_list::split(&f.text, KEY)?;
    let mut node = parse_yaml_general(idx, &f.path, &split.rest).ok()?;
    let Kind::Map(top) = &mut node.kind else {
        return None;
    };
    let (_, list) = top.iter_mut().find(|(k, _)| k == KEY)?;
    if list.pos.line != split.key_line || !matches!(&list.kind, Kind::Seq(v) if v.is_empty()) {
        return None;
    }
    let at = |line: u32, column: u32| Pos {
        file: file_index(idx),
        line,
        column,
    };
    *list = Node {
        kind: Kind::Seq(
            split
                .items
                .into_iter()
                .map(|(text, line, column)| Node {
                    kind: Kind::Str(text),
                    pos: at(line, column),
                })
                .collect(),
        ),
        pos: at(split.list_pos.0, split.list_pos.1),
    };
    Some(node)
}

/// [`Pos::file`] of the values file at `index` in merge order.
fn file_index(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 values files")
}

fn to_node(file: usize, raw: Spanned<RawNode>) -> Node {
    let pos = Pos {
        file: file_index(file),
        line: raw.referenced.line() as u32,
        column: raw.referenced.column() as u32,
    };
    let kind = match raw.value {
        RawNode::Null => Kind::Null,
        RawNode::Bool(b) => Kind::Bool(b),
        RawNode::Int(i) => Kind::Int(i),
        RawNode::Other => Kind::Other,
        RawNode::Str(s) => Kind::Str(s),
        RawNode::Seq(items) => Kind::Seq(items.into_iter().map(|n| to_node(file, n)).collect()),
        RawNode::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, to_node(file, v)))
                .collect(),
        ),
    };
    Node { kind, pos }
}

/// Helm's coalescing: maps merge recursively, everything else is replaced, `null` deletes.
fn merge(base: Node, over: Node) -> Node {
    match (base.kind, over.kind) {
        (Kind::Map(mut b), Kind::Map(o)) => {
            for (k, v) in o {
                let existing = b.iter().position(|(bk, _)| *bk == k);
                match (existing, &v.kind) {
                    (Some(i), Kind::Null) => {
                        b.remove(i);
                    }
                    (None, Kind::Null) => {}
                    (Some(i), _) => {
                        let (_, old) = b.remove(i);
                        b.insert(i, (k, merge(old, v)));
                    }
                    (None, _) => b.push((k, v)),
                }
            }
            Node {
                kind: Kind::Map(b),
                pos: over.pos,
            }
        }
        (_, kind) => Node {
            kind,
            pos: over.pos,
        },
    }
}

enum RawNode {
    Null,
    Bool(bool),
    Int(i64),
    Other,
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(String, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(i64::try_from(v).map_or(RawNode::Other, RawNode::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
        Ok(i64::try_from(v).map_or(RawNode::Other, RawNode::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        Ok(i64::try_from(v).map_or(RawNode::Other, RawNode::Int))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Other)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries: Vec<(String, Spanned<RawNode>)> = Vec::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            // YAML forbids duplicate keys; if the parser lets one through, the last wins.
            entries.retain(|(k, _)| *k != key.0);
            entries.push((key.0, value));
        }
        Ok(RawNode::Map(entries))
    }
}

/// A map key of any scalar type, as text.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar map key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(name),
            text: text.to_owned(),
        }
    }

    /// The fast reader of long lists must give the general parser's tree, positions included,
    /// whenever it accepts a text.
    fn same_as_general(text: &str) -> bool {
        let f = src("v.yaml", text);
        let Some(fast) = parse_yaml_fast(0, &f) else {
            return false;
        };
        let general = parse_yaml_general(0, &f.path, text).expect("the general parser accepts it");
        assert_eq!(fast, general, "{text}");
        true
    }

    #[test]
    fn long_lists_read_fast_as_the_general_parser_reads_them() {
        for text in [
            "staticRecords:\n  - \"a IN A 10.0.0.1\"\n  - 'b A 10.0.0.2'  # c\n  - c 60 A 10.0.0.3\n",
            "zones:\n  - name: x\nstaticRecords:  # list\n\n  - \"a A 1.2.3.4\"\n\n  # gap\n  - b A 1.2.3.5\nother:\n  k: v\n",
            "staticRecords:\n- a A 1.2.3.4\n- \"b A 1.2.3.5\"\nzones: [home.arpa]\n",
            "staticRecords:\n    -   \"x TXT \\\"no escapes here\"\n",
            "staticRecords:\n  - \"@ MX 10 mail\"\n  - '*.w A 10.0.0.9'\n  - _sip._tcp SRV 0 5 5060 sip\n",
            "staticRecords:\n  - \"é TXT ünïcode\"\n  - \"\"\n  - ''\n",
            "staticRecords:\n  - a TXT \"x\" [b] {c}\n",
            "# head\n\nstaticRecords:\n  - a A 1.2.3.4",
            "staticRecords:\n  - \"a TXT x\u{85}y\u{2028}z\u{feff}\"\n  - b TXT x\u{85}y\u{2029}z\u{a0}\n",
        ] {
            if !text.contains("\\") {
                assert!(same_as_general(text), "declined: {text}");
            } else {
                same_as_general(text);
            }
        }
    }

    #[test]
    fn the_fast_reader_leaves_tricky_files_to_the_general_parser() {
        // A duplicate key (the last wins), a key inside a multi-line string, a key in a flow map.
        for text in [
            "staticRecords:\n  - a A 1.2.3.4\nstaticRecords:\n  - b A 1.2.3.5\n",
            "x: \"one\nstaticRecords:\n  - a A 1.2.3.4\n  two\"\n",
            "staticRecords:\n  - a A 1.2.3.4\nbroken: [\n",
        ] {
            let f = src("v.yaml", text);
            assert!(parse_yaml_fast(0, &f).is_none(), "{text}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        #[test]
        fn fast_and_general_readers_agree(
            indent in 0usize..4,
            gap in 1usize..3,
            items in proptest::collection::vec(proptest::prelude::prop_oneof![
                "[a-z0-9_.*@ ]{0,12} (A|TXT|MX) [ -~]{0,20}",
                "\"[ -~]{0,20}\"",
                "'[ -~]{0,20}'",
                "[ -~]{0,24}",
                proptest::prelude::Just(String::new()),
                proptest::prelude::Just("# c".to_owned()),
            ], 1..8),
            after in proptest::prelude::prop_oneof![
                proptest::prelude::Just(String::new()),
                proptest::prelude::Just("zones: [a]\n".to_owned()),
                proptest::prelude::Just("x:\n  y: 1\n".to_owned()),
                "[ -~]{0,12}\n",
            ],
        ) {
            let mut text = String::from("staticRecords:\n");
            for it in &items {
                if it.is_empty() || it.starts_with('#') {
                    text.push_str(&format!("{}{it}\n", " ".repeat(indent)));
                } else {
                    text.push_str(&format!("{}-{}{it}\n", " ".repeat(indent), " ".repeat(gap)));
                }
            }
            text.push_str(&after);
            let f = src("v.yaml", &text);
            if let Some(fast) = parse_yaml_fast(0, &f) {
                let general = parse_yaml_general(0, &f.path, &text);
                proptest::prop_assert!(general.is_ok(), "general refused what the fast reader took: {text}");
                proptest::prop_assert_eq!(fast, general.unwrap(), "{}", text);
            }
        }
    }

    const BASE: &str = "\
image: knot
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
    defaultTtl: 600
staticRecords:
  - \"router IN A 192.168.1.1\"
  - name: nas
    zone: home.arpa
    type: AAAA
    ttl: 300
    data: fd00::10
    ptr: false
";

    #[test]
    fn entries_with_positions() {
        let v = parse_values(vec![src("a.yaml", BASE)]).unwrap();
        assert_eq!(v.zones.len(), 2);
        assert_eq!(v.zones[1].default_ttl, Some(600));
        assert_eq!((v.zones[1].pos.line, v.zones[1].pos.column), (4, 5));
        assert_eq!(v.records.len(), 2);
        match &v.records[0] {
            RecordEntry::Line { text, pos, .. } => {
                assert_eq!(text, "router IN A 192.168.1.1");
                assert_eq!((pos.file, pos.line, pos.column), (0, 7, 5));
            }
            other => panic!("{other:?}"),
        }
        match &v.records[1] {
            RecordEntry::Structured {
                name,
                ttl,
                ptr,
                pos,
                ..
            } => {
                assert_eq!(name, "nas");
                assert_eq!(*ttl, Some(300));
                assert_eq!(*ptr, Some(false));
                assert_eq!(pos.line, 8);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn later_files_win_maps_merge_lists_replace() {
        let over = "\
image: other
staticRecords:
  - \"printer A 192.168.1.9\"
";
        let v = parse_values(vec![src("a.yaml", BASE), src("b.yaml", over)]).unwrap();
        // zones kept from the first file, records replaced by the second.
        assert_eq!(v.zones.len(), 2);
        assert_eq!(v.records.len(), 1);
        let pos = v.records[0].pos();
        assert_eq!((pos.file, pos.line), (1, 3));
        assert_eq!(v.files[pos.file as usize].path, PathBuf::from("b.yaml"));

        // null removes a key; an empty file changes nothing.
        let v = parse_values(vec![
            src("a.yaml", BASE),
            src("c.yaml", ""),
            src("d.yaml", "staticRecords: null\n"),
        ])
        .unwrap();
        assert_eq!(v.zones.len(), 2);
        assert!(v.records.is_empty());
    }

    #[test]
    fn nested_maps_merge() {
        let a = src("a.yaml", "x:\n  a: 1\n  b: 2\nzones: [{name: a.test}]\n");
        let b = src("b.yaml", "x:\n  b: 3\n  c: 4\n");
        let merged = merge(parse_yaml(0, &a).unwrap(), parse_yaml(1, &b).unwrap());
        let Kind::Map(top) = merged.kind else {
            panic!()
        };
        let Kind::Map(x) = &top.iter().find(|(k, _)| k == "x").unwrap().1.kind else {
            panic!()
        };
        let keys: Vec<&str> = x.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(matches!(x[1].1.kind, Kind::Int(3)));
    }

    #[test]
    fn bad_yaml_and_bad_shapes_name_file_and_line() {
        let e = parse_values(vec![src("bad.yaml", "zones: [\n")]).unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
        let e = parse_values(vec![src(
            "shape.yaml",
            "zones:\n  - name: a.test\nstaticRecords:\n  - name: x\n    type: A\n    ttl: soon\n    data: 1.2.3.4\n",
        )])
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("shape.yaml:6:10: `ttl` must be an integer"),
            "{text}"
        );
    }
}
