//! Validation: turns merged values into the desired state, or lists every problem with its
//! file, line and column. Nothing here talks to Knot except [`check_zones_exist`], which takes
//! the server's zone list as plain input.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use domain::base::iana::Rtype;

use super::error::{Diagnostic, RecordsError};
use super::model::{Desired, DesiredRrset, DesiredZone, Rrset, RrsetKey, Rrsets, Sources, pack};
use super::order::leading;
use super::ownership::OWNERSHIP_LABEL;
use super::ptr::{is_reverse_zone, most_specific_reverse_zone};
use super::rr::{
    DName, MAX_TTL, ParsedRr, dnssec_type, forbidden_type, fqdn, fqdn_into, in_zone,
    parse_abs_name, parse_rr,
};
use super::values::{DEFAULT_TTL, Pos, RecordEntry, Values};

struct ZoneInfo {
    name: DName,
    default_ttl: u32,
    reserved: DName,
}

struct Item {
    /// Absolute owner, lowercase.
    owner: DName,
    rtype: Rtype,
    ttl: u32,
    /// The rdata packed for the RRset ([`super::model::pack`]), until the RRset takes it.
    packed: Option<Box<[u8]>>,
    zone: usize,
    pos: Pos,
    /// The derived PTR, when the record gets one: the reverse zone (index in `zones`) and
    /// the PTR's owner.
    ptr: Option<(usize, DName)>,
}

/// Which parsed records make one zone's RRsets (indexes into the items, in entry order): its
/// own records, and the address records whose PTRs it holds.
#[derive(Default)]
struct ZoneItems {
    /// The zone's own records, with their packed rdata.
    own: Vec<(u32, Box<[u8]>)>,
    derived: Vec<u32>,
}

/// One zone's RRsets, sorted, with its CNAME RRsets' first positions and the TTL conflicts
/// found (by item index, for the order of messages).
struct Grouped {
    rrsets: Rrsets,
    cnames: BTreeMap<RrsetKey, Pos>,
    diags: Vec<(u32, Diagnostic)>,
}

/// Validates `values` into the desired state. Every problem is reported at once.
pub fn validate(values: &Values) -> Result<Desired, RecordsError> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let zones = check_zones(values, &mut diags);
    if zones.is_empty() {
        if let Some(first) = values.records.first() {
            diags.push(values.diagnostic(
                first.pos(),
                "static records are declared but `zones` is empty",
            ));
        }
        return finish(diags, Desired::default());
    }
    let zone_names: Vec<DName> = zones.iter().map(|z| z.name.clone()).collect();
    let (items, notes) = parse_all(values, &zones, &zone_names, &mut diags);
    let (desired, cnames) = group(values, &zones, items, notes, &mut diags);
    check_cnames(values, &desired, cnames, &mut diags);
    finish(diags, desired)
}

/// The `zones` list: each zone's name, default TTL and ownership owner; a diagnostic for
/// each entry that is not a usable zone.
fn check_zones(values: &Values, diags: &mut Vec<Diagnostic>) -> Vec<ZoneInfo> {
    let mut zones: Vec<ZoneInfo> = Vec::new();
    for z in &values.zones {
        let name = match parse_abs_name(&z.name) {
            Ok(n) => n,
            Err(e) => {
                diags.push(values.diagnostic(z.pos, e));
                continue;
            }
        };
        if zones.iter().any(|o| o.name == name) {
            diags.push(values.diagnostic(z.pos, format!("zone {} is listed twice", fqdn(&name))));
            continue;
        }
        let default_ttl = match z.default_ttl {
            None => DEFAULT_TTL,
            Some(t) if (0..=i64::from(MAX_TTL)).contains(&t) => t as u32,
            Some(t) => {
                diags.push(values.diagnostic(
                    z.pos,
                    format!("defaultTtl {t} is out of range (0..={MAX_TTL})"),
                ));
                DEFAULT_TTL
            }
        };
        if fqdn(&name) == "." {
            diags.push(values.diagnostic(
                z.pos,
                format!(
                    "zone {:?} is the DNS root; name a zone below it (e.g. home.arpa)",
                    z.name
                ),
            ));
            continue;
        }
        let reserved = match parse_abs_name(&format!("{OWNERSHIP_LABEL}.{}", fqdn(&name))) {
            Ok(r) => r,
            Err(e) => {
                diags.push(values.diagnostic(
                    z.pos,
                    format!(
                        "zone {}: its ownership records would not fit ({e}); use a shorter zone name",
                        fqdn(&name)
                    ),
                ));
                continue;
            }
        };
        zones.push(ZoneInfo {
            name,
            default_ttl,
            reserved,
        });
    }
    zones
}

/// Each entry on its own: parsed on every CPU, the problems kept in entry order. Returns the
/// records that passed and the notes (PTRs not derived).
fn parse_all(
    values: &Values,
    zones: &[ZoneInfo],
    zone_names: &[DName],
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Item>, Vec<String>) {
    let reverse_zones: Vec<DName> = zone_names
        .iter()
        .filter(|z| is_reverse_zone(z))
        .cloned()
        .collect();
    let ctx = ParseContext {
        values,
        zones,
        zone_names,
        reverse_zones: &reverse_zones,
    };
    let parts = super::par::map(super::par::chunks(&values.records, 4096), |entries| {
        parse_entries(entries, &ctx)
    });
    let mut items: Vec<Item> = Vec::with_capacity(values.records.len());
    let mut notes = Vec::new();
    for (part, part_diags, part_notes) in parts {
        items.extend(part);
        diags.extend(part_diags);
        notes.extend(part_notes);
    }
    (items, notes)
}

/// The parsed records into RRsets: every zone on its own thread (its own records, then the
/// PTRs derived into it), sorted there too; one TTL per RRset. Returns the desired state and
/// every CNAME RRset's zone, key and first position.
fn group(
    values: &Values,
    zones: &[ZoneInfo],
    mut items: Vec<Item>,
    notes: Vec<String>,
    diags: &mut Vec<Diagnostic>,
) -> (Desired, Vec<(usize, RrsetKey, Pos)>) {
    let mut by_zone: Vec<ZoneItems> = zones.iter().map(|_| ZoneItems::default()).collect();
    for (i, it) in items.iter_mut().enumerate() {
        let i = u32::try_from(i).expect("fewer than 2^32 records");
        let packed = it.packed.take().expect("packed when parsed");
        by_zone[it.zone].own.push((i, packed));
        if let Some((rz, _)) = &it.ptr {
            by_zone[*rz].derived.push(i);
        }
    }
    let grouped = super::par::map(by_zone, |z| group_zone(z, &items, values));
    drop(items);
    let files: Arc<[PathBuf]> = values.paths().into();
    let mut ttl_diags = Vec::new();
    let mut cnames = Vec::new();
    let mut desired = Desired {
        zones: Vec::with_capacity(zones.len()),
        notes,
    };
    for (zi, (z, g)) in zones.iter().zip(grouped).enumerate() {
        ttl_diags.extend(g.diags);
        cnames.extend(g.cnames.into_iter().map(|(key, pos)| (zi, key, pos)));
        desired.zones.push(DesiredZone {
            name: z.name.clone(),
            rrsets: g.rrsets,
            files: files.clone(),
        });
    }
    ttl_diags.sort_by_key(|(i, _)| *i);
    diags.extend(ttl_diags.into_iter().map(|(_, d)| d));
    (desired, cnames)
}

/// CNAME and other data: never at the same owner; at most one CNAME record.
fn check_cnames(
    values: &Values,
    desired: &Desired,
    cnames: Vec<(usize, RrsetKey, Pos)>,
    diags: &mut Vec<Diagnostic>,
) {
    for (zi, key, pos) in cnames {
        let zone = &desired.zones[zi];
        let others: Vec<String> = zone
            .rrsets
            .at_owner(&key.owner)
            .map(|(k, _)| k.rtype)
            .filter(|t| *t != Rtype::CNAME && !dnssec_type(*t))
            .map(|t| t.to_string())
            .collect();
        let owner = &key.owner;
        if !others.is_empty() {
            diags.push(values.diagnostic(
                pos,
                format!(
                    "CNAME at {owner} beside other data ({}); a CNAME must be alone",
                    others.join(", ")
                ),
            ));
        }
        if zone.rrsets[&key].rrset.rdata.len() > 1 {
            diags.push(values.diagnostic(pos, format!("{owner} has more than one CNAME record")));
        }
    }
}

/// Parses and checks `entries` one by one: the records that pass, and a diagnostic for each
/// entry that does not.
fn parse_entries(
    entries: &[RecordEntry],
    ctx: &ParseContext,
) -> (Vec<Item>, Vec<Diagnostic>, Vec<String>) {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut items: Vec<Item> = Vec::with_capacity(entries.len());
    for entry in entries {
        let pos = entry.pos();
        let parsed = entry_text(entry, ctx).and_then(|(zone_idx, text, explicit_ptr)| {
            let zone = &ctx.zones[zone_idx];
            let rr = parse_rr(&zone.name, zone.default_ttl, &text)
                .map_err(|e| format!("invalid record `{}`: {e}", text.trim()))?;
            check_record(&rr, zone, explicit_ptr)?;
            Ok((zone_idx, rr, explicit_ptr))
        });
        let (zone_idx, rr, explicit_ptr) = match parsed {
            Ok(p) => p,
            Err(m) => {
                diags.push(ctx.values.diagnostic(pos, m));
                continue;
            }
        };
        let ptr = derived_ptr(&rr, explicit_ptr, ctx).unwrap_or_else(|addr| {
            notes.push(format!(
                "{}: no configured reverse zone contains {addr}; no PTR for {}",
                ctx.values.location(pos),
                fqdn(&rr.owner)
            ));
            None
        });
        items.push(Item {
            packed: Some(pack(&rr.wire, &rr.data)),
            owner: rr.owner,
            rtype: rr.rtype,
            ttl: rr.ttl,
            zone: zone_idx,
            pos,
            ptr,
        });
    }
    (items, diags, notes)
}

/// Which zone an entry belongs to, the record text to parse and its `ptr` setting. A one-line
/// entry is parsed as written (borrowed); a structured one is written out as a line.
fn entry_text<'e>(
    entry: &'e RecordEntry,
    ctx: &ParseContext,
) -> Result<(usize, Cow<'e, str>, Option<bool>), String> {
    let zone_names = ctx.zone_names;
    match entry {
        RecordEntry::Line { text, zone, .. } => {
            let owner = text.split_whitespace().next().unwrap_or("");
            let zi = if let Some(z) = zone {
                parse_abs_name(z)
                    .ok()
                    .and_then(|zn| zone_names.iter().position(|n| *n == zn))
                    .ok_or_else(|| format!("zone {z} is not a configured zone"))?
            } else if owner.ends_with('.') {
                owner_zone(owner, zone_names)
                    .ok_or_else(|| format!("owner {owner} is in none of the configured zones"))?
            } else {
                0
            };
            Ok((zi, Cow::Borrowed(text.as_str()), None))
        }
        RecordEntry::Structured {
            name,
            zone,
            rtype,
            ttl,
            data,
            ptr,
            ..
        } => {
            let zi = match zone {
                Some(z) => {
                    let zn = parse_abs_name(z)?;
                    zone_names
                        .iter()
                        .position(|n| *n == zn)
                        .ok_or_else(|| format!("zone {} is not listed in `zones`", fqdn(&zn)))?
                }
                None if name.trim().ends_with('.') => owner_zone(name, zone_names)
                    .ok_or_else(|| format!("owner {name} is in none of the configured zones"))?,
                None => 0,
            };
            if name.trim().is_empty() || name.split_whitespace().count() != 1 {
                return Err(format!("invalid owner name `{name}`"));
            }
            if rtype.split_whitespace().count() != 1 {
                return Err(format!("invalid type `{rtype}`"));
            }
            let ttl = match ttl {
                None => ctx.zones[zi].default_ttl,
                Some(t) if (0..=i64::from(MAX_TTL)).contains(t) => *t as u32,
                Some(t) => return Err(format!("TTL {t} is out of range (0..={MAX_TTL})")),
            };
            let text = format!("{} {ttl} IN {} {}", name.trim(), rtype.trim(), data);
            Ok((zi, Cow::Owned(text), *ptr))
        }
    }
}

/// What a parsed record must satisfy to be declared in `zone`.
fn check_record(rr: &ParsedRr, zone: &ZoneInfo, explicit_ptr: Option<bool>) -> Result<(), String> {
    if rr.ttl > MAX_TTL {
        return Err(format!("TTL {} is out of range (0..={MAX_TTL})", rr.ttl));
    }
    if forbidden_type(rr.rtype) {
        return Err(format!(
            "type {} cannot be a static record (Knot manages it)",
            rr.rtype
        ));
    }
    if !rr.owner.ends_with(&zone.name) {
        return Err(format!(
            "owner {} is not inside zone {}",
            fqdn(&rr.owner),
            fqdn(&zone.name)
        ));
    }
    if rr.owner.ends_with(&zone.reserved) {
        return Err(format!(
            "owner {} is reserved for the tool's ownership records",
            fqdn(&rr.owner)
        ));
    }
    let is_addr = rr.rtype == Rtype::A || rr.rtype == Rtype::AAAA;
    if explicit_ptr.is_some() && !is_addr {
        return Err(format!(
            "`ptr` applies to A and AAAA records only, not {}",
            rr.rtype
        ));
    }
    if rr.rtype == Rtype::CNAME && rr.owner == zone.name {
        return Err("a CNAME cannot be at the zone apex".into());
    }
    Ok(())
}

/// The PTR an address record gets: its reverse zone (index in `zones`) and owner; `Ok(None)`
/// for other records or with `ptr: false`; `Err(address)` when no configured reverse zone
/// contains the address.
fn derived_ptr(
    rr: &ParsedRr,
    explicit_ptr: Option<bool>,
    ctx: &ParseContext,
) -> Result<Option<(usize, DName)>, IpAddr> {
    let is_addr = rr.rtype == Rtype::A || rr.rtype == Rtype::AAAA;
    let Some(addr) = (is_addr && explicit_ptr.unwrap_or(true))
        .then(|| rr_address(&rr.wire))
        .flatten()
    else {
        return Ok(None);
    };
    let (rzone, name) = most_specific_reverse_zone(addr, ctx.reverse_zones).ok_or(addr)?;
    let rz = ctx
        .zone_names
        .iter()
        .position(|z| z == rzone)
        .expect("zone from list");
    Ok(Some((rz, name)))
}

/// What [`parse_entries`] reads besides the entries.
#[derive(Clone, Copy)]
struct ParseContext<'a> {
    values: &'a Values,
    zones: &'a [ZoneInfo],
    zone_names: &'a [DName],
    /// The reverse zones among `zones`.
    reverse_zones: &'a [DName],
}

/// One zone's RRsets from the `items` `z` names: its own records first, then the PTRs derived
/// into it (explicit PTRs keep their TTL, derived ones take the lowest TTL of their
/// addresses).
///
/// Built by sorting rather than hashing: every record's key is made once, the keys are sorted
/// (own records before derived PTRs, each in entry order, among equal keys) and each run of
/// equal keys becomes one RRset, already in the order [`Rrsets`] keeps.
fn group_zone(z: ZoneItems, items: &[Item], values: &Values) -> Grouped {
    let own = z.own.len();
    let mut keys: Vec<RrsetKey> = Vec::with_capacity(own + z.derived.len());
    let mut packed: Vec<Option<Box<[u8]>>> = Vec::with_capacity(own);
    let mut from: Vec<u32> = Vec::with_capacity(own + z.derived.len());
    for (i, p) in z.own {
        let it = &items[i as usize];
        keys.push(RrsetKey::new(&it.owner, it.rtype));
        packed.push(Some(p));
        from.push(i);
    }
    for i in z.derived {
        let it = &items[i as usize];
        let Some((_, name)) = &it.ptr else { continue };
        keys.push(RrsetKey::new(name, Rtype::PTR));
        from.push(i);
    }
    let order = sorted_order(&keys);

    let mut rrsets: Vec<(RrsetKey, DesiredRrset)> = Vec::with_capacity(keys.len());
    let mut cnames: BTreeMap<RrsetKey, Pos> = BTreeMap::new();
    let mut diags = Vec::new();
    let mut text = String::new();
    let mut run_start = 0;
    while run_start < order.len() {
        let first = order[run_start] as usize;
        let mut run_end = run_start + 1;
        while run_end < order.len() && keys[order[run_end] as usize] == keys[first] {
            run_end += 1;
        }
        let placeholder = RrsetKey {
            owner: String::new(),
            rtype: Rtype::A,
        };
        let key = std::mem::replace(&mut keys[first], placeholder);
        let mut set: Option<DesiredRrset> = None;
        let mut explicit = false;
        for &k in &order[run_start..run_end] {
            let k = k as usize;
            let i = from[k];
            let it = &items[i as usize];
            let set = set.get_or_insert_with(|| DesiredRrset {
                rrset: Rrset::new(it.ttl),
                sources: Sources::default(),
            });
            if k < own {
                match key.rtype {
                    Rtype::CNAME if !cnames.contains_key(&key) => {
                        cnames.insert(key.clone(), it.pos);
                    }
                    Rtype::PTR => explicit = true,
                    _ => {}
                }
                if set.rrset.ttl != it.ttl {
                    diags.push((i, ttl_conflict(values, it, set)));
                    continue;
                }
                let p = packed[k].take().expect("each record is grouped once");
                set.rrset.rdata.insert_packed(p);
            } else {
                if !explicit {
                    set.rrset.ttl = set.rrset.ttl.min(it.ttl);
                }
                // PTR rdata: the forward owner (already canonical).
                fqdn_into(&it.owner, &mut text);
                set.rrset.rdata.insert_ref(it.owner.as_slice(), &text);
            }
            set.sources.push(it.pos);
        }
        if let Some(set) = set {
            rrsets.push((key, set));
        }
        run_start = run_end;
    }
    Grouped {
        rrsets: Rrsets::from_sorted(rrsets),
        cnames,
        diags,
    }
}

/// The message for a record whose TTL differs from the one its RRset already has.
fn ttl_conflict(values: &Values, it: &Item, set: &DesiredRrset) -> Diagnostic {
    let first = set
        .sources
        .first()
        .map(|p| values.location(p))
        .unwrap_or_default();
    let (owner, rtype) = (fqdn(&it.owner), it.rtype);
    values.diagnostic(
        it.pos,
        format!(
            "{} {rtype} has TTL {} here but {} at {first}; an RRset has one TTL",
            owner.to_ascii_lowercase(),
            it.ttl,
            set.rrset.ttl,
        ),
    )
}

/// The positions of `keys` in key order, equal keys in their order in `keys` (by the first
/// eight bytes of the owner, then the whole key).
fn sorted_order(keys: &[RrsetKey]) -> Vec<u32> {
    super::order::positions(
        keys.len(),
        |i| u64::from_be_bytes(leading(keys[i].owner.as_bytes())),
        |i| &keys[i],
    )
}

/// The address of an A or AAAA record's wire rdata.
fn rr_address(wire: &[u8]) -> Option<IpAddr> {
    match wire.len() {
        4 => <[u8; 4]>::try_from(wire).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(wire).ok().map(IpAddr::from),
        _ => None,
    }
}

fn finish(diags: Vec<Diagnostic>, desired: Desired) -> Result<Desired, RecordsError> {
    if diags.is_empty() {
        Ok(desired)
    } else {
        Err(RecordsError::Invalid(diags.into()))
    }
}

/// The most specific configured zone containing the absolute `owner`.
fn owner_zone(owner: &str, zones: &[DName]) -> Option<usize> {
    let name = parse_abs_name(owner).ok()?;
    zones
        .iter()
        .enumerate()
        .filter(|(_, z)| in_zone(&name, z))
        .max_by_key(|(_, z)| z.label_count())
        .map(|(i, _)| i)
}

/// Checks that every zone in `values` is served by Knot (`server_zones`: names as Knot lists
/// them, trailing dot optional). Errors point at the zone's entry in the values.
pub fn check_zones_exist(values: &Values, server_zones: &[String]) -> Result<(), RecordsError> {
    let served: BTreeSet<DName> = server_zones
        .iter()
        .filter_map(|z| parse_abs_name(z).ok())
        .collect();
    let diags: Vec<Diagnostic> = values
        .zones
        .iter()
        .filter_map(|z| {
            let name = parse_abs_name(&z.name).ok()?;
            (!served.contains(&name)).then(|| {
                values.diagnostic(
                    z.pos,
                    format!("zone {} does not exist on the Knot server", fqdn(&name)),
                )
            })
        })
        .collect();
    finish(diags, Desired::default()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::records::values::{SourceFile, parse_values};

    fn values(text: &str) -> Values {
        parse_values(vec![SourceFile {
            path: PathBuf::from("v.yaml"),
            text: text.to_owned(),
        }])
        .unwrap()
    }

    fn errors(text: &str) -> String {
        validate(&values(text)).unwrap_err().to_string()
    }

    const ZONES: &str = "\
zones:
  - name: home.arpa
  - name: 1.168.192.in-addr.arpa
  - name: 0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa
";

    #[test]
    fn valid_values_with_ptrs_and_defaults() {
        let d = validate(&values(&format!(
            "{ZONES}staticRecords:
  - \"router IN A 192.168.1.1\"
  - name: nas
    type: AAAA
    ttl: 300
    data: fd00::10
  - name: cam
    type: A
    data: 192.168.1.20
    ptr: false
  - \"@ IN MX 10 mail\"
  - \"mail 60 A 192.168.1.2\"
"
        )))
        .unwrap();
        let home = &d.zones[0];
        assert_eq!(home.record_count(), 5);
        let mx = &home.rrsets[&RrsetKey {
            owner: "home.arpa.".into(),
            rtype: Rtype::MX,
        }];
        assert_eq!(mx.rrset.ttl, DEFAULT_TTL);
        assert_eq!(
            mx.rrset.rdata.values().next().unwrap(),
            "10 mail.home.arpa."
        );
        let v4 = &d.zones[1];
        assert_eq!(v4.record_count(), 2, "router and mail, not cam");
        let ptr = &v4.rrsets[&RrsetKey {
            owner: "1.1.168.192.in-addr.arpa.".into(),
            rtype: Rtype::PTR,
        }];
        assert_eq!(
            ptr.rrset.rdata.values().next().unwrap(),
            "router.home.arpa."
        );
        let v6 = &d.zones[2];
        let (k, set) = v6.rrsets.iter().next().unwrap();
        assert!(k.owner.starts_with("0.1.0.0."), "{}", k.owner);
        assert_eq!(set.rrset.ttl, 300);
    }

    /// Values written for the original chart: records under `segments[].staticRecords`.
    const ORIGINAL: &str = "\
global:
  namespace: dns-dhcp
segments:
  - name: \"128\"
    domain: seg128.local
    ipv4:
      network: 192.168.128.0/24
      dhcpRange: { start: 192.168.128.100, end: 192.168.128.200 }
    ipv6:
      network: fd00:128::/64
    staticRecords:
      - \"nas IN A 192.168.128.10\"
      - \"nas IN AAAA fd00:128::10\"
      - \"www IN CNAME nas\"
  - name: \"129\"
    domain: seg129.local
    ipv4:
      network: 10.129.0.0/16
    staticRecords:
      - \"printer IN A 10.129.3.4\"
";

    #[test]
    fn segments_static_records_belong_to_the_segment_domain_with_ptrs() {
        let v = values(ORIGINAL);
        let names: Vec<&str> = v.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "seg128.local",
                "128.168.192.in-addr.arpa",
                "0.0.0.0.0.0.0.0.8.2.1.0.0.0.d.f.ip6.arpa",
                "seg129.local",
                "129.10.in-addr.arpa"
            ]
        );
        let d = validate(&v).unwrap();
        let get = |zone: &str, owner: &str, rtype: Rtype| {
            let z = d.zones.iter().find(|z| z.fqdn() == zone).unwrap();
            z.rrsets
                .get(&RrsetKey {
                    owner: owner.into(),
                    rtype,
                })
                .map(|r| {
                    (
                        r.rrset.ttl,
                        r.rrset.rdata.values().next().unwrap().to_owned(),
                    )
                })
        };
        assert_eq!(
            get("seg128.local.", "nas.seg128.local.", Rtype::A),
            Some((3600, "192.168.128.10".into()))
        );
        assert_eq!(
            get("seg128.local.", "www.seg128.local.", Rtype::CNAME),
            Some((3600, "nas.seg128.local.".into()))
        );
        assert_eq!(
            get(
                "128.168.192.in-addr.arpa.",
                "10.128.168.192.in-addr.arpa.",
                Rtype::PTR
            ),
            Some((3600, "nas.seg128.local.".into()))
        );
        assert_eq!(
            get(
                "129.10.in-addr.arpa.",
                "4.3.129.10.in-addr.arpa.",
                Rtype::PTR
            ),
            Some((3600, "printer.seg129.local.".into()))
        );
        let v6 = d
            .zones
            .iter()
            .find(|z| z.fqdn().ends_with("ip6.arpa."))
            .unwrap();
        assert_eq!(v6.record_count(), 1);
        // The second segment's records are not in the first one's zone.
        assert_eq!(
            get("seg128.local.", "printer.seg128.local.", Rtype::A),
            None
        );
    }

    #[test]
    fn static_records_under_an_unread_key_are_an_error_naming_it() {
        let text = "zones:\n  - name: home.arpa\nglobal:\n  dns:\n    staticRecords:\n      - \"a IN A 192.0.2.1\"\n";
        let e = parse_values(vec![SourceFile {
            path: PathBuf::from("v.yaml"),
            text: text.into(),
        }])
        .unwrap_err()
        .to_string();
        assert!(e.contains("`global.dns.staticRecords`"), "{e}");
        assert!(e.contains("v.yaml:6"), "{e}");
        let e = parse_values(vec![SourceFile {
            path: PathBuf::from("v.yaml"),
            text: "segments:\n  - name: x\n    staticRecords: [\"a IN A 192.0.2.1\"]\n".into(),
        }])
        .unwrap_err()
        .to_string();
        assert!(e.contains("no `domain`"), "{e}");
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = errors(&format!(
            "{ZONES}staticRecords:
  - \"bad IN A 300.1.1.1\"
  - \"outside.example. IN A 192.0.2.1\"
  - \"alias CNAME router\"
  - \"alias A 192.168.1.3\"
  - name: x
    type: MX
    data: 10 mail
    ptr: true
  - name: yy
    type: A
    ttl: -5
    data: 192.168.1.4
  - \"@ SOA a b 1 2 3 4 5\"
  - \"_dnsdhcp-owned TXT x\"
  - \"t 60 A 192.168.1.7\"
  - \"t 61 A 192.168.1.8\"
"
        ));
        for needle in [
            "v.yaml:6:5: invalid record",
            "v.yaml:7:5: owner outside.example. is in none of the configured zones",
            "v.yaml:8:5: CNAME at alias.home.arpa. beside other data (A)",
            "v.yaml:10:5: `ptr` applies to A and AAAA records only",
            "v.yaml:14:5: TTL -5 is out of range",
            "v.yaml:18:5: type SOA cannot be a static record",
            "v.yaml:19:5: owner _dnsdhcp-owned.home.arpa. is reserved",
            "v.yaml:21:5: t.home.arpa. A has TTL 61 here but 60 at v.yaml:20:5",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.contains("8 errors"), "{text}");
    }

    #[test]
    fn owner_must_be_inside_its_zone_and_zone_must_be_listed() {
        let text = errors(&format!(
            "{ZONES}staticRecords:
  - name: r.other.test.
    zone: home.arpa
    type: A
    data: 192.0.2.1
  - name: r
    zone: nowhere.test
    type: A
    data: 192.0.2.1
"
        ));
        assert!(
            text.contains("v.yaml:6:5: owner r.other.test. is not inside zone home.arpa."),
            "{text}"
        );
        assert!(
            text.contains("v.yaml:10:5: zone nowhere.test. is not listed"),
            "{text}"
        );
    }

    #[test]
    fn zones_must_exist_on_the_server() {
        let v = values(ZONES);
        let e = check_zones_exist(&v, &["home.arpa.".into(), "1.168.192.in-addr.arpa.".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("v.yaml:4:5: zone 0.0.0.0"), "{e}");
        assert!(e.contains("does not exist on the Knot server"), "{e}");
    }
}
