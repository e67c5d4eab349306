//! `dnsdhcp agent`: scheduled backups to object storage, with metrics.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use clap::error::ErrorKind;

use dnsdhcp::agent::{self, AgentConfig, Metrics, Schedule};
use dnsdhcp::kube;
use dnsdhcp::store::Recipients;
use dnsdhcp::target::Target;

use super::Ctx;
use super::backup::What;
use super::backups::{self, RetentionArgs, UploadArgs};
use super::target::TargetArgs;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// When to back up: a cron expression, five fields (minute hour day month weekday) or six
    /// with seconds first; UTC. Without it and without --to the agent only serves /healthz
    /// (the chart's container when scheduled backups are off: the Kubernetes target runs its
    /// in-pod work there).
    #[arg(long, env = "DNSDHCP_BACKUP_SCHEDULE", value_name = "CRON")]
    schedule: Option<String>,
    /// What to back up.
    #[arg(long, value_enum, env = "DNSDHCP_BACKUP_WHAT", default_value = "all")]
    what: What,
    /// Serve /metrics and /healthz here.
    #[arg(
        long,
        env = "DNSDHCP_METRICS_LISTEN",
        default_value = "0.0.0.0:9464",
        value_name = "ADDR"
    )]
    listen: String,
    /// Where archives are written before upload (a directory inside is created and removed
    /// for every run).
    #[arg(
        long,
        env = "DNSDHCP_AGENT_SCRATCH",
        default_value = "/tmp",
        value_name = "DIR"
    )]
    scratch: PathBuf,
    /// Run once right away as well, then on schedule.
    #[arg(long)]
    run_now: bool,
    #[command(flatten)]
    upload: UploadArgs,
    #[command(flatten)]
    retention: RetentionArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs the agent until the process is stopped.
pub fn run(a: AgentArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let Target::Local(target) = a.target.resolve(&ctx.given)? else {
        return Err(ctx
            .given
            .usage_error(
                ErrorKind::MissingRequiredArgument,
                "the agent runs beside the daemons: give --local (in the chart, its own container)",
            )
            .into());
    };
    let (schedule, url) = match (&a.schedule, &a.upload.to) {
        (Some(s), Some(u)) => (s, u),
        (None, None) => return idle(&a.listen),
        (None, Some(_)) => {
            return Err(ctx
                .given
                .usage_error(
                    ErrorKind::MissingRequiredArgument,
                    "give --schedule CRON (or DNSDHCP_BACKUP_SCHEDULE) with --to",
                )
                .into());
        }
        (Some(_), None) => {
            return Err(ctx
                .given
                .usage_error(
                    ErrorKind::MissingRequiredArgument,
                    "give --to URL (or DNSDHCP_BACKUP_TO)",
                )
                .into());
        }
    };
    let policy = a.retention.policy();
    let cfg = Arc::new(AgentConfig {
        target,
        schedule: Schedule::parse(schedule)?,
        zones: a.what.zones(),
        leases: a.what.leases(),
        store: backups::open(url)?,
        recipients: Recipients::parse(&a.upload.recipients)?,
        require_encryption: a.upload.require_encryption,
        policy: (!policy.is_empty()).then_some(policy),
        scratch: a.scratch.clone(),
    });
    let metrics = Arc::new(Metrics::default());
    let log: agent::Log = Arc::new(|line| eprintln!("dnsdhcp agent: {line}"));
    kube::block_on(async {
        let listener = agent::listen(&a.listen).await?;
        log(format!(
            "schedule {} (UTC), to {}, metrics on http://{}/metrics",
            cfg.schedule,
            cfg.store.url(),
            listener.local_addr()?
        ));
        tokio::spawn(agent::serve(listener, metrics.clone()));
        if a.run_now {
            agent::run_once(&cfg, &metrics, &log).await;
        }
        agent::run(cfg, metrics, log).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::FAILURE)
}

/// No schedule and no store: serve /healthz (and empty /metrics) until stopped, so that the
/// container is there for the in-pod work of the Kubernetes target.
fn idle(listen: &str) -> Result<ExitCode> {
    kube::block_on(async {
        let listener = agent::listen(listen).await?;
        eprintln!(
            "dnsdhcp agent: no schedule and no store (--schedule, --to): serving /healthz on http://{} only",
            listener.local_addr()?
        );
        agent::serve(listener, Arc::new(Metrics::default())).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::FAILURE)
}
