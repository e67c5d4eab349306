//! The desired state: per zone, the static RRsets the values declare (PTRs included).

use std::path::PathBuf;
use std::sync::Arc;

use domain::base::iana::Rtype;

use super::rr::{DName, fqdn};
use super::values::{Pos, location};

/// An RRset's identity: lowercase absolute owner and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RrsetKey {
    /// Absolute owner, lowercase, with trailing dot.
    pub owner: String,
    /// The type.
    pub rtype: Rtype,
}

impl RrsetKey {
    /// A key from a parsed owner and type.
    pub fn new(owner: &DName, rtype: Rtype) -> Self {
        let mut owner = fqdn(owner);
        owner.make_ascii_lowercase();
        RrsetKey { owner, rtype }
    }
}

/// An RRset: one TTL and its records, keyed by canonical wire rdata (value: presentation text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rrset {
    /// The TTL of the whole RRset.
    pub ttl: u32,
    /// canonical rdata -> presentation rdata.
    pub rdata: RdataSet,
}

impl Rrset {
    /// An RRset with `ttl` and no records yet.
    pub fn new(ttl: u32) -> Self {
        Rrset {
            ttl,
            rdata: RdataSet::default(),
        }
    }
}

/// The records of one RRset: canonical wire rdata -> presentation rdata, sorted by wire form.
///
/// Compact because there are hundreds of thousands of them: each record is one allocation
/// (wire length, wire, text), and the usual single record needs no list. A `BTreeMap` here
/// (a node of about 500 bytes per RRset) dominated memory at 100,000 records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdataSet(Records);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Records {
    #[default]
    Empty,
    One(Box<[u8]>),
    /// Two or more, sorted by wire form.
    Many(Vec<Box<[u8]>>),
}

/// One record of an [`RdataSet`] packed in one allocation: wire length, wire form, text.
pub(crate) fn pack(wire: &[u8], text: &str) -> Box<[u8]> {
    let len = u16::try_from(wire.len()).expect("rdata is at most 65535 bytes");
    let mut b = Vec::with_capacity(2 + wire.len() + text.len());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(wire);
    b.extend_from_slice(text.as_bytes());
    b.into_boxed_slice()
}

fn wire_of(packed: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_le_bytes([packed[0], packed[1]]));
    &packed[2..2 + len]
}

fn text_of(packed: &[u8]) -> &str {
    let len = usize::from(u16::from_le_bytes([packed[0], packed[1]]));
    std::str::from_utf8(&packed[2 + len..]).expect("packed from a str")
}

impl RdataSet {
    fn slice(&self) -> &[Box<[u8]>] {
        match &self.0 {
            Records::Empty => &[],
            Records::One(one) => std::slice::from_ref(one),
            Records::Many(many) => many,
        }
    }

    /// Inserts a record; an existing record with the same wire form gets the new text.
    pub fn insert(&mut self, wire: Vec<u8>, text: String) {
        self.insert_ref(&wire, &text);
    }

    /// [`RdataSet::insert`] from borrowed parts (one allocation: the packed record).
    pub fn insert_ref(&mut self, wire: &[u8], text: &str) {
        self.insert_packed(pack(wire, text));
    }

    /// [`RdataSet::insert`] of a record already [`pack`]ed.
    pub(crate) fn insert_packed(&mut self, packed: Box<[u8]>) {
        match std::mem::take(&mut self.0) {
            Records::Empty => self.0 = Records::One(packed),
            Records::One(one) => {
                let order = wire_of(&one).cmp(wire_of(&packed));
                self.0 = match order {
                    std::cmp::Ordering::Equal => Records::One(packed),
                    std::cmp::Ordering::Less => Records::Many(vec![one, packed]),
                    std::cmp::Ordering::Greater => Records::Many(vec![packed, one]),
                }
            }
            Records::Many(mut many) => {
                match many.binary_search_by(|p| wire_of(p).cmp(wire_of(&packed))) {
                    Ok(i) => many[i] = packed,
                    Err(i) => many.insert(i, packed),
                }
                self.0 = Records::Many(many);
            }
        }
    }

    /// Whether a record with this wire form is in the set.
    pub fn contains_key(&self, wire: &[u8]) -> bool {
        self.slice()
            .binary_search_by(|p| wire_of(p).cmp(wire))
            .is_ok()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.slice().len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.slice().is_empty()
    }

    /// (wire, text) pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &str)> {
        self.slice().iter().map(|p| (wire_of(p), text_of(p)))
    }

    /// Wire forms in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.slice().iter().map(|p| wire_of(p))
    }

    /// Presentation texts in wire order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.slice().iter().map(|p| text_of(p))
    }
}

impl Extend<(Vec<u8>, String)> for RdataSet {
    fn extend<I: IntoIterator<Item = (Vec<u8>, String)>>(&mut self, iter: I) {
        for (w, t) in iter {
            self.insert(w, t);
        }
    }
}

/// Where the values entries of one RRset are: positions, rendered only for messages (the
/// usual single entry needs no allocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    first: Option<Pos>,
    /// Boxed: one pointer in every declared RRset (a `Vec` is three words), for the few
    /// declared more than once.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<Pos>>>,
}

impl Sources {
    /// Adds the position of one more entry.
    pub fn push(&mut self, pos: Pos) {
        if self.first.is_none() {
            self.first = Some(pos);
        } else {
            self.rest.get_or_insert_default().push(pos);
        }
    }

    /// The first entry's position.
    pub fn first(&self) -> Option<Pos> {
        self.first
    }

    /// Every position, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = Pos> + '_ {
        let rest = self.rest.as_deref().map(Vec::as_slice).unwrap_or_default();
        self.first.into_iter().chain(rest.iter().copied())
    }
}

/// A desired RRset with where it came from (for messages).
#[derive(Debug, Clone)]
pub struct DesiredRrset {
    /// The records.
    pub rrset: Rrset,
    /// Every values entry that contributed.
    pub sources: Sources,
}

/// A zone's declared RRsets, sorted by key. Built once by validation and then only read: a
/// sorted vector (no tree to build, half the memory of a `BTreeMap` at 100,000 RRsets).
#[derive(Debug, Clone, Default)]
pub struct Rrsets(Vec<(RrsetKey, DesiredRrset)>);

impl Rrsets {
    /// From entries sorted by key, each key once.
    pub fn from_sorted(entries: Vec<(RrsetKey, DesiredRrset)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        Rrsets(entries)
    }

    /// Number of RRsets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The RRsets in key order.
    pub fn iter(&self) -> RrsetsIter<'_> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The RRset at position `i` in key order.
    pub fn at(&self, i: usize) -> &DesiredRrset {
        &self.0[i].1
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &RrsetKey> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The RRsets in key order, without their keys.
    pub fn values(&self) -> impl Iterator<Item = &DesiredRrset> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The RRset of `key`, if declared.
    pub fn get(&self, key: &RrsetKey) -> Option<&DesiredRrset> {
        self.0
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Every RRset at `owner` (any type), in type order.
    pub fn at_owner<'a>(
        &'a self,
        owner: &str,
    ) -> impl Iterator<Item = (&'a RrsetKey, &'a DesiredRrset)> {
        let from = self.0.partition_point(|(k, _)| k.owner.as_str() < owner);
        self.0[from..]
            .iter()
            .take_while(move |(k, _)| k.owner == owner)
            .map(|(k, v)| (k, v))
    }
}

/// [`Rrsets::iter`].
pub type RrsetsIter<'a> = std::iter::Map<
    std::slice::Iter<'a, (RrsetKey, DesiredRrset)>,
    fn(&'a (RrsetKey, DesiredRrset)) -> (&'a RrsetKey, &'a DesiredRrset),
>;

impl<'a> IntoIterator for &'a Rrsets {
    type Item = (&'a RrsetKey, &'a DesiredRrset);
    type IntoIter = RrsetsIter<'a>;
    fn into_iter(self) -> RrsetsIter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&RrsetKey> for Rrsets {
    type Output = DesiredRrset;
    fn index(&self, key: &RrsetKey) -> &DesiredRrset {
        self.get(key).expect("no RRset with this key")
    }
}

/// One zone's desired static data.
#[derive(Debug, Clone)]
pub struct DesiredZone {
    /// The zone's name.
    pub name: DName,
    /// The RRsets the values declare for this zone.
    pub rrsets: Rrsets,
    /// The values files' paths, in [`Pos::file`] order (for messages).
    pub files: Arc<[PathBuf]>,
}

impl DesiredZone {
    /// `path:line:column` of `pos` in the values files.
    pub fn location(&self, pos: Pos) -> String {
        location(&self.files, pos)
    }

    /// `file:line:column` of every values entry of `rrset`, comma separated.
    pub fn sources_text(&self, rrset: &DesiredRrset) -> String {
        let all: Vec<String> = rrset.sources.iter().map(|p| self.location(p)).collect();
        all.join(", ")
    }

    /// The zone's name as text with its trailing dot.
    pub fn fqdn(&self) -> String {
        fqdn(&self.name)
    }

    /// Number of records (not RRsets).
    pub fn record_count(&self) -> usize {
        self.rrsets.values().map(|r| r.rrset.rdata.len()).sum()
    }
}

/// Everything the values declare, validated.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The zones in `zones` order.
    pub zones: Vec<DesiredZone>,
    /// Things worth telling but not wrong (e.g. an address with no reverse zone).
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdata_set_keeps_wire_order_and_replaces_text_of_equal_wire() {
        let mut s = RdataSet::default();
        assert!(s.is_empty());
        s.insert(vec![3], "c".into());
        s.insert(vec![1], "a".into());
        s.insert(vec![2], "b".into());
        s.insert(vec![1], "A".into());
        assert_eq!(s.len(), 3);
        assert_eq!(s.keys().collect::<Vec<_>>(), [&[1u8][..], &[2], &[3]]);
        assert_eq!(s.values().collect::<Vec<_>>(), ["A", "b", "c"]);
        assert!(s.contains_key(&[2]) && !s.contains_key(&[4]));
        let mut one = RdataSet::default();
        one.insert(vec![7, 0, 1], "x".into());
        one.insert(vec![7, 0, 1], "y".into());
        assert_eq!(one.iter().collect::<Vec<_>>(), [(&[7u8, 0, 1][..], "y")]);
        let mut other = RdataSet::default();
        other.extend([(vec![7, 0, 1], "y".to_owned())]);
        assert_eq!(one, other);
    }
}
