//! Making a zone serve exactly the records of a zone file.
//!
//! This is how a zone-files-only archive (`zones.tar.gz`) is restored into a running Knot: the
//! zone file is parsed, compared with what the zone serves (`zone-read`), and the difference is
//! applied in a single transaction that also sets the SOA — or, when the difference is too large
//! for one transaction on knotd 3.2 ([`MAX_TXN_RECORDS`]), the file is loaded by Knot itself
//! through `zone-restore`. Either way the zone serves the archive's records, and a serial past
//! both the one served before and the archived one ([`restored_serial`]) unless the archived
//! serial is kept. DNSSEC records are Knot's own business and are left out of the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::base::Serial;
use domain::base::iana::Rtype;
use knot_ctl::codec::{Item, Items, Unit};
use knot_ctl::{BackupOptions, Client, Components, FlushOptions, Record};

use crate::archive::member_of_zone;
use crate::records::rr::{DName, dnssec_type, fqdn, parse_abs_name};
use crate::zonefile::{
    KnotTable, ZoneReader, ZoneRecord, knot_form, loadable_zone_file, parse_served, with_soa_serial,
};

/// Why a zone could not be replaced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A staging file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The zone did not come back with the expected serial in time.
    #[error("zone {zone} did not serve serial {expected} within {waited:?} (serving {serving:?})")]
    NotLoaded {
        /// The zone.
        zone: String,
        /// The serial expected.
        expected: u32,
        /// What it serves (None: not loaded).
        serving: Option<u32>,
        /// How long we waited.
        waited: Duration,
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
    /// Whether anything was changed (false: the zone already matched).
    pub committed: bool,
    /// How the zone was put back.
    pub method: Method,
}

/// Parses the zone file `data` of `zone` into the form a Knot of `table` takes it in (types it
/// does not read by name in RFC 3597 form); `file` labels errors.
fn parse_zone_file(
    file: &str,
    zone: &DName,
    data: &[u8],
    table: KnotTable,
) -> Result<Rrsets, ZoneSyncError> {
    let mut reader = ZoneReader::new(file, zone, data);
    let bad = |message: String| ZoneSyncError::ZoneFile {
        file: file.to_owned(),
        message,
    };
    let mut out = Rrsets::new();
    while let Some(mut rec) = reader.next_record().map_err(|e| bad(e.to_string()))? {
        if let Some(form) =
            knot_form(&rec, table).map_err(|m| bad(format!("line {}: {m}", rec.line)))?
        {
            (rec.data, rec.key) = (form.data, form.key);
        }
        add(&mut out, rec);
    }
    Ok(out)
}

/// The type table of the Knot `client` talks to ([`KnotTable::for_version`]).
pub fn knot_table<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
) -> Result<KnotTable, ZoneSyncError> {
    let v = client.version().map_err(|source| ZoneSyncError::Knot {
        zone: zone.to_owned(),
        context: "status version".into(),
        source,
    })?;
    Ok(KnotTable::for_version(v.major, v.minor).0)
}

/// Adds `rec` to its RRset (DNSSEC records are left out).
fn add(out: &mut Rrsets, rec: ZoneRecord) {
    if dnssec_type(rec.rtype) {
        return;
    }
    let set = out
        .entry((fqdn(&rec.owner), rec.rtype.to_int()))
        .or_default();
    set.ttl = rec.ttl;
    set.rdata.insert(rec.key, rec.data);
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
        let parsed = parse_served(&r.owner, ttl, &r.rtype, &r.data).map_err(|message| {
            ZoneSyncError::ServedRecord {
                zone: zone.to_owned(),
                record: r.to_string(),
                message,
            }
        })?;
        add(&mut out, parsed);
    }
    Ok(out)
}

/// How a restore treats the SOA serial, and where the zone-file path may stage files.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Serve the archived serial exactly (otherwise one past the larger of the served and the
    /// archived serial, so secondaries follow).
    pub keep_serial: bool,
    /// A directory knotd can read, where a zone too large for one transaction is staged as a
    /// one-zone backup for `zone-restore`. `None`: always by transaction.
    pub stage_dir: Option<PathBuf>,
}

/// How a zone was put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Nothing differed and the serial stays.
    Unchanged,
    /// One control transaction with the difference.
    Transaction,
    /// The zone file, loaded by Knot (`zone-restore` of a one-zone backup).
    ZoneFile,
    /// Restored by the pod's post-start role after a restart (Kubernetes target).
    PostStart,
}

/// Transactions larger than this many changed records, or changing an RRset of more records
/// than [`MAX_TXN_RRSET`], go through the zone file instead: knotd 3.2.6 crashes committing
/// transactions with RRsets of 1,000+ records and, now and then, large ones.
pub const MAX_TXN_RECORDS: usize = 5_000;
/// See [`MAX_TXN_RECORDS`].
pub const MAX_TXN_RRSET: usize = 500;

/// The serial a restored zone serves: with `keep`, the archived one; otherwise one past the
/// larger (RFC 1982) of the served and the archived serial.
pub fn restored_serial(served: Option<u32>, archived: u32, keep: bool) -> u32 {
    if keep {
        return archived;
    }
    let top = match served {
        Some(s) if serial_newer(s, archived) => s,
        _ => archived,
    };
    Serial::from(top).add(1).into_int()
}

/// Whether `a` and `b` name the same zone as Knot lists it: ASCII case and a trailing dot aside.
pub fn same_zone(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether serial `a` is newer than `b` in RFC 1982 arithmetic (never when the two are exactly
/// 2^31 apart: then neither is).
pub fn serial_newer(a: u32, b: u32) -> bool {
    Serial::from(a) > Serial::from(b)
}

/// Makes `zone` serve exactly the records of the zone file `data` (DNSSEC records aside), with
/// a serial past both the served and the archived one ([`restored_serial`]; `keep_serial`: the
/// archived one). A small difference goes in one transaction that is aborted on any error;
/// a large one through the zone file when `opts.stage_dir` is given ([`MAX_TXN_RECORDS`]).
pub fn sync_zone<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    file: &str,
    data: &[u8],
    opts: &RestoreOptions,
) -> Result<SyncOutcome, ZoneSyncError> {
    let file_err = |message: String| ZoneSyncError::ZoneFile {
        file: file.to_owned(),
        message,
    };
    let apex = parse_abs_name(zone).map_err(file_err)?;
    let zone = fqdn(&apex);
    let table = knot_table(client, &zone)?;
    let want = parse_zone_file(file, &apex, data, table)?;
    let soa_key = (zone.clone(), Rtype::SOA.to_int());
    let Some(soa) = want.get(&soa_key) else {
        return Err(file_err(format!("no SOA record at the apex of {zone}")));
    };
    let soa_data = soa.rdata.values().next().expect("an RRset has records");
    let archived = soa_serial(soa_data);
    let have = read_served(client, &zone)?;
    let served_serial = have
        .get(&soa_key)
        .and_then(|s| s.rdata.values().next())
        .map(|d| soa_serial(d));
    let serial = restored_serial(served_serial, archived, opts.keep_serial);
    let records = want.values().map(|s| s.rdata.len()).sum();
    let diff = diff_rrsets(&want, &have, &soa_key, table);
    let outcome = |method, rrsets_changed| SyncOutcome {
        zone: zone.clone(),
        rrsets_changed,
        records,
        serial,
        committed: method != Method::Unchanged,
        method,
    };
    if diff.changed == 0 && served_serial == Some(serial) {
        return Ok(outcome(Method::Unchanged, 0));
    }
    let too_big =
        diff.unsets.len() + diff.sets.len() > MAX_TXN_RECORDS || diff.largest_rrset > MAX_TXN_RRSET;
    if let (true, Some(stage)) = (too_big, &opts.stage_dir) {
        restore_zone_file(client, &zone, file, data, stage, serial)?;
        return Ok(outcome(Method::ZoneFile, diff.changed));
    }
    commit_diff(
        client,
        &zone,
        soa.ttl,
        soa_data,
        served_serial,
        serial,
        diff.unsets,
        diff.sets,
    )?;
    Ok(outcome(Method::Transaction, diff.changed))
}

/// What differs between two zones' RRsets (the SOA aside).
struct Diff {
    unsets: Vec<Record>,
    sets: Vec<Record>,
    /// RRsets that differ, the SOA included.
    changed: usize,
    /// Records of the largest RRset set or unset.
    largest_rrset: usize,
}

fn diff_rrsets(want: &Rrsets, have: &Rrsets, soa_key: &(String, u16), table: KnotTable) -> Diff {
    let keys: BTreeSet<&(String, u16)> = want.keys().chain(have.keys()).collect();
    let mut d = Diff {
        unsets: Vec::new(),
        sets: Vec::new(),
        changed: 0,
        largest_rrset: 0,
    };
    for key in keys {
        let (w, h) = (want.get(key), have.get(key));
        if w == h {
            continue;
        }
        d.changed += 1;
        if key == soa_key {
            continue; // set in every transaction
        }
        let (owner, rtype) = key;
        let type_name = table.type_name(Rtype::from_int(*rtype));
        if let Some(h) = h {
            // Whole RRset out, then every wanted record in: no record is set or unset twice.
            d.unsets.push(Record::without_ttl(owner, &type_name, ""));
            d.largest_rrset = d.largest_rrset.max(h.rdata.len());
        }
        if let Some(w) = w {
            d.largest_rrset = d.largest_rrset.max(w.rdata.len());
            for data in w.rdata.values() {
                let name = if data.starts_with("\\#") {
                    format!("TYPE{rtype}")
                } else {
                    type_name.clone()
                };
                d.sets.push(Record::new(owner, w.ttl, &name, data));
            }
        }
    }
    d
}

/// Commits the difference and the SOA with `serial` in one transaction (aborted on error).
/// Keeping an archived serial at or below the served one takes the RFC 1982 way: intermediate
/// serials in further SOA-only commits (Knot 3.4 refuses a commit that does not increase the
/// serial), then the journal is purged (its history belongs to contents that no longer exist,
/// and a serial below the journal's makes every later commit fail on Knot 3.2).
#[allow(clippy::too_many_arguments)]
fn commit_diff<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    soa_ttl: u32,
    soa_data: &str,
    served_serial: Option<u32>,
    serial: u32,
    unsets: Vec<Record>,
    mut sets: Vec<Record>,
) -> Result<(), ZoneSyncError> {
    let hops = served_serial.map_or_else(Vec::new, |from| serial_hops(from, serial));
    let first = hops.first().copied().unwrap_or(serial);
    sets.push(Record::new(
        zone,
        soa_ttl,
        "SOA",
        with_serial(soa_data, first),
    ));
    let knot = |context: &str| {
        let zone = zone.to_owned();
        let context = context.to_owned();
        move |source| ZoneSyncError::Knot {
            zone,
            context,
            source,
        }
    };
    let (mut txn, marker) = crate::txn::begin(client, zone).map_err(knot("zone-begin"))?;
    let refused = txn.unset_batch(&unsets).map_err(knot("zone-unset"))?;
    if let Some(r) = refused.into_iter().next() {
        return Err(knot("zone-unset")(r.error));
    }
    let refused = txn.set_batch(&sets).map_err(knot("zone-set"))?;
    if let Some(r) = refused.into_iter().next() {
        return Err(knot("zone-set")(r.error));
    }
    txn.commit_unmarking(&marker).map_err(knot("zone-commit"))?;
    let later = hops.iter().skip(1).copied();
    for step in later.chain(hops.first().map(|_| serial)) {
        let (mut txn, marker) = crate::txn::begin(client, zone).map_err(knot("zone-begin"))?;
        txn.set(&Record::new(
            zone,
            soa_ttl,
            "SOA",
            with_serial(soa_data, step),
        ))
        .map_err(knot("zone-set"))?;
        txn.commit_unmarking(&marker).map_err(knot("zone-commit"))?;
    }
    let flush = FlushOptions {
        blocking: true,
        ..FlushOptions::default()
    };
    client
        .zone_flush(Some(zone), &flush)
        .map_err(knot("zone-flush"))?;
    if !hops.is_empty() {
        purge_journal(client, zone).map_err(knot("zone-purge +journal"))?;
    }
    Ok(())
}

/// Puts `zone` back from its zone file: the file (made loadable, with `serial`) is staged under
/// `stage` as a one-zone Knot backup and restored with `zone-restore` (zone file only; Knot
/// drops the zone's journal and loads the file), then waits until the zone serves `serial`.
pub fn restore_zone_file<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    file: &str,
    data: &[u8],
    stage: &Path,
    serial: u32,
) -> Result<(), ZoneSyncError> {
    let apex = parse_abs_name(zone).map_err(|message| ZoneSyncError::ZoneFile {
        file: file.to_owned(),
        message,
    })?;
    let table = knot_table(client, zone)?;
    let (text, serial) = loadable_zone_file(file, &apex, data, table, |_| serial).map_err(|e| {
        ZoneSyncError::ZoneFile {
            file: file.to_owned(),
            message: e.to_string(),
        }
    })?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ZoneSyncError::Io { path, source }
    };
    let dir = tempfile::Builder::new()
        .prefix(".dnsdhcp-zone-")
        .tempdir_in(stage)
        .map_err(io(stage))?;
    let backup = dir.path().join("backup");
    let member = backup.join(member_of_zone(zone));
    let parent = member.parent().expect("a member has a parent");
    fs::create_dir_all(parent).map_err(io(parent))?;
    fs::write(&member, &text).map_err(io(&member))?;
    let label = backup.join("knot_backup.label");
    fs::write(
        &label,
        format!(
            "label: Knot DNS Backup\nbackup_format: 2\nparameters: +zonefile +nojournal +notimers +nokaspdb +nocatalog +backupdir {}\nzone_count: 1\n",
            backup.display()
        ),
    )
    .map_err(io(&label))?;
    open_tree(dir.path()).map_err(io(dir.path()))?;
    let opts = BackupOptions {
        components: Components {
            zonefile: Some(true),
            journal: Some(false),
            timers: Some(false),
            kaspdb: Some(false),
            catalog: Some(false),
        },
        ..BackupOptions::new(&backup)
    };
    let knot = |context: String| {
        let zone = zone.to_owned();
        move |source| ZoneSyncError::Knot {
            zone,
            context,
            source,
        }
    };
    client.zone_restore(&[zone], &opts).map_err(knot(format!(
        "zone-restore +backupdir {}",
        backup.display()
    )))?;
    wait_served(client, zone, serial, ZONE_FILE_LOAD_TIMEOUT)
}

/// Makes the zone files of an extracted full Knot backup at `backup_dir` ready for
/// `zone-restore`: each loadable by a Knot of `table` ([`loadable_zone_file`]) and holding the
/// serial the zone is to serve ([`restored_serial`] of `served` and the archived serial).
/// Returns the serial of each zone, in the order of `zones` (name, archive member).
pub fn prepare_backup_dir(
    backup_dir: &Path,
    zones: &[(&str, &str)],
    served: &BTreeMap<String, u32>,
    keep_serial: bool,
    table: KnotTable,
) -> Result<Vec<u32>, ZoneSyncError> {
    let mut serials = Vec::with_capacity(zones.len());
    for &(zone, member) in zones {
        let path = backup_dir.join(member);
        let data = fs::read(&path).map_err(|source| ZoneSyncError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |message: String| ZoneSyncError::ZoneFile {
            file: member.to_owned(),
            message,
        };
        let apex = parse_abs_name(zone).map_err(bad)?;
        let serving = served.get(&fqdn(&apex)).copied();
        let (text, serial) = loadable_zone_file(member, &apex, &data, table, |archived| {
            restored_serial(serving, archived, keep_serial)
        })
        .map_err(|e| bad(e.to_string()))?;
        if text != data {
            fs::write(&path, &text).map_err(|source| ZoneSyncError::Io {
                path: path.clone(),
                source,
            })?;
        }
        serials.push(serial);
    }
    Ok(serials)
}

/// How long a zone restored from its file may take to load.
pub const ZONE_FILE_LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits until `zone` serves `serial` or a newer one (a signing zone may move it further).
pub fn wait_served<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
    serial: u32,
    timeout: Duration,
) -> Result<(), ZoneSyncError> {
    let start = Instant::now();
    loop {
        let status = client
            .zone_status(zone)
            .map_err(|source| ZoneSyncError::Knot {
                zone: zone.to_owned(),
                context: "zone-status".into(),
                source,
            })?;
        let running = status.events.iter().any(|e| e.value == "running");
        match status.serial {
            Some(s) if !running && (s == serial || serial_newer(s, serial)) => return Ok(()),
            serving if start.elapsed() >= timeout => {
                return Err(ZoneSyncError::NotLoaded {
                    zone: zone.to_owned(),
                    expected: serial,
                    serving,
                    waited: start.elapsed(),
                });
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Makes a staged tree readable by knotd whatever user it runs as (directories 0755, files
/// 0644); the tree's top directory (from `tempfile`) stays private to its parent's owner
/// unless the parent is open.
fn open_tree(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let mode = if meta.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
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
    while !serial_newer(to, cur) {
        cur = Serial::from(cur).add(MAX_STEP).into_int();
        hops.push(cur);
    }
    hops
}

/// SOA rdata with another serial.
fn with_serial(rdata: &str, serial: u32) -> String {
    with_soa_serial(rdata, serial)
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
    fn serials_compare_in_rfc_1982_arithmetic() {
        assert!(serial_newer(1, 0));
        assert!(!serial_newer(0, 1));
        assert!(!serial_newer(5, 5));
        assert!(serial_newer(0, u32::MAX), "0 follows 2^32 - 1");
        assert!(
            !serial_newer(0, 1 << 31) && !serial_newer(1 << 31, 0),
            "undefined"
        );
        assert_eq!(
            restored_serial(Some(u32::MAX), 7, false),
            8,
            "7 follows 2^32 - 1"
        );
        assert_eq!(restored_serial(Some(u32::MAX), u32::MAX - 5, false), 0);
        assert_eq!(restored_serial(Some(3), 7, false), 8);
        assert_eq!(restored_serial(Some(9), 7, true), 7);
    }

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
