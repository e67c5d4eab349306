//! `dnsdhcp verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use dnsdhcp::archive;

use super::Ctx;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Archives to check.
    #[arg(required = true, value_name = "ARCHIVE")]
    archives: Vec<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

/// Verifies every archive; exit 1 if any has a problem.
pub fn run(a: VerifyArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let reports: Vec<_> = a
        .archives
        .iter()
        .map(|p| archive::verify(p, &archive::Limits::default()))
        .collect();
    if a.json {
        ctx.out.json(&reports)?;
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
