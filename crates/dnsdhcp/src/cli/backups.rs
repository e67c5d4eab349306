//! `dnsdhcp backups list|prune URL`, and the store plumbing `backup --to`, `restore --from`
//! and `verify URL` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use dnsdhcp::archive::ArchiveKind;
use dnsdhcp::kube;
use dnsdhcp::store::retention::Policy;
use dnsdhcp::store::{Entry, Identities, RemoteCheck, Store, StoreUrl};

use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum BackupsCommand {
    /// The backups in a store: time, kind, source, size, zones/records/leases (read from the
    /// manifests stored beside the archives; no key needed for encrypted ones).
    List(ListArgs),
    /// Forget old backups as restic's `forget` does, per source and kind; the newest backup
    /// that verifies is never removed.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The store: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///dir.
    url: String,
    /// Print JSON (one object per backup: the stored entry with its manifest).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The store.
    url: String,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    keys: IdentityArgs,
    /// Print the plan and outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// A retention policy (restic `forget` semantics; 0 turns a rule off).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Retention")]
pub struct RetentionArgs {
    /// Keep the newest N backups.
    #[arg(long, value_name = "N", default_value_t = 0, env = "DNSDHCP_KEEP_LAST")]
    keep_last: usize,
    /// Keep the newest backup of each of the last N hours that have one.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DNSDHCP_KEEP_HOURLY"
    )]
    keep_hourly: usize,
    /// ... of each of the last N days.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DNSDHCP_KEEP_DAILY"
    )]
    keep_daily: usize,
    /// ... of each of the last N ISO weeks.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DNSDHCP_KEEP_WEEKLY"
    )]
    keep_weekly: usize,
    /// ... of each of the last N months.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DNSDHCP_KEEP_MONTHLY"
    )]
    keep_monthly: usize,
}

impl RetentionArgs {
    /// The policy these flags give.
    pub fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
}

/// Private keys for encrypted backups.
#[derive(Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// age identity file or unencrypted SSH private key that decrypts the backups
    /// (repeatable).
    #[arg(
        long = "identity",
        short = 'i',
        value_name = "FILE",
        env = "DNSDHCP_IDENTITY_FILE"
    )]
    pub identity: Vec<PathBuf>,
}

impl IdentityArgs {
    /// The identities, if any were given.
    pub fn read(&self) -> Result<Option<Identities>> {
        if self.identity.is_empty() {
            return Ok(None);
        }
        Ok(Some(Identities::read(&self.identity)?))
    }
}

/// Where `backup --to` sends archives, and how.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Object storage")]
pub struct UploadArgs {
    /// Upload the archives to this store (s3://bucket/prefix, gs://, az://, file:///dir).
    /// Settings in the URL's query: s3:// endpoint=URL, region=R, path-style=true|false;
    /// gs:// endpoint=URL, anonymous=true; az:// endpoint=URL, account=NAME, emulator=true
    /// (Azurite: its development account and key unless others are given). Credentials from
    /// the standard AWS, Google and Azure environments (and ~/.aws files), never the URL.
    #[arg(long = "to", value_name = "URL", env = "DNSDHCP_BACKUP_TO")]
    pub to: Option<String>,
    /// Encrypt before upload to this age (age1...) or SSH public key, or every key in this
    /// file (repeatable; any one key decrypts).
    #[arg(
        long = "recipient",
        short = 'r',
        value_name = "KEY|FILE",
        env = "DNSDHCP_BACKUP_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// Refuse to upload a full Knot archive (it holds DNSSEC private keys) unencrypted.
    #[arg(long, env = "DNSDHCP_REQUIRE_ENCRYPTION")]
    pub require_encryption: bool,
}

/// Runs `backups list|prune`.
pub fn run(cmd: BackupsCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    match cmd {
        BackupsCommand::List(a) => {
            let store = open(&a.url)?;
            let entries = kube::block_on(store.list())?;
            if a.json {
                ctx.out.report_items("backups-list", &entries)?;
            } else if entries.is_empty() {
                ctx.out.line(format!("no backups in {}", store.url()));
            } else {
                for e in &entries {
                    ctx.out.line(entry_line(e));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupsCommand::Prune(a) => {
            let store = open(&a.url)?;
            let policy = a.retention.policy();
            let ids = a.keys.read()?;
            let outcome = kube::block_on(store.prune(&policy, a.dry_run, ids.as_ref()))?;
            if a.json {
                ctx.out.report("backups-prune", &outcome)?;
                return Ok(ExitCode::SUCCESS);
            }
            for c in outcome.checks.iter().filter(|c| !c.ok) {
                ctx.out
                    .line(format!("does not verify: {}", check_summary(c)));
            }
            for d in &outcome.decisions {
                let verb = match (d.keep, outcome.dry_run) {
                    (true, _) => "keep  ",
                    (false, true) => "would remove",
                    (false, false) => "remove",
                };
                let why = if d.keep {
                    format!(" ({})", d.reasons.join(", "))
                } else {
                    String::new()
                };
                ctx.out.line(format!("{verb} {}{why}", d.name));
            }
            let gone = outcome.decisions.iter().filter(|d| !d.keep).count();
            ctx.out.line(if outcome.dry_run {
                format!("dry run: {gone} backup(s) would be removed")
            } else {
                format!("removed {} backup(s)", outcome.removed.len())
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens the store a URL names.
pub fn open(url: &str) -> Result<Store> {
    Ok(Store::open(&StoreUrl::parse(url)?)?)
}

/// True when `s` looks like a store URL rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

fn entry_line(e: &Entry) -> String {
    let m = &e.manifest;
    let what = match m.kind {
        ArchiveKind::Leases => format!("{} lease(s)", m.lease_count),
        _ => format!("{} zone(s), {} record(s)", m.zones.len(), m.record_count()),
    };
    let enc = if e.encryption.is_some() {
        ", encrypted"
    } else {
        ""
    };
    format!(
        "{}  {:<10} {:<28} {:>12} B  {what}{enc}  {}",
        m.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        m.kind.to_string(),
        m.source,
        e.size,
        e.name
    )
}

fn check_summary(c: &RemoteCheck) -> String {
    let mut problems = c.problems.clone();
    if let Some(r) = &c.report {
        problems.extend(r.problems.iter().map(|p| p.to_string()));
    }
    format!("{}: {}", c.name, problems.join("; "))
}

/// One line for an uploaded backup.
pub fn uploaded_line(store: &Store, e: &Entry) -> String {
    let enc = match &e.encryption {
        Some(x) => format!(", encrypted to {} recipient(s)", x.recipients.len()),
        None => String::new(),
    };
    format!(
        "uploaded {}/{} ({} bytes{enc})",
        store.url(),
        e.name,
        e.size
    )
}

/// Downloads the backup of `kinds` that `name` addresses (`latest`: the newest) into `dir`,
/// checked against its entry; the caller verifies the archive before using it.
pub fn fetch(
    store: &Store,
    kinds: &[ArchiveKind],
    name: &str,
    dir: &Path,
    ids: Option<&Identities>,
) -> Result<(PathBuf, Entry)> {
    let name = (name != "latest").then_some(name);
    let entry = kube::block_on(store.find(kinds, name, None))?;
    let d = kube::block_on(store.download(&entry, dir, ids))?;
    Ok((d.path, d.entry))
}

/// `verify URL`: every backup under the URL's prefix, or the one backup the URL names.
pub fn verify_url(url: &str, ids: Option<&Identities>) -> Result<Vec<RemoteCheck>> {
    let parsed = StoreUrl::parse(url)?;
    // A URL naming one backup: its parent holds an entry of that name.
    if let Some((parent, last)) = parsed.split_last() {
        let store = Store::open(&parent)?;
        let entries = kube::block_on(store.list())?;
        if let Some(e) = entries.iter().find(|e| e.is_named(&last)) {
            return Ok(vec![kube::block_on(store.check(e, ids))]);
        }
    }
    let store = Store::open(&parsed)?;
    let entries = kube::block_on(store.list())?;
    if entries.is_empty() {
        anyhow::bail!("no backups in {url}");
    }
    Ok(entries
        .iter()
        .map(|e| kube::block_on(store.check(e, ids)))
        .collect())
}

/// One line per check, for `verify URL`.
pub fn check_line(c: &RemoteCheck) -> String {
    if !c.ok {
        return format!("FAILED {}", check_summary(c));
    }
    if !c.contents_checked {
        return format!(
            "OK (checksum only: encrypted, give --identity to verify the contents) {}",
            c.name
        );
    }
    let r = c.report.as_ref().expect("contents checked");
    format!(
        "OK {}: {} zone(s), {} record(s), {} lease(s)",
        c.name,
        r.zones.len(),
        r.records,
        r.lease_count
    )
}
