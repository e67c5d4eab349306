//! Reading zones from Knot and applying a plan: one transaction per zone carrying exactly the
//! plan's changes. This is the only part of the module that talks to Knot.

use std::io::{Read, Write};

use knot_ctl::{Client, FlushOptions, Record, RecordRef, RecordStream};
use serde::Serialize;

use super::error::RecordsError;
use super::model::{Desired, DesiredZone};
use super::plan::{
    CurrentRecord, CurrentRef, Plan, RrsetChange, SafetyLimit, ZonePlan, ZoneRecords,
    check_conflicts, plan_zone_records,
};
use super::rr::{fqdn, parse_abs_name};
use super::validate::{check_zones_exist, validate};
use super::values::Values;

/// How [`apply_plan`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ApplyOptions {
    /// Apply even if a zone's plan exceeds the safety limit.
    pub force: bool,
    /// The safety limit (default: 30 % of a zone's managed records, zones with ≥ 10).
    pub limit: SafetyLimit,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyOutcome {
    /// The plan that was applied.
    pub plan: Plan,
    /// Zones whose transaction was committed (zones without changes get no transaction).
    pub committed: Vec<String>,
    /// Transactions an interrupted dnsdhcp had left open, aborted before this apply.
    pub aborted: Vec<crate::txn::Aborted>,
}

fn knot(context: impl Into<String>) -> impl FnOnce(knot_ctl::Error) -> RecordsError {
    let context = context.into();
    move |source| RecordsError::Knot { context, source }
}

/// The zones Knot serves (as it names them, with trailing dot).
pub fn server_zones<S: Read + Write>(client: &mut Client<S>) -> Result<Vec<String>, RecordsError> {
    Ok(client
        .zone_status_all()
        .map_err(knot("zone-status"))?
        .into_iter()
        .map(|s| s.zone)
        .collect())
}

/// Every record `zone` serves now (`zone-read`).
pub fn read_zone<S: Read + Write>(
    client: &mut Client<S>,
    zone: &str,
) -> Result<Vec<CurrentRecord>, RecordsError> {
    zone_records(client, zone)?.collect()
}

/// The records `zone` serves now, streamed from `zone-read` one at a time.
fn zone_records<'c, S: Read + Write>(
    client: &'c mut Client<S>,
    zone: &str,
) -> Result<impl Iterator<Item = Result<CurrentRecord, RecordsError>> + 'c, RecordsError> {
    let context = format!("zone-read {zone}");
    let stream = client.zone_read(zone, None, None).map_err(knot(&context))?;
    Ok(stream.map(move |r| {
        let r = r.map_err(|source| RecordsError::Knot {
            context: context.clone(),
            source,
        })?;
        Ok(CurrentRecord {
            owner: r.owner,
            ttl: r.ttl.unwrap_or(0),
            rtype: r.rtype,
            data: r.data,
        })
    }))
}

/// A zone's `zone-read` stream as [`ZoneRecords`]: each record is borrowed from the client's
/// decoding buffer.
struct KnotRecords<'c, S: Read + Write> {
    stream: RecordStream<'c, S>,
    context: String,
}

impl<S: Read + Write> ZoneRecords for KnotRecords<'_, S> {
    fn next_record(&mut self) -> Option<Result<CurrentRef<'_>, RecordsError>> {
        Some(match self.stream.next_ref()? {
            Ok(r) => Ok(CurrentRef {
                owner: r.owner,
                ttl: r.ttl.unwrap_or(0),
                rtype: r.rtype,
                data: r.data,
            }),
            Err(source) => Err(RecordsError::Knot {
                context: self.context.clone(),
                source,
            }),
        })
    }
}

/// Validates `values`, checks their zones exist on the server, and plans every zone against
/// what Knot serves now. Returns the desired state too (for callers that want its notes).
///
/// A second thread reads the zones the values name into compact buffers while this one
/// validates, so that Knot producing `zone-read` and validation overlap. A validation
/// error still comes first, before anything about the server.
pub fn plan_from_knot<S: Read + Write + Send>(
    client: &mut Client<S>,
    values: &Values,
) -> Result<(Desired, Plan), RecordsError> {
    let (desired, read) = validate_reading(client, values);
    plan_read(client, values, desired?, read?)
}

/// Validates `values` while another thread reads the zones they name.
fn validate_reading<S: Read + Write + Send>(
    client: &mut Client<S>,
    values: &Values,
) -> (
    Result<Desired, RecordsError>,
    Result<Prefetched, RecordsError>,
) {
    std::thread::scope(|scope| {
        let reading = scope.spawn(|| prefetch_zones(client, values));
        let desired = validate(values);
        let read = reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (desired, read)
    })
}

/// Zones read before the values were parsed: the server's zone list and the zones it serves
/// that the values files mention ([`prefetch_mentioned`]).
pub struct Prefetched {
    zones: Vec<String>,
    buffered: Vec<BufferedZone>,
}

/// Above this many zones on the server, [`prefetch_mentioned`] reads none (looking for every
/// name in the values files would cost more than it saves).
const MENTIONED_ZONES_MAX: usize = 64;

/// Reads the zones the server serves whose names appear in `texts` (the values files, case
/// aside), before those files are parsed: the caller parses them meanwhile, so that reading
/// and parsing overlap. A zone the parsed values name that no file mentions as such (e.g. a
/// reverse zone derived from a network) is read by [`plan_prefetched`].
pub fn prefetch_mentioned<S: Read + Write>(
    client: &mut Client<S>,
    texts: &[String],
) -> Result<Prefetched, RecordsError> {
    let zones = server_zones(client)?;
    let mut buffered = Vec::new();
    if zones.len() <= MENTIONED_ZONES_MAX {
        let lowered: Vec<String> = texts.iter().map(|t| t.to_ascii_lowercase()).collect();
        for zone in &zones {
            let name = zone.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() || !lowered.iter().any(|t| t.contains(&name)) {
                continue;
            }
            buffered.push(BufferedZone::fetch(client, zone.clone())?);
        }
    }
    Ok(Prefetched { zones, buffered })
}

/// [`plan_from_knot`] for `values` already validated into `desired`, with zones read in
/// advance by [`prefetch_mentioned`]; any other zone of the values is read now.
pub fn plan_prefetched<S: Read + Write + Send>(
    client: &mut Client<S>,
    values: &Values,
    desired: Desired,
    prefetched: Prefetched,
) -> Result<(Desired, Plan), RecordsError> {
    plan_read(client, values, desired, prefetched)
}

/// Plans every zone of `desired` once the server's zone list and some zones are read.
fn plan_read<S: Read + Write>(
    client: &mut Client<S>,
    values: &Values,
    desired: Desired,
    Prefetched {
        zones,
        mut buffered,
    }: Prefetched,
) -> Result<(Desired, Plan), RecordsError> {
    check_zones_exist(values, &zones)?;
    // Zones read in advance are planned each on its own thread; any other is read now.
    let work: Vec<(&DesiredZone, Option<BufferedZone>)> = desired
        .zones
        .iter()
        .map(|z| {
            let name = z.fqdn();
            let read = buffered
                .iter()
                .position(|b| b.zone.eq_ignore_ascii_case(&name))
                .map(|i| buffered.swap_remove(i));
            (z, read)
        })
        .collect();
    let planned = super::par::map(work, |(z, read)| {
        let plan = match read {
            Some(read) => {
                let context = format!("zone-read {}", read.zone);
                Some(plan_zone_records(z, &mut read.into_records(context)))
            }
            None => None,
        };
        (z, plan)
    });
    let mut plans = Vec::with_capacity(planned.len());
    for (z, plan) in planned {
        let plan = match plan {
            Some(plan) => plan?,
            None => {
                let name = z.fqdn();
                let context = format!("zone-read {name}");
                let stream = client
                    .zone_read(&name, None, None)
                    .map_err(knot(&context))?;
                plan_zone_records(z, &mut KnotRecords { stream, context })?
            }
        };
        plans.push(plan);
    }
    let plan = Plan {
        zones: plans,
        notes: desired.notes.clone(),
        safety_limit: None,
    };
    Ok((desired, plan))
}

/// The server's zones, and the records of each zone of `values` it serves (read whole).
fn prefetch_zones<S: Read + Write + Send>(
    client: &mut Client<S>,
    values: &Values,
) -> Result<Prefetched, RecordsError> {
    let zones = server_zones(client)?;
    let mut buffered: Vec<BufferedZone> = Vec::new();
    for z in &values.zones {
        let Ok(name) = parse_abs_name(&z.name) else {
            continue;
        };
        let name = fqdn(&name);
        let served = zones.iter().any(|s| crate::zones::same_zone(s, &name));
        if !served || buffered.iter().any(|b| b.zone.eq_ignore_ascii_case(&name)) {
            continue;
        }
        buffered.push(BufferedZone::fetch(client, name)?);
    }
    Ok(Prefetched { zones, buffered })
}

/// One zone's `zone-read` reply kept compactly: per record its TTL, the lengths of owner, type
/// and rdata (little endian), then their bytes. A server error ends the records.
///
/// Kept in chunks of about [`CHUNK`] bytes (a record is never split; a larger one has a chunk
/// of its own): a single vector grown by doubling would hold up to twice the zone, and three
/// times for a moment while it grows.
struct BufferedZone {
    zone: String,
    chunks: Vec<Vec<u8>>,
    error: Option<knot_ctl::Error>,
}

/// Bytes per chunk of a [`BufferedZone`].
const CHUNK: usize = 1 << 20;

impl BufferedZone {
    /// `zone-read` of `zone`, kept whole.
    fn fetch<S: Read + Write>(client: &mut Client<S>, zone: String) -> Result<Self, RecordsError> {
        let stream = client
            .zone_read(&zone, None, None)
            .map_err(knot(format!("zone-read {zone}")))?;
        Ok(Self::read(zone, stream))
    }

    fn read<S: Read + Write>(zone: String, mut stream: RecordStream<'_, S>) -> Self {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut error = None;
        while let Some(r) = stream.next_ref() {
            match r {
                Ok(r) => push_record(&mut chunks, &r, CHUNK),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        BufferedZone {
            zone,
            chunks,
            error,
        }
    }

    fn into_records(self, context: String) -> BufferedRecords {
        BufferedRecords {
            zone: self,
            chunk: 0,
            pos: 0,
            context,
        }
    }
}

/// Appends `r` to the last of `chunks`, or to a new chunk of `chunk` bytes (more if `r` needs
/// it) when it does not fit.
fn push_record(chunks: &mut Vec<Vec<u8>>, r: &RecordRef<'_>, chunk: usize) {
    let len = 10 + r.owner.len() + r.rtype.len() + r.data.len();
    let last = match chunks.last_mut() {
        Some(c) if c.capacity() - c.len() >= len => c,
        _ => {
            chunks.push(Vec::with_capacity(len.max(chunk)));
            chunks.last_mut().expect("just pushed")
        }
    };
    last.extend_from_slice(&r.ttl.unwrap_or(0).to_le_bytes());
    for part in [r.owner, r.rtype, r.data] {
        // Items are at most 65535 bytes (their length is a u16 on the wire).
        last.extend_from_slice(&(part.len() as u16).to_le_bytes());
    }
    for part in [r.owner, r.rtype, r.data] {
        last.extend_from_slice(part.as_bytes());
    }
}

/// [`ZoneRecords`] over a [`BufferedZone`].
struct BufferedRecords {
    zone: BufferedZone,
    chunk: usize,
    pos: usize,
    context: String,
}

impl ZoneRecords for BufferedRecords {
    fn next_record(&mut self) -> Option<Result<CurrentRef<'_>, RecordsError>> {
        while self
            .zone
            .chunks
            .get(self.chunk)
            .is_some_and(|c| self.pos >= c.len())
        {
            self.chunk += 1;
            self.pos = 0;
        }
        let Some(b) = self.zone.chunks.get(self.chunk) else {
            return self.zone.error.take().map(|source| {
                Err(RecordsError::Knot {
                    context: self.context.clone(),
                    source,
                })
            });
        };
        let at = |i: usize| usize::from(u16::from_le_bytes([b[i], b[i + 1]]));
        let p = self.pos;
        let ttl = u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
        let (lo, lt, ld) = (at(p + 4), at(p + 6), at(p + 8));
        let start = p + 10;
        self.pos = start + lo + lt + ld;
        // Written from `str`s, so each part is valid UTF-8.
        let text =
            |from: usize, len: usize| std::str::from_utf8(&b[from..from + len]).unwrap_or("");
        Some(Ok(CurrentRef {
            owner: text(start, lo),
            ttl,
            rtype: text(start + lo, lt),
            data: text(start + lo + lt, ld),
        }))
    }
}

/// The whole path: validate, plan, check, apply. Nothing is sent when validation fails, a
/// zone conflicts, or the safety limit is exceeded (without `force`).
pub fn apply<S: Read + Write + Send>(
    client: &mut Client<S>,
    values: &Values,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, RecordsError> {
    apply_with(client, None, values, opts)
}

/// [`apply`], filling the zones' transactions side by side over more connections from
/// `connect` when knotd serves several at once ([`apply_plan_with`]).
pub fn apply_with<S: Read + Write + Send>(
    client: &mut Client<S>,
    connect: Option<Connector<'_, S>>,
    values: &Values,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, RecordsError> {
    let (desired, plan) = plan_from_knot(client, values)?;
    drop(desired);
    apply_plan_with(client, connect, plan, opts)
}

/// [`apply_with`] taking the values: their entries are dropped once validated, and the
/// validated state once planned, before Knot fills the transactions (at 100,000 records tens
/// of MB less at the peak). For the pod's post-start hook, which runs in Knot's container,
/// under its memory limit.
pub fn apply_values<S: Read + Write + Send>(
    client: &mut Client<S>,
    connect: Option<Connector<'_, S>>,
    mut values: Values,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, RecordsError> {
    let (desired, read) = validate_reading(client, &values);
    let (desired, read) = (desired?, read?);
    values.records = Vec::new();
    let (desired, plan) = plan_read(client, &values, desired, read)?;
    drop((desired, values));
    apply_plan_with(client, connect, plan, opts)
}

/// Opens another control connection to the same knotd.
pub type Connector<'a, S> = &'a (dyn Fn() -> Result<Client<S>, knot_ctl::Error> + Sync);

/// The first Knot version that serves several control connections at once (3.4.0): before
/// it, a second connection waits until the first is closed.
const CONCURRENT_CONTROL: (u32, u32) = (3, 4);

/// One zone's Knot operations: (unsets, sets).
pub type Ops<'p> = (Vec<RecordRef<'p>>, Vec<RecordRef<'p>>);

/// The Knot operations of one zone's plan: (unsets, sets), each in DNS canonical order of
/// owners ([`canonical_order`]). No record is set twice and none is unset twice: each RRset
/// appears in at most one change, and a change either unsets its whole RRset once or unsets each
/// removed record once.
pub fn zone_operations(zone: &ZonePlan) -> Ops<'_> {
    let mut unsets = Vec::new();
    let mut sets = Vec::new();
    for c in zone.changes.iter().chain(&zone.ownership_changes) {
        change_operations(c, &mut unsets, &mut sets);
    }
    canonical_order(&mut unsets);
    canonical_order(&mut sets);
    (unsets, sets)
}

/// Sorts `records` by owner in DNS canonical order (labels compared from the right), keeping
/// the order of records at one owner. The plan lists owners as text, where `0.1.10.in-addr.arpa.`
/// sorts between `0.0.10…` and `1.0.10…`, far from its siblings; knotd commits a transaction
/// filled in canonical order much faster (a third less time at 100,000 PTRs in Knot 3.2).
/// Only speed depends on this order, so an escaped dot (`\.`) is taken as a label end here.
///
/// This runs before the zone's first record is sent, so it is kept cheap: every owner's sort
/// key (its labels from the right, each ended by a zero byte) goes into one buffer, and the
/// records are sorted by the 16 bytes of their key after the part all keys share (the zone's
/// own labels), the rest of the key deciding only between equal prefixes.
pub fn canonical_order(records: &mut [RecordRef<'_>]) {
    if records.len() < 2 {
        return;
    }
    let mut keys: Vec<u8> = Vec::with_capacity(records.iter().map(|r| r.owner.len() + 2).sum());
    let mut ends: Vec<usize> = Vec::with_capacity(records.len());
    for r in records.iter() {
        for label in r.owner.trim_end_matches('.').rsplit('.') {
            keys.extend_from_slice(label.as_bytes());
            keys.push(0);
        }
        ends.push(keys.len());
    }
    let key = |i: usize| &keys[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let first = key(0);
    let shared = (1..records.len())
        .map(|i| first.iter().zip(key(i)).take_while(|(a, b)| a == b).count())
        .min()
        .unwrap_or(0);
    let order = super::order::positions(
        records.len(),
        |i| u128::from_be_bytes(super::order::leading(&key(i)[shared..])),
        |i| &key(i)[shared..],
    );
    let sorted: Vec<RecordRef<'_>> = order.iter().map(|&i| records[i as usize]).collect();
    records.copy_from_slice(&sorted);
}

fn change_operations<'p>(
    c: &'p RrsetChange,
    unsets: &mut Vec<RecordRef<'p>>,
    sets: &mut Vec<RecordRef<'p>>,
) {
    let record = |ttl: Option<u32>, data: &'p str| RecordRef {
        owner: &c.owner,
        ttl,
        rtype: &c.rtype,
        data,
    };
    if c.replaces_whole() {
        unsets.push(record(None, ""));
        if c.new_ttl.is_some() {
            for d in c.keep.iter().chain(&c.add) {
                sets.push(record(c.new_ttl, d));
            }
        }
    } else {
        for d in &c.remove {
            unsets.push(record(None, d));
        }
        for d in &c.add {
            sets.push(record(Some(c.new_ttl.unwrap_or(0)), d));
        }
    }
}

/// Applies `plan`: refuses conflicts and (unless `force`) plans over the safety limit; then one
/// transaction per zone with changes, all opened and filled before any is committed; any error
/// aborts every open transaction, so those zones stay as they were. Changed zones are flushed.
/// An empty plan sends nothing at all (serials stay the same).
pub fn apply_plan<S: Read + Write + Send>(
    client: &mut Client<S>,
    plan: Plan,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, RecordsError> {
    apply_plan_with(client, None, plan, opts)
}

/// [`apply_plan`]; with `connect`, and a knotd that serves several control connections at
/// once (Knot 3.4 and later), the zones' transactions are filled side by side, one extra
/// connection per CPU, so that knotd parses several zones' records at the same time, and then
/// committed side by side. All are filled before any commit and a failure while filling
/// aborts them all, as one after the other; a failed commit is reported with the zones that
/// were committed beside it (one after the other, the zones after it are not committed).
pub fn apply_plan_with<S: Read + Write + Send>(
    client: &mut Client<S>,
    connect: Option<Connector<'_, S>>,
    mut plan: Plan,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, RecordsError> {
    plan.assess(&opts.limit, opts.force);
    let Applied { committed, aborted } = apply_assessed(client, connect, &plan, opts)?;
    Ok(ApplyOutcome {
        plan,
        committed,
        aborted,
    })
}

/// What [`apply_assessed`] did.
#[derive(Debug)]
pub struct Applied {
    /// Zones whose transaction was committed.
    pub committed: Vec<String>,
    /// Transactions an interrupted dnsdhcp had left open, aborted before this apply.
    pub aborted: Vec<crate::txn::Aborted>,
}

/// [`apply_plan_with`] for a plan already assessed with `opts` ([`Plan::assess`]) that stays
/// the caller's, who may read it meanwhile (the CLI renders it while Knot works).
pub fn apply_assessed<S: Read + Write + Send>(
    client: &mut Client<S>,
    connect: Option<Connector<'_, S>>,
    plan: &Plan,
    opts: &ApplyOptions,
) -> Result<Applied, RecordsError> {
    check_conflicts(plan)?;
    if !opts.force {
        opts.limit.check(plan)?;
    }
    let work: Vec<&ZonePlan> = plan.zones.iter().filter(|z| !z.is_empty()).collect();
    // Transactions an interrupted dnsdhcp left open are aborted; anyone else's refuses.
    let names: Vec<&str> = work.iter().map(|z| z.zone.as_str()).collect();
    let aborted = if names.is_empty() {
        Vec::new()
    } else {
        crate::txn::clear_abandoned(client, &names)?
    };

    let mut side = match connect {
        Some(connect) if work.len() > 1 => side_connections(client, connect, work.len()),
        _ => Vec::new(),
    };
    let (open, result) = if side.is_empty() {
        fill_transactions(client, &work)
    } else {
        fill_side_by_side(client, &mut side, &work)
    };
    if let Err((zone, message)) = result {
        let zones: Vec<String> = open.iter().map(|(z, _)| z.clone()).collect();
        abort_all(client, &zones);
        return Err(RecordsError::Transaction {
            zone,
            message,
            applied: Vec::new(),
        });
    }

    let committed = if side.is_empty() {
        commit_in_order(client, &open)?
    } else {
        commit_side_by_side(client, &mut side, &open)?
    };
    drop(side);
    for zone in &committed {
        client
            .zone_flush(Some(zone), &FlushOptions::default())
            .map_err(knot(format!("zone-flush {zone}")))?;
    }
    Ok(Applied { committed, aborted })
}

/// Commits the filled transactions one after the other; the first failure aborts it and every
/// transaction not yet committed. Returns the zones committed.
fn commit_in_order<S: Read + Write>(
    client: &mut Client<S>,
    open: &[(String, Record)],
) -> Result<Vec<String>, RecordsError> {
    let mut committed = Vec::new();
    for (i, (zone, marker)) in open.iter().enumerate() {
        if let Err(e) = client.zone_commit_unmarking(zone, marker) {
            // A failed commit (e.g. a semantic check) leaves the transaction open: abort it and
            // every transaction not yet committed.
            let rest: Vec<String> = open[i..].iter().map(|(z, _)| z.clone()).collect();
            abort_all(client, &rest);
            return Err(RecordsError::Transaction {
                zone: zone.clone(),
                message: format!("zone-commit: {e}"),
                applied: committed,
            });
        }
        committed.push(zone.clone());
    }
    Ok(committed)
}

/// Commits the transactions filled by [`fill_side_by_side`] at once, each on the connection
/// that filled it (knotd commits them side by side). A failed commit is aborted and reported
/// with the zones that were committed nonetheless.
fn commit_side_by_side<S: Read + Write + Send>(
    client: &mut Client<S>,
    side: &mut [Client<S>],
    open: &[(String, Record)],
) -> Result<Vec<String>, RecordsError> {
    let results = on_connections(client, side, open.len(), |conn, i| {
        conn.zone_commit_unmarking(&open[i].0, &open[i].1)
    });
    let mut committed = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut first_error = None;
    for (i, result) in results.into_iter().enumerate() {
        let zone = open[i].0.clone();
        match result {
            Ok(()) => committed.push(zone),
            Err(e) => {
                first_error.get_or_insert_with(|| (zone.clone(), e));
                failed.push(zone);
            }
        }
    }
    match first_error {
        None => Ok(committed),
        Some((zone, e)) => {
            // A failed commit leaves its transaction open.
            abort_all(client, &failed);
            Err(RecordsError::Transaction {
                zone,
                message: format!("zone-commit: {e}"),
                applied: committed,
            })
        }
    }
}

/// The transactions opened (zone, marker) and the first failure (zone, message).
type Filled = (Vec<(String, Record)>, Result<(), (String, String)>);

/// Opens one marked transaction per zone ([`crate::txn`]) and sends its changes, zone after
/// zone; stops at the first failure. While knotd takes a zone's records, the next zone's
/// operations ([`zone_operations`]) are prepared on another thread, so that knotd does not
/// wait for them between zones.
fn fill_transactions<S: Read + Write>(client: &mut Client<S>, work: &[&ZonePlan]) -> Filled {
    let Some((first, later)) = work.split_first() else {
        return (Vec::new(), Ok(()));
    };
    let first_ops = zone_operations(first);
    std::thread::scope(|scope| {
        // One zone ahead at most: the operations are a vector of references per record.
        let (ready, next_ops) = std::sync::mpsc::sync_channel(1);
        let preparing = scope.spawn(move || {
            for z in later {
                if ready.send(zone_operations(z)).is_err() {
                    break; // a zone failed: no more are filled
                }
            }
        });
        let mut open = Vec::new();
        let mut outcome = Ok(());
        let mut ops = Some(first_ops);
        for z in work {
            let Some(these) = ops.take().or_else(|| next_ops.recv().ok()) else {
                break; // the thread panicked: resumed below
            };
            let (opened, result) = fill_zone(client, z, &these);
            open.extend(opened);
            if let Err(message) = result {
                outcome = Err((z.zone.clone(), message));
                break;
            }
        }
        drop(next_ops);
        preparing
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (open, outcome)
    })
}

/// More connections to knotd for [`fill_side_by_side`]: none unless knotd serves several
/// at once; at most one per CPU besides `client`, and never more than the zones need.
fn side_connections<S: Read + Write>(
    client: &mut Client<S>,
    connect: Connector<'_, S>,
    zones: usize,
) -> Vec<Client<S>> {
    let Ok(v) = client.version() else {
        return Vec::new();
    };
    if (v.major, v.minor) < CONCURRENT_CONTROL {
        return Vec::new();
    }
    let want = super::par::workers().min(zones).saturating_sub(1);
    (0..want).map_while(|_| connect().ok()).collect()
}

/// `f(connection, i)` for every `i` in `0..n`, item `i` on connection `i % connections` of
/// `client` and `side`, each connection on its own thread; the results in item order.
fn on_connections<S: Read + Write + Send, R: Send>(
    client: &mut Client<S>,
    side: &mut [Client<S>],
    n: usize,
    f: impl Fn(&mut Client<S>, usize) -> R + Sync,
) -> Vec<R> {
    let mut conns: Vec<&mut Client<S>> = std::iter::once(client).chain(side.iter_mut()).collect();
    let k = conns.len();
    let f = &f;
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(t, conn)| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(k)
                        .map(|i| (i, f(conn, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// [`fill_transactions`] over `client` and `side` at once: zone `i` on connection
/// `i % connections`, each connection on its own thread. Every zone is tried; the first
/// failure in zone order is reported.
fn fill_side_by_side<S: Read + Write + Send>(
    client: &mut Client<S>,
    side: &mut [Client<S>],
    work: &[&ZonePlan],
) -> Filled {
    let results = on_connections(client, side, work.len(), |conn, i| {
        fill_zone(conn, work[i], &zone_operations(work[i]))
    });
    let mut open = Vec::new();
    let mut first_error = None;
    for (i, (opened, result)) in results.into_iter().enumerate() {
        open.extend(opened);
        if let (Err(message), None) = (result, &first_error) {
            first_error = Some((work[i].zone.clone(), message));
        }
    }
    (open, first_error.map_or(Ok(()), Err))
}

/// Opens `z`'s marked transaction and sends its unsets, then its sets (`ops`, from
/// [`zone_operations`]). Returns the opened transaction (zone, marker), if it was opened, and
/// the failure, if any.
fn fill_zone<S: Read + Write>(
    client: &mut Client<S>,
    z: &ZonePlan,
    ops: &Ops<'_>,
) -> (Option<(String, Record)>, Result<(), String>) {
    let (txn, marker) = match crate::txn::begin(client, &z.zone) {
        Ok(t) => t,
        Err(e) => return (None, Err(format!("zone-begin: {e}"))),
    };
    txn.detach();
    let opened = Some((z.zone.clone(), marker));
    (opened, send_changes(client, z, ops))
}

/// Sends one zone's operations into its open transaction.
fn send_changes<S: Read + Write>(
    client: &mut Client<S>,
    z: &ZonePlan,
    (unsets, sets): &Ops<'_>,
) -> Result<(), String> {
    let refused = client
        .zone_unset_batch_ref(&z.zone, unsets)
        .map_err(|e| format!("zone-unset: {e}"))?;
    if let Some(r) = refused.first() {
        return Err(format!(
            "zone-unset {} refused: {} ({} refusal(s))",
            unsets[r.index],
            r.error,
            refused.len()
        ));
    }
    let refused = client
        .zone_set_batch_ref(&z.zone, sets)
        .map_err(|e| format!("zone-set: {e}"))?;
    if let Some(r) = refused.first() {
        return Err(format!(
            "zone-set {} refused: {} ({} refusal(s))",
            sets[r.index],
            r.error,
            refused.len()
        ));
    }
    Ok(())
}

fn abort_all<S: Read + Write>(client: &mut Client<S>, zones: &[String]) {
    for zone in zones {
        let _ = client.zone_abort(zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(owner: &'a str, data: &'a str) -> RecordRef<'a> {
        RecordRef {
            owner,
            ttl: Some(60),
            rtype: "PTR",
            data,
        }
    }

    #[test]
    fn operations_go_out_in_canonical_order_keeping_each_owners_records_in_order() {
        let mut records = vec![
            rec("0.1.10.in-addr.arpa.", "a."),
            rec("1.0.10.in-addr.arpa.", "b."),
            rec("0.0.10.in-addr.arpa.", "c2."),
            rec("10.in-addr.arpa.", "apex."),
            rec("0.0.10.in-addr.arpa.", "c1."),
            rec("10.0.10.in-addr.arpa.", "d."),
        ];
        canonical_order(&mut records);
        let data: Vec<&str> = records.iter().map(|r| r.data).collect();
        assert_eq!(data, ["apex.", "c2.", "c1.", "b.", "d.", "a."]);
        // Already in order (single-label owners sorted as text): left as it is.
        let mut forward = vec![rec("a.home.arpa.", "1"), rec("b.home.arpa.", "2")];
        canonical_order(&mut forward);
        assert_eq!(forward[0].data, "1");
    }

    #[test]
    fn a_buffered_zone_gives_back_its_records_across_chunks() {
        let owners: Vec<String> = (0..50).map(|i| format!("h{i}.home.arpa.")).collect();
        let data = "x".repeat(70);
        let records: Vec<RecordRef<'_>> = owners
            .iter()
            .enumerate()
            .map(|(i, o)| RecordRef {
                owner: o,
                ttl: Some(i as u32),
                rtype: if i % 2 == 0 { "A" } else { "TXT" },
                data: if i == 7 { &data } else { "10.0.0.1" },
            })
            .collect();
        let mut chunks = Vec::new();
        for r in &records {
            push_record(&mut chunks, r, 64);
        }
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        let zone = BufferedZone {
            zone: "home.arpa.".into(),
            chunks,
            error: None,
        };
        let mut read = zone.into_records("zone-read home.arpa.".into());
        for r in &records {
            let got = read.next_record().expect("a record").expect("no error");
            assert_eq!(
                (got.owner, Some(got.ttl), got.rtype, got.data),
                (r.owner, r.ttl, r.rtype, r.data)
            );
        }
        assert!(read.next_record().is_none());
    }

    /// The order of labels compared from the right, as text: what [`canonical_order`] must
    /// give, whatever the owners' lengths and shared parts.
    #[test]
    fn canonical_order_matches_comparing_labels_from_the_right() {
        let labels = [
            "",
            "a",
            "b",
            "ab",
            "a-long-label-past-sixteen-bytes",
            "_x",
            "0",
            "10",
            "9",
        ];
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for zone in ["home.arpa.", "10.in-addr.arpa.", "."] {
            for round in 0..200 {
                let owners: Vec<String> = (0..1 + round % 40)
                    .map(|_| {
                        let depth = next(4);
                        let mut owner: Vec<&str> = (0..depth)
                            .map(|_| labels[1 + next(labels.len() - 1)])
                            .collect();
                        owner.push(zone);
                        owner.join(".").replace("..", ".")
                    })
                    .collect();
                let mut records: Vec<RecordRef<'_>> = owners
                    .iter()
                    .enumerate()
                    .map(|(i, o)| RecordRef {
                        owner: o,
                        ttl: Some(i as u32),
                        rtype: "A",
                        data: "",
                    })
                    .collect();
                let mut expected = records.clone();
                expected.sort_by(|a, b| {
                    let l = |o: &str| -> Vec<String> {
                        o.trim_end_matches('.')
                            .rsplit('.')
                            .map(str::to_owned)
                            .collect()
                    };
                    l(a.owner).cmp(&l(b.owner))
                });
                canonical_order(&mut records);
                assert_eq!(records, expected, "zone {zone}, round {round}");
            }
        }
    }
}
