//! The desired state: per zone, the static RRsets the values declare (PTRs included).

use std::collections::BTreeMap;

use domain::base::iana::Rtype;

use super::rr::{DName, fqdn};

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
        RrsetKey {
            owner: fqdn(owner).to_ascii_lowercase(),
            rtype,
        }
    }
}

/// An RRset: one TTL and its records, keyed by canonical wire rdata (value: presentation text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rrset {
    /// The TTL of the whole RRset.
    pub ttl: u32,
    /// canonical rdata -> presentation rdata.
    pub rdata: BTreeMap<Vec<u8>, String>,
}

/// A desired RRset with where it came from (for messages).
#[derive(Debug, Clone)]
pub struct DesiredRrset {
    /// The records.
    pub rrset: Rrset,
    /// `file:line:column` of every values entry that contributed.
    pub sources: Vec<String>,
}

/// One zone's desired static data.
#[derive(Debug, Clone)]
pub struct DesiredZone {
    /// The zone's name.
    pub name: DName,
    /// The RRsets the values declare for this zone.
    pub rrsets: BTreeMap<RrsetKey, DesiredRrset>,
}

impl DesiredZone {
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
