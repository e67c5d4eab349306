//! `dnsdhcp leases count|list|wipe`.

use std::cell::RefCell;
use std::process::ExitCode;

use anyhow::Result;
use clap::error::ErrorKind;
use clap::{Args, Subcommand};

use dnsdhcp::{kube, restore};
use kea_leases::{ControlError, LeasePages, UnixConnector};

use super::target::TargetArgs;
use super::{Ctx, On, print_raw};

#[derive(Subcommand, Debug)]
pub enum LeasesCommand {
    /// How many leases Kea holds.
    Count(LeasesArgs),
    /// Every lease Kea holds, as JSON lines.
    List(LeasesArgs),
    /// Delete every lease Kea holds (lease4-wipe). Needs --yes.
    Wipe(WipeArgs),
}

#[derive(Args, Debug)]
pub struct LeasesArgs {
    /// Print one JSON report (`count`: the number; `list`: every lease under `items`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct WipeArgs {
    /// Really delete every lease (there is no undo; take `backup leases` first).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs a `leases` command on the resolved target.
pub fn run(cmd: LeasesCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let (target, action, json) = match cmd {
        LeasesCommand::Count(a) => (a.target, "count", a.json),
        LeasesCommand::List(a) => (a.target, "list", a.json),
        LeasesCommand::Wipe(a) => {
            if !a.yes {
                return Err(ctx
                    .given
                    .usage_error(
                        ErrorKind::MissingRequiredArgument,
                        "`leases wipe` deletes every lease Kea holds and cannot be undone: add --yes (and consider `dnsdhcp backup leases` first)",
                    )
                    .into());
            }
            (a.target, "wipe", false)
        }
    };
    let t = match On::open(target.resolve(&ctx.given)?)? {
        On::Kube(c) => {
            let mut args = vec!["leases".to_owned(), action.into(), "--local".into()];
            if action == "wipe" {
                args.push("--yes".into());
            }
            if json {
                args.push("--json".into());
            }
            print_raw(&kube::block_on(c.run(kube::KEA_CONTAINER, &args))?)?;
            return Ok(ExitCode::SUCCESS);
        }
        On::Local(t) => t,
    };
    let kea = t.kea();
    match action {
        "count" => {
            let count = restore::count_leases(&t)?;
            if json {
                ctx.out
                    .report("leases-count", &kube::inpod::LeasesCount { count })?;
            } else {
                ctx.out.line(count.to_string());
            }
        }
        "list" => {
            // A page at a time: the listing runs in Kea's container, within Kea's memory limit.
            let mut pages = kea.lease4_pages(LIST_PAGE).peekable();
            // Kea not answering is reported before anything is printed.
            if let Some(Err(_)) = pages.peek() {
                pages.next().transpose()?;
            }
            if json {
                let listing = StreamedLeases {
                    pages: RefCell::new(pages),
                    failed: RefCell::new(None),
                };
                let written = ctx.out.report_items("leases-list", &listing);
                if let Some(e) = listing.failed.into_inner() {
                    return Err(e.into());
                }
                written?;
            } else {
                for page in pages {
                    ctx.out.json_lines(&page?)?;
                }
            }
        }
        _ => {
            kea.lease4_wipe(None)?;
            ctx.out.line("all leases wiped".into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Leases fetched per `lease4-get-page` by `leases list`.
const LIST_PAGE: u32 = 1000;

/// Kea's leases as a JSON list, each page fetched while the previous one is written. A fetch
/// failing after the first ends the document unfinished (so that it cannot pass for the whole
/// list) and is kept in `failed`.
struct StreamedLeases<'a> {
    pages: RefCell<std::iter::Peekable<LeasePages<'a, UnixConnector>>>,
    failed: RefCell<Option<ControlError>>,
}

impl serde::Serialize for StreamedLeases<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        for page in &mut *self.pages.borrow_mut() {
            let page = page.map_err(|e| {
                let message = e.to_string();
                *self.failed.borrow_mut() = Some(e);
                S::Error::custom(message)
            })?;
            for lease in &page {
                seq.serialize_element(lease)?;
            }
        }
        seq.end()
    }
}
