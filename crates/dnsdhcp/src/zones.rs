//! Making a zone serve exactly the records of a zone file, through one Knot transaction.
//!
//! This is how a zone-files-only archive (`zones.tar.gz`) is restored into a running Knot: the
//! zone file is parsed, compared with what the zone serves (`zone-read`), and the difference is
//! applied in a single transaction that also sets the archive's SOA, so the zone ends up serving
//! the archive's records *and* its serial, whatever Knot's journal held before. DNSSEC records
//! are Knot's own business and are left out on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use domain::base::iana::{Class, Rtype};
use domain::base::name::ToName;
use domain::base::rdata::ComposeRecordData;
use domain::base::zonefile_fmt::{DisplayKind, ZonefileFmt};
use domain::zonefile::inplace::{Entry, Zonefile};
use knot_ctl::codec::{Item, Items, Unit};
use knot_ctl::{Client, FlushOptions, Record};

use crate::rdata_compat::{generic_rdata, rewrite_zone_text};
use crate::records::rr::{DName, dnssec_type, fqdn, parse_abs_name, parse_knot_rr};

/// Why a zone could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum ZoneSyncError {
    /// The zone file does not parse.
    #[error("{file}: {message}")]
    ZoneFile {
        /// The file (archive member or path).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A record Knot served could not be parsed.
    #[error("zone {zone}: cannot parse the record Knot serves ({record}): {message}")]
    ServedRecord {
        /// The zone.
        zone: String,
        /// The record as Knot sent it.
        record: String,
        /// What is wrong.
        message: String,
    },
    /// Knot refused a command; any transaction has been aborted.
    #[error("zone {zone}: {context}: {source}")]
    Knot {
        /// The zone.
        zone: String,
        /// The command that failed.
        context: String,
        /// Knot's error.
        #[source]
        source: knot_ctl::Error,
    },
}

/// The records of one RRset: TTL and rdata (presentation form, keyed by canonical wire form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RrsetData {
    ttl: u32,
    rdata: BTreeMap<Vec<u8>, String>,
}

type Rrsets = BTreeMap<(String, u16), RrsetData>;

/// What [`sync_zone`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncOutcome {
    /// The zone (FQDN).
    pub zone: String,
    /// RRsets whose content or TTL changed, were added or removed.
    pub rrsets_changed: usize,
    /// Records in the zone file (DNSSEC records excluded).
    pub records: usize,
    /// The SOA serial the zone serves afterwards.
    pub serial: u32,
    /// Whether a transaction was committed (false: the zone already matched).
    pub committed: bool,
}

/// Parses the zone file `data` of `zone`; `file` labels errors.
fn parse_zone_file(file: &str, zone: &DName, data: &[u8]) -> Result<Rrsets, ZoneSyncError> {
    let err = |message: String| ZoneSyncError::ZoneFile {
        file: file.to_owned(),
        message,
    };
    let data = rewrite_zone_text(data);
    let mut zf = Zonefile::from(&*data);
    zf.set_origin(zone.clone());
    zf.set_default_class(Class::IN);
    let mut out = Rrsets::new();
    loop {
        let rec = match zf.next_entry() {
            Ok(Some(Entry::Record(rec))) => rec,
            Ok(Some(Entry::Include { path, .. })) => {
                return Err(err(format!("$INCLUDE {path} is not allowed")));
            }
            Ok(None) => break,
            Err(e) => return Err(err(e.to_string())),
        };
        if dnssec_type(rec.rtype()) {
            continue;
        }
        let mut wire = Vec::new();
        rec.data()
            .compose_canonical_rdata(&mut wire)
            .map_err(|_| err("record data too long".into()))?;
        let owner = fqdn(
            &rec.owner()
                .to_name::<Vec<u8>>()
                .to_canonical_name::<Vec<u8>>(),
        );
        let set = out.entry((owner, rec.rtype().to_int())).or_default();
        set.ttl = rec.ttl().as_secs();
        set.rdata.insert(
            wire,
            rec.data().display_zonefile(DisplayKind::Simple).to_string(),
        );
    }
    Ok(out)
}

/// Reads what `zone` serves now, in the same form as [`parse_zone_file`].
fn read_served<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
) -> Result<Rrsets, ZoneSyncError> {
    let knot = |source| ZoneSyncError::Knot {
        zone: zone.to_owned(),
        context: "zone-read".into(),
        source,
    };
    let mut out = Rrsets::new();
    for r in client.zone_read(zone, None, None).map_err(knot)? {
        let r = r.map_err(knot)?;
        let ttl = r.ttl.unwrap_or(0);
        let data = generic_rdata(&r.rtype, &r.data).unwrap_or_else(|| r.data.clone());
        let parsed = parse_knot_rr(&r.owner, ttl, &r.rtype, &data).map_err(|message| {
            ZoneSyncError::ServedRecord {
                zone: zone.to_owned(),
                record: r.to_string(),
                message,
            }
        })?;
        if dnssec_type(parsed.rtype) {
            continue;
        }
        let set = out
            .entry((fqdn(&parsed.owner), parsed.rtype.to_int()))
            .or_default();
        set.ttl = parsed.ttl;
        set.rdata.insert(parsed.wire, parsed.data);
    }
    Ok(out)
}

/// Makes `zone` serve exactly the records of the zone file `data` (DNSSEC records aside) and
/// the file's SOA serial, in one transaction that is aborted on any error. Nothing is sent
/// when the zone already matches. The zone is flushed afterwards.
pub fn sync_zone<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    file: &str,
    data: &[u8],
) -> Result<SyncOutcome, ZoneSyncError> {
    let apex = parse_abs_name(zone).map_err(|message| ZoneSyncError::ZoneFile {
        file: file.to_owned(),
        message,
    })?;
    let zone = fqdn(&apex);
    let want = parse_zone_file(file, &apex, data)?;
    let soa_key = (zone.clone(), Rtype::SOA.to_int());
    let Some(soa) = want.get(&soa_key) else {
        return Err(ZoneSyncError::ZoneFile {
            file: file.to_owned(),
            message: format!("no SOA record at the apex of {zone}"),
        });
    };
    let serial = soa_serial(soa.rdata.values().next().expect("an RRset has records"));
    let have = read_served(client, &zone)?;

    let keys: BTreeSet<&(String, u16)> = want.keys().chain(have.keys()).collect();
    let mut unsets = Vec::new();
    let mut sets = Vec::new();
    let mut changed = 0;
    for key in keys {
        let (w, h) = (want.get(key), have.get(key));
        if w == h {
            continue;
        }
        changed += 1;
        let (owner, rtype) = key;
        let type_name = Rtype::from_int(*rtype).to_string();
        if *key == soa_key {
            continue; // set below, in every transaction
        }
        if h.is_some() {
            // Whole RRset out, then every wanted record in: no record is set or unset twice.
            unsets.push(Record::without_ttl(owner, &type_name, ""));
        }
        if let Some(w) = w {
            for data in w.rdata.values() {
                sets.push(Record::new(owner, w.ttl, &type_name, data));
            }
        }
    }
    let records = want.values().map(|s| s.rdata.len()).sum();
    if changed == 0 {
        return Ok(SyncOutcome {
            zone,
            rrsets_changed: 0,
            records,
            serial,
            committed: false,
        });
    }
    // The archive's SOA is set explicitly, so the zone serves the archive's serial (an explicit
    // SOA is taken as given; otherwise the commit would increment the serial).
    let soa_data = soa.rdata.values().next().expect("an RRset has records");
    // Knot 3.4 refuses a commit that does not increase the serial (RFC 1982) with "semantic
    // check" (journal update failed; 3.2 accepted it). An archived serial at or below the
    // served one is reached the RFC 1982 way: the transaction commits an intermediate serial,
    // further SOA-only commits step up (at most 2^31 - 1 each) until the archived serial.
    let served_serial = have
        .get(&soa_key)
        .and_then(|s| s.rdata.values().next())
        .map(|d| soa_serial(d));
    let hops = served_serial.map_or_else(Vec::new, |from| serial_hops(from, serial));
    let first_soa = match hops.first() {
        Some(&s) => with_serial(soa_data, s),
        None => soa_data.clone(),
    };
    sets.push(Record::new(&zone, soa.ttl, "SOA", &first_soa));

    let knot = |context: &str| {
        let zone = zone.clone();
        let context = context.to_owned();
        move |source| ZoneSyncError::Knot {
            zone,
            context,
            source,
        }
    };
    let mut txn = client.zone_begin(&zone).map_err(knot("zone-begin"))?;
    let refused = txn.unset_batch(&unsets).map_err(knot("zone-unset"))?;
    if let Some(r) = refused.into_iter().next() {
        return Err(knot("zone-unset")(r.error));
    }
    let refused = txn.set_batch(&sets).map_err(knot("zone-set"))?;
    if let Some(r) = refused.into_iter().next() {
        return Err(knot("zone-set")(r.error));
    }
    txn.commit().map_err(knot("zone-commit"))?;
    let later = hops.iter().skip(1).map(|&s| with_serial(soa_data, s));
    for soa_rdata in later.chain(hops.first().map(|_| soa_data.clone())) {
        let mut txn = client.zone_begin(&zone).map_err(knot("zone-begin"))?;
        txn.set(&Record::new(&zone, soa.ttl, "SOA", &soa_rdata))
            .map_err(knot("zone-set"))?;
        txn.commit().map_err(knot("zone-commit"))?;
    }
    // The zone file first (blocking), then the journal goes: its history belongs to contents
    // that no longer exist, and an archived serial at or below the journal's would make every
    // later commit fail ("not enough space provided" on Knot 3.2).
    let flush = FlushOptions {
        blocking: true,
        ..FlushOptions::default()
    };
    client
        .zone_flush(Some(&zone), &flush)
        .map_err(knot("zone-flush"))?;
    purge_journal(client, &zone).map_err(knot("zone-purge +journal"))?;
    Ok(SyncOutcome {
        zone,
        rrsets_changed: changed,
        records,
        serial,
        committed: true,
    })
}

/// `zone-purge ZONE +journal` (forced, as knotc requires): drops the zone's journal, keeps the
/// zone loaded.
fn purge_journal<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
) -> Result<(), knot_ctl::Error> {
    let req = Items::command("zone-purge")
        .with(Item::Zone, zone)
        .with(Item::Flags, "F")
        .with(Item::Filter, "j");
    let reply = client.call(&[req])?;
    match reply.into_iter().find_map(|u| match u {
        Unit::Data(i) | Unit::Extra(i) if i.has(Item::Error) => Some(i),
        _ => None,
    }) {
        Some(err) => Err(knot_ctl::Error::from_server(err)),
        None => Ok(()),
    }
}

/// The intermediate serials from `from` to `to` so that every step increases the serial in
/// RFC 1982 arithmetic (by 1 ..= 2^31 - 1): none when `to` is already greater than `from`, at
/// most two otherwise (`to` itself is the last step, not included).
fn serial_hops(from: u32, to: u32) -> Vec<u32> {
    const MAX_STEP: u32 = (1 << 31) - 1;
    let mut hops = Vec::new();
    let mut cur = from;
    while !(1..=MAX_STEP).contains(&to.wrapping_sub(cur)) {
        cur = cur.wrapping_add(MAX_STEP);
        hops.push(cur);
    }
    hops
}

/// SOA rdata (`mname rname serial refresh retry expire minimum`) with another serial.
fn with_serial(rdata: &str, serial: u32) -> String {
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

/// The serial field of SOA rdata in presentation form.
fn soa_serial(rdata: &str) -> u32 {
    rdata
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod serial_tests {
    use super::*;

    #[test]
    fn serial_hops_always_step_up_in_rfc_1982_arithmetic() {
        let up = |a: u32, b: u32| (1..=(1u32 << 31) - 1).contains(&b.wrapping_sub(a));
        assert!(serial_hops(7, 8).is_empty());
        assert!(serial_hops(u32::MAX, 3).is_empty());
        for (from, to) in [
            (8, 7),
            (9, 8),
            (7, 7),
            (100, 1),
            (5, 5 + (1 << 31)),
            (0, u32::MAX),
        ] {
            let hops = serial_hops(from, to);
            assert!(
                !hops.is_empty() && hops.len() <= 2,
                "{from}->{to}: {hops:?}"
            );
            let path: Vec<u32> = std::iter::once(from).chain(hops).chain([to]).collect();
            assert!(path.windows(2).all(|w| up(w[0], w[1])), "{path:?}");
        }
    }

    #[test]
    fn with_serial_replaces_the_third_field() {
        assert_eq!(
            with_serial("ns1.x. h.x. 7 3600 900 604800 300", 42),
            "ns1.x. h.x. 42 3600 900 604800 300"
        );
    }
}
