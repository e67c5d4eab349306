//! `dnsdhcp agent`: backups on a cron schedule, each verified, uploaded to object storage and
//! then pruned, with Prometheus metrics (`/metrics`) and a liveness endpoint (`/healthz`).
//!
//! One run: for each kind (zones, leases) back up into a scratch directory, verify the archive,
//! upload it, record the outcome in [`Metrics`]; then apply the retention policy. A failing kind
//! is counted and logged, and the next run starts on schedule.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::archive::{ArchiveKind, ZoneFacts};
use crate::backup::{self, Written};
use crate::restore;
use crate::store::retention::Policy;
use crate::store::{Recipients, Store};
use crate::target::LocalTarget;

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The schedule is not a cron expression.
    #[error("schedule {schedule:?}: {reason}")]
    Schedule {
        /// The expression.
        schedule: String,
        /// Why it was refused.
        reason: String,
    },
    /// The metrics endpoint cannot listen.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A cron schedule: five fields (minute hour day month weekday) or six with seconds first.
#[derive(Clone, Debug)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a cron expression.
    pub fn parse(s: &str) -> Result<Schedule, AgentError> {
        let cron: croner::Cron =
            s.parse()
                .map_err(|e: croner::errors::CronError| AgentError::Schedule {
                    schedule: s.to_owned(),
                    reason: e.to_string(),
                })?;
        Ok(Schedule {
            text: s.to_owned(),
            cron,
        })
    }

    /// The first time strictly after `after` (UTC).
    pub fn next_after(&self, after: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let z = after.to_zoned(jiff::tz::TimeZone::UTC);
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What the agent does on each run.
pub struct AgentConfig {
    /// The daemons (in the pod: the shared sockets and the lease volume).
    pub target: LocalTarget,
    /// When.
    pub schedule: Schedule,
    /// Back up zones.
    pub zones: bool,
    /// Back up leases.
    pub leases: bool,
    /// Where the archives go.
    pub store: Store,
    /// Encrypt to these (none: plain).
    pub recipients: Recipients,
    /// Refuse plain-text full Knot archives.
    pub require_encryption: bool,
    /// Retention after each run (`None`: keep everything).
    pub policy: Option<Policy>,
    /// Where archives are written before upload (emptied after each run).
    pub scratch: PathBuf,
}

/// Per-kind figures of the last runs.
#[derive(Clone, Debug, Default)]
struct KindStats {
    last_success: Option<f64>,
    last_duration: Option<f64>,
    archive_bytes: Option<u64>,
    successes: u64,
    failures: u64,
}

#[derive(Debug, Default)]
struct State {
    zones: KindStats,
    leases: KindStats,
    zone_facts: Vec<ZoneFacts>,
    lease_count: Option<u64>,
    pruned: u64,
    prune_failures: u64,
    next_run: Option<f64>,
    interval: Option<f64>,
}

/// The agent's metrics, shared between the scheduler and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let s = self.state.lock().expect("metrics lock");
        let mut o = String::new();
        let kinds = [("zones", &s.zones), ("leases", &s.leases)];
        let mut family = |name: &str, help: &str, kind: &str, values: Vec<(String, String)>| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in values {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        let per_kind = |f: &dyn Fn(&KindStats) -> Option<String>| {
            kinds
                .iter()
                .filter_map(|(k, st)| f(st).map(|v| (format!("{{kind=\"{k}\"}}"), v)))
                .collect::<Vec<_>>()
        };
        family(
            "dnsdhcp_backup_last_success_timestamp_seconds",
            "When the last backup of this kind was uploaded (Unix time).",
            "gauge",
            per_kind(&|st| st.last_success.map(|v| v.to_string())),
        );
        family(
            "dnsdhcp_backup_last_duration_seconds",
            "How long the last successful backup of this kind took (backup, verify, upload).",
            "gauge",
            per_kind(&|st| st.last_duration.map(|v| v.to_string())),
        );
        family(
            "dnsdhcp_backup_archive_bytes",
            "Size of the last uploaded archive of this kind.",
            "gauge",
            per_kind(&|st| st.archive_bytes.map(|v| v.to_string())),
        );
        family(
            "dnsdhcp_backup_success_total",
            "Backups of this kind uploaded.",
            "counter",
            per_kind(&|st| Some(st.successes.to_string())),
        );
        family(
            "dnsdhcp_backup_failures_total",
            "Backups of this kind that failed (backup, verify or upload).",
            "counter",
            per_kind(&|st| Some(st.failures.to_string())),
        );
        family(
            "dnsdhcp_backup_zone_serial",
            "SOA serial of each zone in the last zone backup.",
            "gauge",
            s.zone_facts
                .iter()
                .map(|z| (format!("{{zone=\"{}\"}}", z.name), z.serial.to_string()))
                .collect(),
        );
        family(
            "dnsdhcp_backup_zone_records",
            "Records of each zone in the last zone backup.",
            "gauge",
            s.zone_facts
                .iter()
                .map(|z| (format!("{{zone=\"{}\"}}", z.name), z.records.to_string()))
                .collect(),
        );
        family(
            "dnsdhcp_backup_leases",
            "Leases in the last lease backup.",
            "gauge",
            s.lease_count
                .map(|n| vec![(String::new(), n.to_string())])
                .unwrap_or_default(),
        );
        family(
            "dnsdhcp_backup_pruned_total",
            "Backups removed by the retention policy.",
            "counter",
            vec![(String::new(), s.pruned.to_string())],
        );
        family(
            "dnsdhcp_backup_prune_failures_total",
            "Retention runs that failed.",
            "counter",
            vec![(String::new(), s.prune_failures.to_string())],
        );
        family(
            "dnsdhcp_agent_schedule_interval_seconds",
            "Time between the next two scheduled runs (alerts compare backup age with it).",
            "gauge",
            s.interval
                .map(|t| vec![(String::new(), t.to_string())])
                .unwrap_or_default(),
        );
        family(
            "dnsdhcp_agent_next_run_timestamp_seconds",
            "When the next scheduled run starts (Unix time).",
            "gauge",
            s.next_run
                .map(|t| vec![(String::new(), t.to_string())])
                .unwrap_or_default(),
        );
        o
    }

    fn record(&self, kind: &str, f: impl FnOnce(&mut KindStats, &mut State)) {
        let mut s = self.state.lock().expect("metrics lock");
        let mut st = if kind == "zones" {
            std::mem::take(&mut s.zones)
        } else {
            std::mem::take(&mut s.leases)
        };
        f(&mut st, &mut s);
        if kind == "zones" {
            s.zones = st;
        } else {
            s.leases = st;
        }
    }
}

/// Log lines go through this (the CLI prints them).
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// Runs forever: waits for each scheduled time, then [`run_once`].
pub async fn run(cfg: Arc<AgentConfig>, metrics: Arc<Metrics>, log: Log) {
    loop {
        let now = jiff::Timestamp::now();
        let Some(next) = cfg.schedule.next_after(now) else {
            log(format!(
                "schedule {} has no next time; stopping",
                cfg.schedule
            ));
            return;
        };
        {
            let mut s = metrics.state.lock().expect("metrics lock");
            s.next_run = Some(seconds(next));
            s.interval = cfg
                .schedule
                .next_after(next)
                .map(|after| seconds(after) - seconds(next));
        }
        let wait = now.duration_until(next).unsigned_abs();
        tokio::time::sleep(wait).await;
        run_once(&cfg, &metrics, &log).await;
    }
}

/// One run: back up, verify and upload each kind, then prune.
pub async fn run_once(cfg: &Arc<AgentConfig>, metrics: &Metrics, log: &Log) {
    for (kind, wanted) in [("zones", cfg.zones), ("leases", cfg.leases)] {
        if !wanted {
            continue;
        }
        let started = Instant::now();
        match backup_one(cfg, kind).await {
            Ok((written, size)) => {
                let secs = started.elapsed().as_secs_f64();
                log(format!(
                    "{kind}: uploaded {} ({size} bytes) in {secs:.2} s",
                    written
                        .path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                ));
                metrics.record(kind, |st, s| {
                    st.last_success = Some(seconds(jiff::Timestamp::now()));
                    st.last_duration = Some(secs);
                    st.archive_bytes = Some(size);
                    st.successes += 1;
                    match written.manifest.kind {
                        ArchiveKind::Leases => s.lease_count = Some(written.manifest.lease_count),
                        _ => s.zone_facts = written.manifest.zones.clone(),
                    }
                });
            }
            Err(e) => {
                log(format!("{kind}: backup failed: {e:#}"));
                metrics.record(kind, |st, _| st.failures += 1);
            }
        }
    }
    if let Some(policy) = &cfg.policy {
        match cfg.store.prune(policy, false, None).await {
            Ok(outcome) => {
                if !outcome.removed.is_empty() {
                    log(format!("pruned {}", outcome.removed.join(", ")));
                }
                metrics.state.lock().expect("metrics lock").pruned += outcome.removed.len() as u64;
            }
            Err(e) => {
                log(format!("prune failed: {e}"));
                metrics.state.lock().expect("metrics lock").prune_failures += 1;
            }
        }
    }
}

/// Backs up one kind into a fresh scratch directory, verifies and uploads the archive.
async fn backup_one(cfg: &Arc<AgentConfig>, kind: &str) -> anyhow::Result<(Written, u64)> {
    std::fs::create_dir_all(&cfg.scratch)?;
    let dir = tempfile::Builder::new()
        .prefix(".agent-")
        .tempdir_in(&cfg.scratch)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // knotd (possibly another user) writes its backup into a directory inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    }
    let (c, path, zones) = (cfg.clone(), dir.path().to_owned(), kind == "zones");
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<Written> {
        let w = if zones {
            backup::backup_zones(&c.target, &path)?.full
        } else {
            backup::backup_leases(&c.target, &path)?.archive
        };
        restore::verified(&w.path)?;
        Ok(w)
    })
    .await??;
    let entry = cfg
        .store
        .upload(
            &written.path,
            &written.manifest,
            &cfg.recipients,
            cfg.require_encryption,
        )
        .await?;
    Ok((written, entry.size))
}

/// Serves `/metrics` and `/healthz` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // The request line is all that matters; read until the end of the headers.
            while n < buf.len() {
                match sock.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(),
                ),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds the metrics endpoint.
pub async fn listen(addr: &str) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_with_and_without_seconds() {
        let t: jiff::Timestamp = "2026-01-01T10:07:00Z".parse().unwrap();
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(t).unwrap().to_string(),
            "2026-01-01T11:00:00Z"
        );
        let fast = Schedule::parse("*/5 * * * * *").unwrap();
        assert_eq!(
            fast.next_after(t).unwrap().to_string(),
            "2026-01-01T10:07:05Z"
        );
        let e = Schedule::parse("every hour").unwrap_err().to_string();
        assert!(e.contains("every hour"), "{e}");
    }

    #[test]
    fn metrics_render_in_prometheus_text_format() {
        let m = Metrics::default();
        m.record("zones", |st, s| {
            st.last_success = Some(1767261600.5);
            st.successes = 1;
            s.zone_facts = vec![ZoneFacts {
                name: "example.com.".into(),
                file: "zonefiles/example.com.zone".into(),
                serial: 7,
                records: 12,
                apex_from_target: false,
            }];
        });
        m.record("leases", |st, _| st.failures = 2);
        let text = m.render();
        for line in [
            "dnsdhcp_backup_last_success_timestamp_seconds{kind=\"zones\"} 1767261600.5",
            "dnsdhcp_backup_failures_total{kind=\"leases\"} 2",
            "dnsdhcp_backup_success_total{kind=\"zones\"} 1",
            "dnsdhcp_backup_zone_serial{zone=\"example.com.\"} 7",
            "dnsdhcp_backup_zone_records{zone=\"example.com.\"} 12",
            "# TYPE dnsdhcp_backup_failures_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("dnsdhcp_backup_leases ")),
            "no lease backup yet:\n{text}"
        );
    }
}
