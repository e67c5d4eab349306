//! `dnsdhcp import`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use dnsdhcp::legacy;

use super::Ctx;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Archives written by the original chart's scripts: `restore-scripts/` archives
    /// (knot-zones-*.tar.gz, zones-restore.tar.gz, kea-leases*.tar.gz), or tar archives of zone
    /// or lease files.
    #[arg(required = true, value_name = "ARCHIVE")]
    archives: Vec<PathBuf>,
    /// Directory for the converted archives (created if missing).
    #[arg(short = 'b', long = "backup-dir", default_value = "./backups")]
    dir: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// Converts every archive; exit 1 if a converted archive does not verify.
pub fn run(a: ImportArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut reports = Vec::new();
    for p in &a.archives {
        let r = legacy::import(p, &a.dir).with_context(|| format!("import of {}", p.display()))?;
        reports.push(r);
    }
    let ok = reports
        .iter()
        .all(|r| r.written.iter().all(|w| w.report.ok));
    if a.json {
        ctx.out.report_items("import", &reports)?;
    } else {
        for r in &reports {
            ctx.out.import_report(r);
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
