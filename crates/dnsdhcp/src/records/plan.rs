//! The plan: per zone, what must change so that the zone serves exactly the desired static
//! RRsets — whole-RRset semantics for every owner/type the tool manages — and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use domain::base::iana::Rtype;
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::error::RecordsError;
use super::model::{Desired, DesiredZone, Rrset, RrsetKey, Rrsets};
use super::ownership::{self, is_ownership_owner};
use super::rr::{dnssec_type, fast_canonical_rdata_into, parse_knot_rr};

/// A record as the zone serves it (as Knot's `zone-read` presents it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRecord {
    /// Absolute owner.
    pub owner: String,
    /// TTL.
    pub ttl: u32,
    /// Type mnemonic (`A`, `TYPE65534`, ...).
    pub rtype: String,
    /// Rdata in presentation format.
    pub data: String,
}

/// A served record borrowed from where it was read (a `zone-read` buffer, a [`CurrentRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRef<'a> {
    /// Absolute owner.
    pub owner: &'a str,
    /// TTL.
    pub ttl: u32,
    /// Type mnemonic.
    pub rtype: &'a str,
    /// Rdata in presentation format.
    pub data: &'a str,
}

impl CurrentRef<'_> {
    fn to_owned_record(self) -> CurrentRecord {
        CurrentRecord {
            owner: self.owner.to_owned(),
            ttl: self.ttl,
            rtype: self.rtype.to_owned(),
            data: self.data.to_owned(),
        }
    }
}

/// The records one zone serves, one at a time, each borrowed until the next is asked for (so a
/// zone is read without an allocation per record). The first error ends the plan.
pub trait ZoneRecords {
    /// The next record, or `None` at the end.
    fn next_record(&mut self) -> Option<Result<CurrentRef<'_>, RecordsError>>;
}

/// [`ZoneRecords`] over owned records.
struct OwnedRecords<I> {
    iter: I,
    current: Option<CurrentRecord>,
}

impl<I: Iterator<Item = Result<CurrentRecord, RecordsError>>> ZoneRecords for OwnedRecords<I> {
    fn next_record(&mut self) -> Option<Result<CurrentRef<'_>, RecordsError>> {
        match self.iter.next()? {
            Err(e) => Some(Err(e)),
            Ok(r) => {
                let r = self.current.insert(r);
                Some(Ok(CurrentRef {
                    owner: &r.owner,
                    ttl: r.ttl,
                    rtype: &r.rtype,
                    data: &r.data,
                }))
            }
        }
    }
}

/// What happens to one RRset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The RRset is new.
    Create,
    /// The RRset exists and changes (records, TTL, or both).
    Update,
    /// The RRset is removed.
    Delete,
}

/// The change of one RRset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RrsetChange {
    /// Absolute owner.
    pub owner: String,
    /// Type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// What happens.
    pub action: Action,
    /// The RRset exists but the tool did not own it: it now takes it over (the values declare it).
    pub adopted: bool,
    /// TTL before (if the RRset exists).
    pub old_ttl: Option<u32>,
    /// TTL after (unless deleted).
    pub new_ttl: Option<u32>,
    /// Records removed (rdata).
    pub remove: Vec<String>,
    /// Records added (rdata).
    pub add: Vec<String>,
    /// Records kept (rdata).
    pub keep: Vec<String>,
}

impl RrsetChange {
    /// Whether the whole RRset is unset first (deletion, or a TTL change: Knot keeps one TTL
    /// per RRset, so the RRset is replaced).
    pub fn replaces_whole(&self) -> bool {
        self.action == Action::Delete || (self.old_ttl.is_some() && self.old_ttl != self.new_ttl)
    }

    /// The type's code, for sorting changes as their keys sort.
    fn rtype_code(&self) -> u16 {
        self.rtype.parse::<Rtype>().map_or(0, |t| t.to_int())
    }

    /// Managed records this change deletes or changes (for the safety limit).
    fn affected(&self) -> usize {
        if self.replaces_whole() {
            self.remove.len() + self.keep.len()
        } else {
            self.remove.len()
        }
    }
}

/// One zone's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZonePlan {
    /// The zone (absolute).
    pub zone: String,
    /// RRset changes, sorted by owner and type.
    pub changes: Vec<RrsetChange>,
    /// Owner/type pairs the tool takes ownership of.
    pub ownership_added: Vec<String>,
    /// Owner/type pairs the tool gives up (their RRsets are deleted).
    pub ownership_removed: Vec<String>,
    /// Changes to the ownership records themselves (applied in the same transaction).
    pub ownership_changes: Vec<RrsetChange>,
    /// Records the tool manages in the zone now.
    pub managed_records: usize,
    /// Of those, how many this plan deletes or changes.
    pub affected_records: usize,
    /// Conflicts with records the tool does not own (a plan with conflicts is not applied).
    pub conflicts: Vec<String>,
}

impl ZonePlan {
    /// Whether nothing changes in this zone.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.ownership_changes.is_empty()
    }

    /// The share of managed records deleted or changed (0 when none are managed).
    pub fn affected_share(&self) -> f64 {
        if self.managed_records == 0 {
            0.0
        } else {
            self.affected_records as f64 / self.managed_records as f64
        }
    }
}

/// The plan for every zone of the values.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    /// One entry per zone, in `zones` order (zones without changes included).
    pub zones: Vec<ZonePlan>,
    /// Notes from validation (e.g. addresses without a reverse zone).
    pub notes: Vec<String>,
    /// How the plan stands against the safety limit (set by [`Plan::assess`]).
    pub safety_limit: Option<SafetyReport>,
}

/// A plan measured against the safety limit: whether `apply` would refuse it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetyReport {
    /// The limit in percent of a zone's managed records.
    pub max_percent: f64,
    /// The limit applies to zones managing at least this many records.
    pub min_records: usize,
    /// Whether `--force` was given (an exceeded limit is then ignored).
    pub force: bool,
    /// Zones whose plan deletes or changes more than the limit allows.
    pub exceeded: Vec<LimitExceeded>,
    /// Whether `apply` with the same options would refuse the plan and change nothing.
    pub apply_refused: bool,
}

/// One zone over the safety limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitExceeded {
    /// The zone.
    pub zone: String,
    /// Managed records the plan deletes or changes.
    pub affected: usize,
    /// Managed records in the zone now.
    pub managed: usize,
    /// affected / managed in percent.
    pub percent: f64,
}

impl Plan {
    /// Whether nothing changes anywhere.
    pub fn is_empty(&self) -> bool {
        self.zones.iter().all(ZonePlan::is_empty)
    }

    /// Records in [`Plan::safety_limit`] how the plan stands against `limit` (with `force`).
    pub fn assess(&mut self, limit: &SafetyLimit, force: bool) {
        let exceeded = limit.exceeded(self);
        self.safety_limit = Some(SafetyReport {
            max_percent: limit.max_share * 100.0,
            min_records: limit.min_records,
            force,
            apply_refused: !force && !exceeded.is_empty(),
            exceeded,
        });
    }
}

/// The safety limit: refuse plans that delete or change too many managed records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SafetyLimit {
    /// Largest share (0.0–1.0) of a zone's managed records one apply may delete or change.
    pub max_share: f64,
    /// The limit applies only to zones managing at least this many records.
    pub min_records: usize,
}

impl Default for SafetyLimit {
    /// 30 % of the managed records, for zones with at least 10.
    fn default() -> Self {
        SafetyLimit {
            max_share: 0.30,
            min_records: 10,
        }
    }
}

impl SafetyLimit {
    /// A limit of `percent` (0–100) of a zone's managed records, for zones with at least 10.
    /// `None` for anything else (NaN, negative, over 100).
    pub fn percent(percent: f64) -> Option<Self> {
        (0.0..=100.0).contains(&percent).then(|| SafetyLimit {
            max_share: percent / 100.0,
            ..SafetyLimit::default()
        })
    }

    /// The zones of `plan` over the limit.
    pub fn exceeded(&self, plan: &Plan) -> Vec<LimitExceeded> {
        plan.zones
            .iter()
            .filter(|z| {
                z.managed_records >= self.min_records && z.affected_share() > self.max_share
            })
            .map(|z| LimitExceeded {
                zone: z.zone.clone(),
                affected: z.affected_records,
                managed: z.managed_records,
                percent: z.affected_share() * 100.0,
            })
            .collect()
    }

    /// `Err(SafetyLimit)` for the first zone of `plan` over the limit.
    pub fn check(&self, plan: &Plan) -> Result<(), RecordsError> {
        match self.exceeded(plan).into_iter().next() {
            Some(z) => Err(RecordsError::SafetyLimit {
                zone: z.zone,
                affected: z.affected,
                managed: z.managed,
                percent: z.percent,
                limit_percent: self.max_share * 100.0,
            }),
            None => Ok(()),
        }
    }
}

/// Checks that no zone of `plan` has conflicts with records the tool does not own.
pub fn check_conflicts(plan: &Plan) -> Result<(), RecordsError> {
    match plan.zones.iter().find(|z| !z.conflicts.is_empty()) {
        Some(z) => Err(RecordsError::Conflict {
            zone: z.zone.clone(),
            conflicts: z.conflicts.clone(),
        }),
        None => Ok(()),
    }
}

/// Plans every zone of `desired`; `current` gives the records a zone serves now.
pub fn plan<F>(desired: &Desired, mut current: F) -> Result<Plan, RecordsError>
where
    F: FnMut(&DesiredZone) -> Result<Vec<CurrentRecord>, RecordsError>,
{
    let mut zones = Vec::with_capacity(desired.zones.len());
    for z in &desired.zones {
        let records = current(z)?;
        zones.push(plan_zone(z, records)?);
    }
    Ok(Plan {
        zones,
        notes: desired.notes.clone(),
        safety_limit: None,
    })
}

/// Plans one zone: the desired static RRsets against the records the zone serves now.
pub fn plan_zone(
    desired: &DesiredZone,
    current: impl IntoIterator<Item = CurrentRecord>,
) -> Result<ZonePlan, RecordsError> {
    plan_zone_stream(desired, current.into_iter().map(Ok))
}

/// [`plan_zone`] over a stream of records: the first error ends the plan.
pub fn plan_zone_stream(
    desired: &DesiredZone,
    current: impl IntoIterator<Item = Result<CurrentRecord, RecordsError>>,
) -> Result<ZonePlan, RecordsError> {
    plan_zone_records(
        desired,
        &mut OwnedRecords {
            iter: current.into_iter(),
            current: None,
        },
    )
}

/// [`plan_zone`] over borrowed records (e.g. straight from `zone-read`'s buffer). Memory: the
/// declared RRsets as served and the records the values do not declare.
pub fn plan_zone_records(
    desired: &DesiredZone,
    current: &mut impl ZoneRecords,
) -> Result<ZonePlan, RecordsError> {
    let zone = desired.fqdn().to_ascii_lowercase();
    // Each declared RRset by its position in `desired.rrsets`.
    // (The owner's text sits in the table itself: one memory access less per lookup.)
    let mut index: FxHashMap<(&str, Rtype), usize> = FxHashMap::default();
    index.reserve(desired.rrsets.len());
    index.extend(
        desired
            .rrsets
            .keys()
            .enumerate()
            .map(|(i, k)| ((k.owner.as_str(), k.rtype), i)),
    );
    // Ownership: exactly the desired keys. A served ownership record equal to a wanted one
    // lists exactly the keys the wanted one lists.
    let listings = ownership::listings(&zone, desired.rrsets.keys());
    let own = WantedOwnership::new(&zone, &listings);
    let cur = read_current(&zone, &index, &desired.rrsets, &own, current)?;

    // Room for a change per declared RRset (a first apply): pages never written cost nothing.
    let mut changes: Vec<RrsetChange> = Vec::with_capacity(desired.rrsets.len());
    let mut affected_records = 0;
    for (i, (key, d)) in desired.rrsets.iter().enumerate() {
        let owned = cur.owned[i];
        if let Some(c) = diff_rrset(key, cur.served(i, &d.rrset), Some(&d.rrset), !owned) {
            if owned {
                affected_records += c.affected();
            }
            changes.push(c);
        }
    }
    if !cur.released.is_empty() {
        for (key, have) in &cur.released {
            if let Some(c) = diff_rrset(key, have.as_ref(), None, false) {
                affected_records += c.affected();
                changes.push(c);
            }
        }
        changes.sort_by(|a, b| (&a.owner, &a.rtype_code()).cmp(&(&b.owner, &b.rtype_code())));
    }
    let managed_records: usize = desired
        .rrsets
        .values()
        .enumerate()
        .filter(|(i, _)| cur.owned[*i])
        .filter_map(|(i, d)| cur.served(i, &d.rrset).map(|set| set.rdata.len()))
        .chain(cur.released.values().flatten().map(|set| set.rdata.len()))
        .sum();
    let ownership_changes = own.changes(&cur);
    let fmt_key = |k: &RrsetKey| match k.rtype.to_mnemonic_str() {
        // Without the formatting machinery: this runs for every RRset of a first apply.
        Some(t) => {
            let mut s = String::with_capacity(k.owner.len() + 1 + t.len());
            s.push_str(&k.owner);
            s.push(' ');
            s.push_str(t);
            s
        }
        None => format!("{} {}", k.owner, k.rtype),
    };
    Ok(ZonePlan {
        ownership_added: desired
            .rrsets
            .keys()
            .zip(&cur.owned)
            .filter(|(_, owned)| !**owned)
            .map(|(k, _)| fmt_key(k))
            .collect(),
        ownership_removed: cur.released.keys().map(fmt_key).collect(),
        conflicts: conflicts(desired, &cur.unmanaged),
        zone,
        changes,
        ownership_changes,
        managed_records,
        affected_records,
    })
}

/// The ownership records a plan wants ([`ownership::listings`]), found again by their wire form
/// among the served ones.
struct WantedOwnership<'a> {
    listings: &'a [ownership::Listing],
    /// Listing position by wire rdata.
    by_wire: FxHashMap<&'a [u8], usize>,
    /// Each shard's owner.
    shard_owners: Vec<String>,
}

impl<'a> WantedOwnership<'a> {
    fn new(zone: &str, listings: &'a [ownership::Listing]) -> Self {
        WantedOwnership {
            listings,
            by_wire: listings
                .iter()
                .enumerate()
                .map(|(n, l)| (l.wire.as_slice(), n))
                .collect(),
            shard_owners: (0..ownership::SHARDS)
                .map(|s| ownership::shard_owner(s, zone))
                .collect(),
        }
    }

    /// The wanted record a served ownership record (`owner`, canonical `wire`) is, if any.
    fn find(&self, owner: &str, wire: &[u8]) -> Option<usize> {
        let n = *self.by_wire.get(wire)?;
        (self.shard_owners[self.listings[n].shard] == owner).then_some(n)
    }

    /// Adds the wanted records at positions `which` to `set`.
    fn add_records(&self, set: &mut Rrset, which: impl Iterator<Item = usize>) {
        for n in which {
            let wire = &self.listings[n].wire;
            set.rdata.insert_ref(wire, &ownership::txt_text(wire));
        }
    }

    /// The changes that make the served ownership RRsets the wanted ones.
    fn changes(&self, cur: &CurrentZone) -> Vec<RrsetChange> {
        let owners: BTreeSet<&str> = self
            .listings
            .iter()
            .map(|l| self.shard_owners[l.shard].as_str())
            .chain(cur.ownership.keys().map(|k| k.owner.as_str()))
            .collect();
        let mut changes = Vec::new();
        for owner in owners {
            let wanted: Vec<usize> = (0..self.listings.len())
                .filter(|&n| self.shard_owners[self.listings[n].shard] == owner)
                .collect();
            let key = RrsetKey {
                owner: owner.to_owned(),
                rtype: Rtype::TXT,
            };
            let served = cur.ownership.get(&key);
            if let Some(s) = served
                && !wanted.is_empty()
                && wanted.iter().all(|&n| cur.own_served[n])
                && s.rdata.is_empty()
                && s.ttl == ownership::OWNERSHIP_TTL
            {
                continue;
            }
            let want = (!wanted.is_empty()).then(|| {
                let mut want = Rrset::new(ownership::OWNERSHIP_TTL);
                self.add_records(&mut want, wanted.iter().copied());
                want
            });
            let have = served.map(|s| {
                let mut have = s.clone();
                let served_wanted = wanted.iter().copied().filter(|&n| cur.own_served[n]);
                self.add_records(&mut have, served_wanted);
                have
            });
            changes.extend(diff_rrset(&key, have.as_ref(), want.as_ref(), false));
        }
        changes
    }
}

/// What a zone serves now, as far as planning needs it. Declared RRsets are indexed by their
/// position in the desired state, and kept only where they differ from it, so that a zone
/// already as declared costs little more than its declared state.
struct CurrentZone {
    /// The served ownership RRsets, with only the records that are not wanted ones (the TTL
    /// of each is its first record's).
    ownership: BTreeMap<RrsetKey, Rrset>,
    /// Per wanted ownership record ([`WantedOwnership::listings`]): whether it is served.
    own_served: Vec<bool>,
    /// Per declared RRset: whether the ownership records list it.
    owned: Vec<bool>,
    /// Per declared RRset: whether it is served exactly as declared (same TTL, same records),
    /// then nothing of it is kept.
    as_declared: Vec<bool>,
    /// The served declared RRsets that differ from the declared ones, by position (a declared
    /// RRset in neither is not served).
    differing: FxHashMap<usize, Rrset>,
    /// Owned RRsets no longer declared (to delete), as served (`None`: already gone).
    released: BTreeMap<RrsetKey, Option<Rrset>>,
    /// Other data per owner (DNSSEC types left out): what a declared record may conflict with.
    unmanaged: FxHashMap<String, BTreeSet<Rtype>>,
}

impl CurrentZone {
    /// Declared RRset `i` as served, `want` being it as declared.
    fn served<'a>(&'a self, i: usize, want: &'a Rrset) -> Option<&'a Rrset> {
        if self.as_declared[i] {
            Some(want)
        } else {
            self.differing.get(&i)
        }
    }

    /// Declared RRset `i` as served so far, to add more records to (`ttl`: the first one's).
    fn reopen(&mut self, i: usize, desired: &Rrsets, ttl: u32) -> Rrset {
        if std::mem::take(&mut self.as_declared[i]) {
            desired.at(i).rrset.clone()
        } else {
            self.differing.remove(&i).unwrap_or_else(|| Rrset::new(ttl))
        }
    }

    /// Records a served declared RRset once all its records are read.
    fn settle(&mut self, open: Option<(usize, Rrset)>, desired: &Rrsets) {
        if let Some((i, set)) = open {
            if same_records(&set, &desired.at(i).rrset) {
                self.as_declared[i] = true;
            } else {
                self.differing.insert(i, set);
            }
        }
    }

    /// A served ownership record (its rdata canonical in `wire`): the declared RRsets it
    /// lists are owned, the others released; kept unless it is one of the wanted ones.
    fn served_ownership(
        &mut self,
        zone: &str,
        key: &RrsetKey,
        r: &CurrentRef<'_>,
        wire: &[u8],
        declared: &FxHashMap<(&str, Rtype), usize>,
        own: &WantedOwnership<'_>,
    ) {
        let wanted = own.find(&key.owner, wire);
        match wanted.and_then(|n| own.listings[n].ids.as_deref()) {
            Some(ids) => {
                for &i in ids {
                    self.owned[i as usize] = true;
                }
            }
            None => ownership::decode_each(zone, wire, |k| {
                match declared.get(&(k.owner.as_str(), k.rtype)) {
                    Some(&i) => self.owned[i] = true,
                    None => {
                        self.released.insert(k.clone(), None);
                    }
                }
            }),
        }
        let served = self
            .ownership
            .entry(key.clone())
            .or_insert_with(|| Rrset::new(r.ttl));
        match wanted {
            Some(n) => self.own_served[n] = true,
            None => served.rdata.insert_ref(wire, r.data),
        }
    }

    /// The served records neither ownership nor declared, once every ownership record is
    /// read: those of released RRsets are kept (to be deleted), the others noted as unmanaged
    /// (DNSSEC records aside).
    fn sort_out(
        &mut self,
        zone: &str,
        other: Vec<(RrsetKey, CurrentRecord)>,
        wire: &mut Vec<u8>,
    ) -> Result<(), RecordsError> {
        for (key, r) in other {
            if let Some(set) = self.released.get_mut(&key) {
                let set = set.get_or_insert_with(|| Rrset::new(r.ttl));
                let r = CurrentRef {
                    owner: &r.owner,
                    ttl: r.ttl,
                    rtype: &r.rtype,
                    data: &r.data,
                };
                add_record(zone, set, &key, &r, wire)?;
            } else if !dnssec_type(key.rtype) {
                self.unmanaged
                    .entry(key.owner)
                    .or_default()
                    .insert(key.rtype);
            }
        }
        Ok(())
    }
}

/// Whether two RRsets hold the same records (by wire form) with the same TTL.
fn same_records(a: &Rrset, b: &Rrset) -> bool {
    a.ttl == b.ttl && a.rdata.len() == b.rdata.len() && a.rdata.keys().eq(b.rdata.keys())
}

/// Reads the zone's records once: ownership records and declared RRsets are parsed as they come;
/// the rest is kept raw until ownership is known (an owned RRset no longer declared is deleted).
fn read_current(
    zone: &str,
    declared: &FxHashMap<(&str, Rtype), usize>,
    desired: &Rrsets,
    own: &WantedOwnership<'_>,
    current: &mut impl ZoneRecords,
) -> Result<CurrentZone, RecordsError> {
    let mut cur = CurrentZone {
        ownership: BTreeMap::new(),
        own_served: vec![false; own.listings.len()],
        owned: vec![false; declared.len()],
        as_declared: vec![false; declared.len()],
        differing: FxHashMap::default(),
        released: BTreeMap::new(),
        unmanaged: FxHashMap::default(),
    };
    let mut other: Vec<(RrsetKey, CurrentRecord)> = Vec::new();
    // Reused for every record: the lookup key and the canonical rdata.
    let mut key = RrsetKey {
        owner: String::new(),
        rtype: Rtype::A,
    };
    let mut wire = Vec::new();
    let mut open: Option<(usize, Rrset)> = None;
    while let Some(r) = current.next_record() {
        let r = r?;
        lower_fqdn_into(r.owner, &mut key.owner);
        let Some(rtype) = parse_rtype(r.rtype) else {
            return Err(zone_data(zone, &key.owner, &r, "unknown type".into()));
        };
        key.rtype = rtype;
        if rtype == Rtype::TXT && is_ownership_owner(&key.owner, zone) {
            canonical(zone, &key, &r, &mut wire)?;
            cur.served_ownership(zone, &key, &r, &wire, declared, own);
        } else if let Some(&i) = declared.get(&(key.owner.as_str(), key.rtype)) {
            // Knot lists an RRset's records together: each is compared with the declared one
            // once complete (`open`), and kept only if it differs.
            if open.as_ref().is_some_and(|(j, _)| *j != i) {
                cur.settle(open.take(), desired);
            }
            let (_, set) = open.get_or_insert_with(|| (i, cur.reopen(i, desired, r.ttl)));
            add_record(zone, set, &key, &r, &mut wire)?;
        } else {
            other.push((key.clone(), r.to_owned_record()));
        }
    }
    cur.settle(open, desired);
    cur.sort_out(zone, other, &mut wire)?;
    Ok(cur)
}

/// Adds a served record to its RRset.
fn add_record(
    zone: &str,
    set: &mut Rrset,
    key: &RrsetKey,
    r: &CurrentRef<'_>,
    wire: &mut Vec<u8>,
) -> Result<(), RecordsError> {
    let parsed = canonical(zone, key, r, wire)?;
    set.rdata
        .insert_ref(wire, parsed.as_deref().unwrap_or(r.data));
    Ok(())
}

/// Puts the canonical wire rdata of a served record into `wire`; returns its presentation text
/// when the full parser had to rewrite it.
fn canonical(
    zone: &str,
    key: &RrsetKey,
    r: &CurrentRef<'_>,
    wire: &mut Vec<u8>,
) -> Result<Option<String>, RecordsError> {
    if fast_canonical_rdata_into(key.rtype, r.data, wire) {
        return Ok(None);
    }
    let p = parse_knot_rr(&key.owner, r.ttl, r.rtype, r.data)
        .map_err(|e| zone_data(zone, &key.owner, r, e))?;
    *wire = p.wire;
    Ok(Some(p.data))
}

fn zone_data(zone: &str, owner: &str, r: &CurrentRef<'_>, e: String) -> RecordsError {
    RecordsError::ZoneData {
        zone: zone.to_owned(),
        message: format!("cannot parse {owner} {} {}: {e}", r.rtype, r.data),
    }
}

/// Conflicts with data the tool does not own (Knot would refuse them at commit): a declared
/// CNAME beside other data, or declared data beside a CNAME.
fn conflicts(desired: &DesiredZone, unmanaged: &FxHashMap<String, BTreeSet<Rtype>>) -> Vec<String> {
    // Looked up from the (usually few) owners of unmanaged data; reported in key order.
    let mut found: Vec<(&RrsetKey, String)> = Vec::new();
    for (owner, types) in unmanaged {
        for (key, d) in desired.rrsets.at_owner(owner) {
            let clash = if key.rtype == Rtype::CNAME {
                Some(
                    types
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            } else if types.contains(&Rtype::CNAME) {
                Some("CNAME".to_owned())
            } else {
                None
            };
            if let Some(other) = clash {
                found.push((
                    key,
                    format!(
                        "{} ({}): {} {} would sit beside {other} records the tool does not own",
                        desired.sources_text(d),
                        key.owner,
                        key.owner,
                        key.rtype
                    ),
                ));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(b.0));
    found.into_iter().map(|(_, message)| message).collect()
}

/// `owner` lowercased, with a trailing dot, into `out`.
fn lower_fqdn_into(owner: &str, out: &mut String) {
    out.clear();
    out.push_str(owner);
    out.make_ascii_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
}

fn parse_rtype(text: &str) -> Option<Rtype> {
    Some(match text {
        "A" => Rtype::A,
        "AAAA" => Rtype::AAAA,
        "PTR" => Rtype::PTR,
        "TXT" => Rtype::TXT,
        "CNAME" => Rtype::CNAME,
        "NS" => Rtype::NS,
        "MX" => Rtype::MX,
        "SOA" => Rtype::SOA,
        "RRSIG" => Rtype::RRSIG,
        "NSEC" => Rtype::NSEC,
        other => return other.parse().ok(),
    })
}

fn diff_rrset(
    key: &RrsetKey,
    have: Option<&Rrset>,
    want: Option<&Rrset>,
    unowned: bool,
) -> Option<RrsetChange> {
    if let (Some(h), Some(w)) = (have, want)
        && same_records(h, w)
    {
        return None;
    }
    let mut change = RrsetChange {
        owner: key.owner.clone(),
        rtype: key.rtype.to_string(),
        action: Action::Update,
        adopted: false,
        old_ttl: have.map(|h| h.ttl),
        new_ttl: want.map(|w| w.ttl),
        remove: Vec::new(),
        add: Vec::new(),
        keep: Vec::new(),
    };
    match (have, want) {
        (None, None) => return None,
        (None, Some(w)) => {
            change.action = Action::Create;
            change.add = w.rdata.values().map(str::to_owned).collect();
        }
        (Some(h), None) => {
            change.action = Action::Delete;
            change.remove = h.rdata.values().map(str::to_owned).collect();
        }
        (Some(h), Some(w)) => {
            for (wire, text) in h.rdata.iter() {
                if w.rdata.contains_key(wire) {
                    change.keep.push(text.to_owned());
                } else {
                    change.remove.push(text.to_owned());
                }
            }
            for (wire, text) in w.rdata.iter() {
                if !h.rdata.contains_key(wire) {
                    change.add.push(text.to_owned());
                }
            }
            if h.ttl == w.ttl && change.remove.is_empty() && change.add.is_empty() {
                return None;
            }
            change.adopted = unowned;
        }
    }
    Some(change)
}

/// Renders `plan` as a readable diff (`+` added, `-` removed, `~` TTL change), with ANSI colour
/// when `color` is set.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let p = Palette::new(color);
    // Sized once: at 100,000 records the text is tens of MB, and growing it by doubling held
    // twice that for a moment, while Knot filled the transactions.
    let color_len = p.green.len() + p.reset.len();
    let mut out = String::with_capacity(changes_text_size(plan, color_len) + 4096);
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if let Some(s) = &plan.safety_limit {
        for z in &s.exceeded {
            let verdict = if s.force {
                "over the safety limit; --force is given, so apply would go ahead"
            } else {
                "apply would refuse this plan and change nothing (re-run with --force if intended)"
            };
            let _ = writeln!(
                out,
                "{}safety limit: zone {} deletes or changes {} of {} managed records \
                 ({:.0}%, limit {:.0}%): {verdict}{}",
                p.red, z.zone, z.affected, z.managed, z.percent, s.max_percent, p.reset
            );
        }
    }
    for z in &plan.zones {
        render_zone(&mut out, z, &p);
    }
    out
}

/// The ANSI colours of a rendered plan (all empty without colour).
struct Palette {
    red: &'static str,
    green: &'static str,
    yellow: &'static str,
    bold: &'static str,
    reset: &'static str,
}

impl Palette {
    fn new(color: bool) -> Self {
        if color {
            Palette {
                red: "\x1b[31m",
                green: "\x1b[32m",
                yellow: "\x1b[33m",
                bold: "\x1b[1m",
                reset: "\x1b[0m",
            }
        } else {
            Palette {
                red: "",
                green: "",
                yellow: "",
                bold: "",
                reset: "",
            }
        }
    }
}

/// One zone of a rendered plan: its summary line, its changes, ownership and conflicts.
fn render_zone(out: &mut String, z: &ZonePlan, p: &Palette) {
    let Palette {
        red, bold, reset, ..
    } = p;
    let (mut add, mut del, mut upd) = (0, 0, 0);
    for c in &z.changes {
        match c.action {
            Action::Create => add += 1,
            Action::Delete => del += 1,
            Action::Update => upd += 1,
        }
    }
    let _ = writeln!(
        out,
        "{bold}zone {}{reset}: {}",
        z.zone,
        if z.is_empty() {
            "no changes".to_owned()
        } else {
            format!(
                "{add} RRset(s) to create, {upd} to update, {del} to delete \
                 ({} of {} managed records deleted or changed)",
                z.affected_records, z.managed_records
            )
        }
    );
    for c in &z.changes {
        render_change(out, c, p);
    }
    if !z.ownership_added.is_empty() || !z.ownership_removed.is_empty() {
        let _ = writeln!(
            out,
            "  ownership: {} RRset(s) taken, {} released",
            z.ownership_added.len(),
            z.ownership_removed.len()
        );
    }
    for c in &z.conflicts {
        let _ = writeln!(out, "  {red}conflict: {c}{reset}");
    }
}

/// One RRset change: a line per record removed, kept with a new TTL, or added.
fn render_change(out: &mut String, c: &RrsetChange, p: &Palette) {
    let Palette {
        red,
        green,
        yellow,
        reset,
        ..
    } = p;
    let whole = c.replaces_whole();
    if c.adopted {
        let _ = writeln!(
            out,
            "  {yellow}! {} {} exists but is not owned: taking it over{reset}",
            c.owner, c.rtype
        );
    }
    let old_ttl = c.old_ttl.unwrap_or(0);
    let new_ttl = c.new_ttl.unwrap_or(0);
    for d in &c.remove {
        let _ = writeln!(out, "  {red}- {} {old_ttl} {} {d}{reset}", c.owner, c.rtype);
    }
    for d in &c.keep {
        if whole {
            let _ = writeln!(
                out,
                "  {yellow}~ {} {} {d}  (TTL {old_ttl} -> {new_ttl}){reset}",
                c.owner, c.rtype
            );
        }
    }
    for d in &c.add {
        let _ = writeln!(
            out,
            "  {green}+ {} {new_ttl} {} {d}{reset}",
            c.owner, c.rtype
        );
    }
}

/// About the size of [`render_plan`]'s lines for `plan`'s changes (a little over): per line
/// the owner, type and rdata, up to 18 more with the TTL, 24 more for a new TTL.
fn changes_text_size(plan: &Plan, color_len: usize) -> usize {
    (plan.zones.iter().flat_map(|z| &z.changes))
        .map(|c| {
            let line = c.owner.len() + c.rtype.len() + color_len + 18;
            let datas = c.remove.iter().chain(&c.add).map(|d| line + d.len());
            let kept = c.keep.iter().map(|d| line + d.len() + 24);
            datas.chain(kept).sum::<usize>() + (line + 40) * usize::from(c.adopted)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::records::validate::validate;
    use crate::records::values::{SourceFile, parse_values};

    fn desired(records: &str) -> DesiredZone {
        let text = format!("zones:\n  - name: home.arpa\nstaticRecords:\n{records}");
        let v = parse_values(vec![SourceFile {
            path: PathBuf::from("v.yaml"),
            text,
        }])
        .unwrap();
        validate(&v).unwrap().zones.remove(0)
    }

    fn rec(owner: &str, ttl: u32, rtype: &str, data: &str) -> CurrentRecord {
        CurrentRecord {
            owner: owner.into(),
            ttl,
            rtype: rtype.into(),
            data: data.into(),
        }
    }

    /// What the zone holds after applying `p` to `before` (a tiny model of Knot).
    fn applied(before: &[CurrentRecord], p: &ZonePlan) -> Vec<CurrentRecord> {
        let mut out: Vec<CurrentRecord> = before.to_vec();
        for c in p.changes.iter().chain(&p.ownership_changes) {
            let same =
                |r: &CurrentRecord| r.owner.eq_ignore_ascii_case(&c.owner) && r.rtype == c.rtype;
            if c.replaces_whole() {
                out.retain(|r| !same(r));
                if let Some(t) = c.new_ttl {
                    for d in c.keep.iter().chain(&c.add) {
                        out.push(rec(&c.owner, t, &c.rtype, d));
                    }
                }
            } else {
                out.retain(|r| !(same(r) && c.remove.contains(&r.data)));
                for d in &c.add {
                    out.push(rec(&c.owner, c.new_ttl.unwrap(), &c.rtype, d));
                }
            }
        }
        out
    }

    fn base() -> Vec<CurrentRecord> {
        vec![
            rec(
                "home.arpa.",
                3600,
                "SOA",
                "ns1.home.arpa. hostmaster.home.arpa. 1 3600 900 604800 300",
            ),
            rec("home.arpa.", 3600, "NS", "ns1.home.arpa."),
            rec("ns1.home.arpa.", 3600, "A", "192.0.2.1"),
            rec("laptop.home.arpa.", 300, "A", "192.168.1.50"),
        ]
    }

    #[test]
    fn create_then_nothing_to_do() {
        let d =
            desired("  - \"router A 192.168.1.1\"\n  - \"@ MX 10 MAIL\"\n  - 't TXT \"a b\"'\n");
        let p = plan_zone(&d, base()).unwrap();
        assert_eq!(p.changes.len(), 3);
        assert!(p.changes.iter().all(|c| c.action == Action::Create));
        assert_eq!(p.managed_records, 0);
        let after = applied(&base(), &p);
        let again = plan_zone(&d, after).unwrap();
        assert!(again.is_empty(), "{again:#?}");
        assert_eq!(again.managed_records, 3);
    }

    #[test]
    fn prune_ttl_change_and_unowned_untouched() {
        let d1 = desired("  - \"router A 192.168.1.1\"\n  - \"old A 192.168.1.9\"\n");
        let z1 = applied(&base(), &plan_zone(&d1, base()).unwrap());
        let d2 = desired("  - \"router 60 A 192.168.1.1\"\n");
        let p = plan_zone(&d2, z1.clone()).unwrap();
        let by_owner = |o: &str| p.changes.iter().find(|c| c.owner == o).unwrap();
        let old = by_owner("old.home.arpa.");
        assert_eq!(old.action, Action::Delete);
        let router = by_owner("router.home.arpa.");
        assert_eq!((router.old_ttl, router.new_ttl), (Some(3600), Some(60)));
        assert!(router.replaces_whole());
        assert_eq!(p.changes.len(), 2, "laptop (unowned) is not touched");
        assert_eq!(p.ownership_removed, ["old.home.arpa. A"]);
        assert_eq!((p.managed_records, p.affected_records), (2, 2));
        let z2 = applied(&z1, &p);
        assert!(z2.iter().any(|r| r.owner == "laptop.home.arpa."));
        assert!(plan_zone(&d2, z2).unwrap().is_empty());
    }

    #[test]
    fn served_ownership_records_unlike_the_wanted_ones_are_rewritten() {
        let d = desired("  - \"router A 192.168.1.1\"\n  - \"nas A 192.168.1.2\"\n");
        let z = applied(&base(), &plan_zone(&d, base()).unwrap());
        let is_own = |r: &CurrentRecord| r.owner.contains("._dnsdhcp-owned.");
        let own: Vec<CurrentRecord> = z.iter().filter(|r| is_own(r)).cloned().collect();
        assert!(own.len() == 2 && own[0].owner != own[1].owner, "{own:?}");
        assert!(plan_zone(&d, z.clone()).unwrap().is_empty());
        let other_shard = |owner: &str| {
            let shard = if owner.starts_with('0') { "1" } else { "0" };
            format!("{shard}{}", &owner[1..])
        };
        let variants: Vec<(&str, Vec<CurrentRecord>)> = vec![
            (
                "another TTL",
                z.iter()
                    .map(|r| {
                        if is_own(r) {
                            rec(&r.owner, 60, &r.rtype, &r.data)
                        } else {
                            r.clone()
                        }
                    })
                    .collect(),
            ),
            (
                "a record more",
                z.iter()
                    .cloned()
                    .chain([rec(&own[0].owner, 3600, "TXT", "\"gone\" \"A\"")])
                    .collect(),
            ),
            (
                "in another shard",
                z.iter()
                    .map(|r| {
                        if is_own(r) {
                            rec(&other_shard(&r.owner), r.ttl, &r.rtype, &r.data)
                        } else {
                            r.clone()
                        }
                    })
                    .collect(),
            ),
            (
                "missing",
                z.iter().filter(|r| !is_own(r)).cloned().collect(),
            ),
            (
                "copied into another shard",
                z.iter()
                    .cloned()
                    .chain([rec(&own[1].owner, 3600, "TXT", &own[0].data)])
                    .collect(),
            ),
        ];
        for (what, served) in variants {
            let p = plan_zone(&d, served.clone()).unwrap();
            assert!(!p.ownership_changes.is_empty(), "{what}: {p:#?}");
            let after = applied(&served, &p);
            let mut own_after: Vec<CurrentRecord> =
                after.iter().filter(|r| is_own(r)).cloned().collect();
            own_after.sort_by(|a, b| (&a.owner, &a.data).cmp(&(&b.owner, &b.data)));
            let mut want = own.clone();
            want.sort_by(|a, b| (&a.owner, &a.data).cmp(&(&b.owner, &b.data)));
            assert_eq!(own_after, want, "{what}");
            assert!(plan_zone(&d, after).unwrap().is_empty(), "{what}");
        }
    }

    #[test]
    fn an_rrset_listed_in_two_places_is_compared_whole() {
        let d = desired(
            "  - \"router A 192.168.1.1\"\n  - \"router A 192.168.1.2\"\n  - \"nas A 192.168.1.3\"\n",
        );
        let z = applied(&base(), &plan_zone(&d, base()).unwrap());
        let mut served: Vec<CurrentRecord> = z.iter().filter(|r| r.rtype != "A").cloned().collect();
        served.extend([
            rec("router.home.arpa.", 3600, "A", "192.168.1.1"),
            rec("router.home.arpa.", 3600, "A", "192.168.1.2"),
            rec("nas.home.arpa.", 3600, "A", "192.168.1.3"),
            rec("router.home.arpa.", 3600, "A", "192.168.1.9"),
        ]);
        let p = plan_zone(&d, served).unwrap();
        assert_eq!(p.changes.len(), 1, "{p:#?}");
        assert_eq!(p.changes[0].owner, "router.home.arpa.");
        assert_eq!(p.changes[0].remove, ["192.168.1.9"]);
        assert_eq!(p.changes[0].keep, ["192.168.1.1", "192.168.1.2"]);
    }

    #[test]
    fn adoption_and_conflicts() {
        let d = desired("  - \"laptop A 192.168.1.60\"\n");
        let p = plan_zone(&d, base()).unwrap();
        assert!(p.changes[0].adopted);
        assert_eq!(p.changes[0].remove, ["192.168.1.50"]);
        assert_eq!(
            p.affected_records, 0,
            "unowned records are not counted as managed"
        );

        let d = desired("  - \"laptop CNAME router\"\n");
        let p = plan_zone(&d, base()).unwrap();
        assert_eq!(p.conflicts.len(), 1, "{p:#?}");
        assert!(p.conflicts[0].contains("v.yaml:4:5"), "{}", p.conflicts[0]);
        let plan = Plan {
            zones: vec![p],
            ..Plan::default()
        };
        assert!(matches!(
            check_conflicts(&plan),
            Err(RecordsError::Conflict { .. })
        ));
    }

    #[test]
    fn safety_limit_counts_managed_records() {
        let mut many = String::new();
        for i in 0..10 {
            many.push_str(&format!("  - \"h{i} A 192.168.1.{i}\"\n"));
        }
        let z = applied(&base(), &plan_zone(&desired(&many), base()).unwrap());
        let mut fewer = String::new();
        for i in 0..6 {
            fewer.push_str(&format!("  - \"h{i} A 192.168.1.{i}\"\n"));
        }
        let limit = SafetyLimit::default();
        let p3 = plan_zone(&desired(&fewer), z.clone()).unwrap();
        assert_eq!((p3.managed_records, p3.affected_records), (10, 4));
        let mut plan = Plan {
            zones: vec![p3],
            ..Plan::default()
        };
        let e = limit.check(&plan).unwrap_err().to_string();
        assert!(
            e.contains("4 of 10 managed records (40%, limit 30%)"),
            "{e}"
        );
        plan.assess(&limit, false);
        let text = render_plan(&plan, false);
        assert!(
            text.contains("safety limit: zone home.arpa. deletes or changes 4 of 10 managed records (40%, limit 30%): apply would refuse"),
            "{text}"
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["safety_limit"]["apply_refused"], true);
        assert_eq!(json["safety_limit"]["exceeded"][0]["affected"], 4);
        plan.assess(&limit, true);
        assert!(render_plan(&plan, false).contains("--force is given, so apply would go ahead"));
        assert_eq!(
            serde_json::to_value(&plan).unwrap()["safety_limit"]["apply_refused"],
            false
        );
        plan.assess(&SafetyLimit::percent(40.0).unwrap(), false);
        assert!(!plan.safety_limit.as_ref().unwrap().apply_refused);
        for bad in [f64::NAN, -5.0, 100.5, f64::INFINITY] {
            assert!(SafetyLimit::percent(bad).is_none(), "{bad}");
        }
        fewer.push_str("  - \"h6 A 192.168.1.6\"\n");
        let p = plan_zone(&desired(&fewer), z).unwrap();
        assert_eq!(p.affected_records, 3);
        limit
            .check(&Plan {
                zones: vec![p],
                ..Plan::default()
            })
            .unwrap();
    }

    #[test]
    fn render_and_json() {
        let d = desired("  - \"router A 192.168.1.1\"\n");
        let plan = Plan {
            zones: vec![plan_zone(&d, base()).unwrap()],
            ..Plan::default()
        };
        let text = render_plan(&plan, false);
        assert!(
            text.contains("+ router.home.arpa. 3600 A 192.168.1.1"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
        assert!(render_plan(&plan, true).contains("\x1b[32m+"));
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["zones"][0]["changes"][0]["type"], "A");
        assert_eq!(json["zones"][0]["changes"][0]["action"], "create");
    }

    #[test]
    fn the_text_is_sized_for_every_kind_of_change_line() {
        let d1 = desired("  - \"router A 192.168.1.1\"\n  - \"old A 192.168.1.9\"\n");
        let z1 = applied(&base(), &plan_zone(&d1, base()).unwrap());
        let d2 = desired(
            "  - \"router 60 A 192.168.1.1\"\n  - \"router 60 A 192.168.1.2\"\n  - \"laptop A 192.168.1.60\"\n",
        );
        let plan = Plan {
            zones: vec![plan_zone(&d2, z1).unwrap()],
            ..Plan::default()
        };
        let z = &plan.zones[0];
        assert!(z.changes.iter().any(|c| c.adopted && !c.remove.is_empty()));
        assert!(
            z.changes
                .iter()
                .any(|c| c.replaces_whole() && !c.keep.is_empty())
        );
        assert!(z.changes.iter().any(|c| c.action == Action::Delete));
        for color in [false, true] {
            let text = render_plan(&plan, color);
            let change_lines: usize = text
                .lines()
                .filter(|l| l.contains(".home.arpa. "))
                .map(|l| l.len() + 1)
                .sum();
            let color_len = if color { 9 } else { 0 };
            assert!(
                change_lines <= changes_text_size(&plan, color_len),
                "{text}"
            );
        }
    }
}
