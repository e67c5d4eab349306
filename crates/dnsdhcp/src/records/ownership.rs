//! Ownership: which RRsets the tool manages, kept in the zone itself.
//!
//! The set of owned (owner, type) pairs lives in TXT records at
//! `<h>._dnsdhcp-owned.<zone>` (`h` one hex digit of a stable hash of the owner, so that no single
//! RRset grows past what a DNS message can carry). Each owner lands in one of 64 TXT records of
//! its RRset (more hash bits), which lists pairs of strings: the owner relative to the zone (`@`
//! for the apex) and its managed types, e.g. `"nas" "A AAAA" "router" "A"`. A zone of 10,000
//! owners needs about 1,000 such records; one changed owner changes one of them.
//!
//! Keeping it in the zone, like external-dns's TXT registry, means it travels with the zone data:
//! it is in every `zone-backup` and is restored with it, it survives pod restarts and knotd
//! restarts, and it changes in the same transaction as the records it describes, so the two can
//! never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use domain::base::iana::Rtype;

use super::model::{Rrset, RrsetKey};

/// The reserved label under each zone's apex that holds the ownership records.
pub const OWNERSHIP_LABEL: &str = "_dnsdhcp-owned";

/// TTL of the ownership records.
pub const OWNERSHIP_TTL: u32 = 3600;

/// Whether `owner` (lowercase FQDN) is an ownership record's owner in `zone` (lowercase FQDN).
pub fn is_ownership_owner(owner: &str, zone: &str) -> bool {
    owner
        .strip_suffix(zone)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|rest| {
            rest == OWNERSHIP_LABEL
                || rest
                    .strip_suffix(OWNERSHIP_LABEL)
                    .is_some_and(|r| r.ends_with('.'))
        })
}

fn fnv1a(text: &str) -> u64 {
    // FNV-1a: stable across versions and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn relative<'a>(owner: &'a str, zone: &str) -> &'a str {
    if owner == zone {
        "@"
    } else {
        owner
            .strip_suffix(zone)
            .and_then(|r| r.strip_suffix('.'))
            .unwrap_or(owner)
    }
}

/// Appends one character-string (at most 255 bytes of `s`) to a TXT record's wire rdata.
fn push_string(wire: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    wire.push(b.len() as u8);
    wire.extend_from_slice(b);
}

/// The presentation form of a TXT record's wire rdata: its character-strings quoted, `"` and
/// `\` escaped. Rendered only where a record is shown or sent, not kept beside the wire.
pub fn txt_text(wire: &[u8]) -> String {
    let mut text = String::with_capacity(wire.len() + wire.len() / 8 + 2);
    for b in strings(wire) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push('"');
        match std::str::from_utf8(b) {
            Ok(plain) if !plain.contains(['"', '\\']) => text.push_str(plain),
            _ => {
                for c in String::from_utf8_lossy(b).chars() {
                    if c == '"' || c == '\\' {
                        text.push('\\');
                    }
                    text.push(c);
                }
            }
        }
        text.push('"');
    }
    text
}

/// The character-strings of a TXT record's wire rdata (a truncated last one as far as it goes).
fn strings(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let n = *wire.get(i)? as usize;
        let end = (i + 1 + n).min(wire.len());
        let s = &wire[i + 1..end];
        i = end;
        Some(s)
    })
}

/// Number of shards (ownership RRsets) and of buckets (TXT records) per shard.
pub const SHARDS: usize = 16;
const BUCKETS: usize = 64;

/// The owner of ownership shard `shard` (below [`SHARDS`]) in `zone` (lowercase FQDN).
pub fn shard_owner(shard: usize, zone: &str) -> String {
    format!("{shard:x}.{OWNERSHIP_LABEL}.{zone}")
}

/// The ownership RRsets that record `owned` (lowercase FQDN zone).
pub fn encode<'a>(
    zone: &str,
    owned: impl IntoIterator<Item = &'a RrsetKey>,
) -> BTreeMap<RrsetKey, Rrset> {
    rrsets(zone, &listings(zone, owned))
}

/// One ownership TXT record: its shard, its canonical wire rdata, and the positions (in the
/// order given to [`listings`]) of the keys it lists; `ids` is `None` when the listing is cut
/// short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The RRset it belongs to ([`shard_owner`]).
    pub shard: usize,
    /// The record's canonical wire rdata.
    pub wire: Vec<u8>,
    /// Positions of the listed keys, unless a string had to be cut at 255 bytes.
    pub ids: Option<Vec<u32>>,
}

/// The ownership TXT records that record `owned`, in shard order, each telling which keys it
/// lists: a served record equal to one of these lists exactly those keys, so it needs no
/// decoding. Wire form only: [`rrsets`] renders them for sending.
pub fn listings<'a>(zone: &str, owned: impl IntoIterator<Item = &'a RrsetKey>) -> Vec<Listing> {
    let mut pairs: Vec<(&str, Rtype, u32)> = owned
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k.owner.as_str(), k.rtype, i as u32))
        .collect();
    // Usually sorted already (the keys of a BTreeMap): then this is one linear pass.
    pairs.sort_unstable();
    pairs.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    // shard * BUCKETS + bucket -> that TXT record, owners in sorted order.
    let mut buckets: Vec<Listing> = (0..SHARDS * BUCKETS)
        .map(|slot| Listing {
            shard: slot / BUCKETS,
            wire: Vec::new(),
            ids: Some(Vec::new()),
        })
        .collect();
    let mut types = String::new();
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let owner = group[0].0;
        let h = fnv1a(owner);
        types.clear();
        for (_, t, _) in group {
            if !types.is_empty() {
                types.push(' ');
            }
            match *t {
                Rtype::A => types.push('A'),
                Rtype::AAAA => types.push_str("AAAA"),
                Rtype::PTR => types.push_str("PTR"),
                _ => {
                    let _ = write!(types, "{t}");
                }
            }
        }
        let slot = (h & 0xf) as usize * BUCKETS + ((h >> 4) & 0x3f) as usize;
        let listing = &mut buckets[slot];
        let rel = relative(owner, zone);
        push_string(&mut listing.wire, rel);
        push_string(&mut listing.wire, &types);
        if rel.len() > 255 || types.len() > 255 {
            listing.ids = None;
        } else if let Some(ids) = &mut listing.ids {
            ids.extend(group.iter().map(|p| p.2));
        }
    }
    buckets.retain(|l| !l.wire.is_empty());
    buckets
}

/// The ownership RRsets made of `listings`, wire and presentation form.
pub fn rrsets<'a>(
    zone: &str,
    listings: impl IntoIterator<Item = &'a Listing>,
) -> BTreeMap<RrsetKey, Rrset> {
    let mut out: BTreeMap<RrsetKey, Rrset> = BTreeMap::new();
    for l in listings {
        let key = RrsetKey {
            owner: shard_owner(l.shard, zone),
            rtype: Rtype::TXT,
        };
        out.entry(key)
            .or_insert_with(|| Rrset::new(OWNERSHIP_TTL))
            .rdata
            .insert_ref(&l.wire, &txt_text(&l.wire));
    }
    out
}

/// The owned (owner, type) pairs recorded in one ownership TXT record's canonical wire rdata.
pub fn decode(zone: &str, wire: &[u8]) -> Vec<RrsetKey> {
    let mut out = Vec::new();
    decode_each(zone, wire, |k| out.push(k.clone()));
    out
}

/// [`decode`] without collecting: `f` sees each pair in turn (one key, reused).
pub fn decode_each(zone: &str, wire: &[u8], mut f: impl FnMut(&RrsetKey)) {
    let strings: Vec<&[u8]> = strings(wire).collect();
    let mut key = RrsetKey {
        owner: String::new(),
        rtype: Rtype::A,
    };
    for pair in strings.chunks(2) {
        let [rel, types] = pair else { continue };
        key.owner.clear();
        key.owner.push_str(&String::from_utf8_lossy(rel));
        key.owner.make_ascii_lowercase();
        if key.owner == "@" {
            key.owner.clear();
        } else {
            key.owner.push('.');
        }
        key.owner.push_str(zone);
        for t in String::from_utf8_lossy(types).split_whitespace() {
            if let Ok(rtype) = t.parse::<Rtype>() {
                key.rtype = rtype;
                f(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let zone = "home.arpa.";
        let owned = vec![
            RrsetKey {
                owner: "home.arpa.".into(),
                rtype: Rtype::MX,
            },
            RrsetKey {
                owner: "nas.home.arpa.".into(),
                rtype: Rtype::A,
            },
            RrsetKey {
                owner: "nas.home.arpa.".into(),
                rtype: Rtype::AAAA,
            },
        ];
        let sets = encode(zone, &owned);
        let mut back: Vec<RrsetKey> = sets
            .iter()
            .flat_map(|(k, s)| {
                assert!(is_ownership_owner(&k.owner, zone), "{}", k.owner);
                s.rdata
                    .keys()
                    .flat_map(|w| decode(zone, w))
                    .collect::<Vec<_>>()
            })
            .collect();
        back.sort();
        assert_eq!(back, owned);
        assert!(!is_ownership_owner("nas.home.arpa.", zone));
        assert!(!is_ownership_owner("x_dnsdhcp-owned.home.arpa.", zone));
    }
}
