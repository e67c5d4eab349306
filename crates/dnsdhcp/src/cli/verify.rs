//! `dnsdhcp verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use dnsdhcp::archive;

use super::Ctx;
use super::backups::{self, IdentityArgs};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Archives to check: local files, or a store URL (every backup under its prefix, or the
    /// one backup it names, downloaded and checked against its entry first).
    #[arg(required = true, value_name = "ARCHIVE|URL")]
    archives: Vec<PathBuf>,
    #[command(flatten)]
    keys: IdentityArgs,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

/// Verifies every archive; exit 1 if any has a problem.
pub fn run(a: VerifyArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let urls: Vec<&str> = a
        .archives
        .iter()
        .filter_map(|p| p.to_str().filter(|s| backups::is_url(s)))
        .collect();
    if !urls.is_empty() {
        if urls.len() != a.archives.len() {
            anyhow::bail!("give either archive files or store URLs, not both");
        }
        let ids = a.keys.read()?;
        let mut checks = Vec::new();
        for u in urls {
            checks.extend(backups::verify_url(u, ids.as_ref())?);
        }
        if a.json {
            let ok = checks.iter().all(|c| c.ok);
            ctx.out.report(
                "verify",
                &serde_json::json!({ "ok": ok, "reports": checks }),
            )?;
        } else {
            for c in &checks {
                ctx.out.line(backups::check_line(c));
            }
        }
        return Ok(if checks.iter().all(|c| c.ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let reports: Vec<_> = a
        .archives
        .iter()
        .map(|p| archive::verify(p, &archive::Limits::default()))
        .collect();
    if a.json {
        let ok = reports.iter().all(|r| r.ok);
        ctx.out.report(
            "verify",
            &serde_json::json!({ "ok": ok, "reports": reports }),
        )?;
    } else {
        for r in &reports {
            ctx.out.verify_report(r);
        }
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
