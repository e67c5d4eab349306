//! Value types used by the typed commands: records, versions, zone status, options.

use std::fmt;
use std::path::PathBuf;

use crate::codec::{Item, Items};

/// One resource record as knotd's control interface carries it (presentation format).
///
/// Replies (zone-read/get/diff) give FQDN owners and always a TTL. In requests the owner may be
/// relative to the zone (no trailing dot), absolute (trailing dot) or `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Record {
    /// Owner name, e.g. `www.example.test.` (reply) or `www` (request, relative to the zone).
    pub owner: String,
    /// TTL; `None` in a request means "use the existing RRset's TTL".
    pub ttl: Option<u32>,
    /// RR type mnemonic, e.g. `A`, `TXT`, `TYPE65534`.
    pub rtype: String,
    /// Rdata in zone-file presentation format (quoted strings, escapes as in a zone file).
    pub data: String,
}

impl Record {
    /// A record with a TTL.
    pub fn new(
        owner: impl Into<String>,
        ttl: u32,
        rtype: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        Self {
            owner: owner.into(),
            ttl: Some(ttl),
            rtype: rtype.into(),
            data: data.into(),
        }
    }

    /// A record without a TTL (set uses the existing RRset's TTL; unset ignores TTLs anyway).
    pub fn without_ttl(
        owner: impl Into<String>,
        rtype: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        Self {
            owner: owner.into(),
            ttl: None,
            rtype: rtype.into(),
            data: data.into(),
        }
    }

    /// Builds a record from reply items (OWNER, TTL, TYPE, DATA).
    pub fn from_items(items: &Items) -> Self {
        Self {
            owner: items.text(Item::Owner).unwrap_or_default(),
            ttl: items.text(Item::Ttl).and_then(|t| t.parse().ok()),
            rtype: items.text(Item::Type).unwrap_or_default(),
            data: items.text(Item::Data).unwrap_or_default(),
        }
    }
}

/// A record borrowed from a reply's decoding buffer ([`crate::RecordStream::next_ref`]), so that
/// reading a zone costs no allocation per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Owner name as the server presents it.
    pub owner: &'a str,
    /// TTL, if the reply carries one.
    pub ttl: Option<u32>,
    /// RR type mnemonic.
    pub rtype: &'a str,
    /// Rdata in presentation format.
    pub data: &'a str,
}

impl Record {
    /// The record borrowed.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            owner: &self.owner,
            ttl: self.ttl,
            rtype: &self.rtype,
            data: &self.data,
        }
    }
}

impl fmt::Display for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_record(), f)
    }
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            owner: self.owner.to_owned(),
            ttl: self.ttl,
            rtype: self.rtype.to_owned(),
            data: self.data.to_owned(),
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.owner)?;
        if let Some(ttl) = self.ttl {
            write!(f, " {ttl}")?;
        }
        write!(f, " {} {}", self.rtype, self.data)
    }
}

/// knotd's version, parsed from `status version` (`Version: 3.2.6` in 3.2, `3.4.1` from 3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number.
    pub patch: u32,
    /// The text as the server sent it, without the `Version: ` prefix.
    pub text: String,
}

impl Version {
    /// Parses `Version: 3.2.6`, `3.4.1`, `3.5.0-dev.123` and the like.
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim();
        let t = t.strip_prefix("Version:").map(str::trim).unwrap_or(t);
        let mut nums = t
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse::<u32>());
        let major = nums.next()?.ok()?;
        let minor = nums.next()?.ok()?;
        let patch = nums.next().and_then(Result::ok).unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
            text: t.to_owned(),
        })
    }

    /// Whether this version is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One zone's `zone-status`: the fixed fields parsed, everything else kept as events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneStatus {
    /// Zone name (FQDN, lower case).
    pub zone: String,
    /// `master`/`slave` (or `primary`/`secondary` in newer versions), if reported.
    pub role: Option<String>,
    /// The loaded serial; `None` while the zone is not loaded (`-`).
    pub serial: Option<u32>,
    /// Whether a control transaction is open on the zone.
    pub transaction: bool,
    /// `freeze` field value, if not `-`.
    pub freeze: Option<String>,
    /// `XFR-freeze` field value, if not `-`.
    pub xfr_freeze: Option<String>,
    /// `catalog` field value, if not `-`.
    pub catalog: Option<String>,
    /// Zone events (`load`, `flush`, `backup/restore`, ...) with their values when not `-`.
    pub events: Vec<ZoneEvent>,
    /// Marker `e`: the zone is empty / not loaded.
    pub empty: bool,
    /// Marker `s`: the zone is a secondary.
    pub secondary: bool,
    /// Marker `m`: the zone is a catalog member.
    pub catalog_member: bool,
}

/// A scheduled or running zone event as zone-status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneEvent {
    /// Event name, e.g. `refresh`, `flush`, `backup/restore`.
    pub name: String,
    /// `running`, `pending`, `frozen`, or a time.
    pub value: String,
}

impl ZoneStatus {
    pub(crate) fn apply(&mut self, items: &Items) {
        for marker in markers(items) {
            match marker {
                'e' => self.empty = true,
                's' => self.secondary = true,
                'm' => self.catalog_member = true,
                _ => {}
            }
        }
        let Some(field) = items.text(Item::Type) else {
            return;
        };
        let value = items.text(Item::Data).unwrap_or_default();
        let opt = || (value != "-" && !value.is_empty()).then(|| value.clone());
        match field.as_str() {
            "role" => self.role = opt(),
            "serial" => self.serial = value.parse().ok(),
            "transaction" => self.transaction = value == "open",
            "freeze" => self.freeze = opt(),
            "XFR-freeze" => self.xfr_freeze = opt(),
            "catalog" => self.catalog = opt(),
            _ => {
                if let Some(v) = opt() {
                    self.events.push(ZoneEvent {
                        name: field,
                        value: v,
                    });
                }
            }
        }
    }
}

/// Reply markers: FLAGS up to Knot 3.4.0, FILTER from 3.4.1; both are read.
pub(crate) fn markers(items: &Items) -> impl Iterator<Item = char> + '_ {
    items
        .get(Item::Flags)
        .into_iter()
        .chain(items.get(Item::Filter))
        .flat_map(|v| v.iter().map(|&b| b as char))
}

/// Whether a zone-diff record was removed or added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Marker `-`.
    Removed,
    /// Marker `+`.
    Added,
}

/// One line of `zone-diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// Removed or added.
    pub change: Change,
    /// The record.
    pub record: Record,
}

/// A record the server refused in a batched zone-set/zone-unset, by its index in the input.
#[derive(Debug)]
pub struct RecordError {
    /// Index of the record in the slice passed to the batch call.
    pub index: usize,
    /// The server's error for that record.
    pub error: crate::Error,
}

/// Options of `zone-reload`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadOptions {
    /// `B`: wait until the reload finished and report its result.
    pub blocking: bool,
    /// `F`: also reload modules (force). Knot 3.2 then re-creates the zone, and the reply does
    /// not wait for the load even with `B`: poll zone-status for the new serial.
    pub force: bool,
}

/// Options of `zone-flush`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushOptions {
    /// `+outdir`: dump the zone file into this (absolute) directory instead.
    pub outdir: Option<PathBuf>,
    /// `B`: wait for the flush to finish.
    pub blocking: bool,
    /// `F`: flush even if zone-file sync is disabled.
    pub force: bool,
}

/// Component selection of zone-backup / zone-restore; `None` keeps knotd's default.
///
/// Defaults (3.2): zonefile, timers, kaspdb, catalog on; journal off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Components {
    /// `z` / `Z`.
    pub zonefile: Option<bool>,
    /// `j` / `J`.
    pub journal: Option<bool>,
    /// `t` / `T`.
    pub timers: Option<bool>,
    /// `k` / `K`.
    pub kaspdb: Option<bool>,
    /// `c` / `C`.
    pub catalog: Option<bool>,
}

impl Components {
    /// The filter letters for these choices (lower = on, upper = off).
    pub fn filter_letters(&self) -> String {
        let mut s = String::new();
        for (choice, c) in [
            (self.zonefile, 'z'),
            (self.journal, 'j'),
            (self.timers, 't'),
            (self.kaspdb, 'k'),
            (self.catalog, 'c'),
        ] {
            match choice {
                Some(true) => s.push(c),
                Some(false) => s.push(c.to_ascii_uppercase()),
                None => {}
            }
        }
        s
    }
}

/// Options of zone-backup / zone-restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    /// `+backupdir` (required; absolute; its parent must exist).
    pub dir: PathBuf,
    /// Which components to include.
    pub components: Components,
    /// `B`: wait until finished and report the result (otherwise OK only means queued).
    pub blocking: bool,
    /// `F`: restore accepts pre-3.1 backups; 3.4+ backup replaces an existing target.
    pub force: bool,
}

impl BackupOptions {
    /// Blocking backup/restore of `dir` with knotd's default components.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            components: Components::default(),
            blocking: true,
            force: false,
        }
    }
}

pub(crate) fn flags(blocking: bool, force: bool) -> Option<String> {
    let mut s = String::new();
    if blocking {
        s.push('B');
    }
    if force {
        s.push('F');
    }
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = Version::parse("Version: 3.2.6").unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.text.as_str()),
            (3, 2, 6, "3.2.6")
        );
        let v = Version::parse("3.4.1").unwrap();
        assert!(v.at_least(3, 4, 1) && !v.at_least(3, 4, 2));
        let v = Version::parse("3.5.0-dev.20250101").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (3, 5, 0));
        assert!(Version::parse("garbage").is_none());
    }

    #[test]
    fn component_letters() {
        let c = Components {
            zonefile: Some(true),
            journal: Some(true),
            timers: Some(false),
            ..Default::default()
        };
        assert_eq!(c.filter_letters(), "zjT");
    }
}
