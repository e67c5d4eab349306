//! `dnsdhcp records plan|apply|check`.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use dnsdhcp::kube;
use dnsdhcp::records::{self, ApplyOptions, Desired, Plan, SafetyLimit, Values};
use dnsdhcp::target::{LocalTarget, Target};
use knot_ctl::Client;

use super::target::TargetArgs;
use super::{Ctx, EXIT_CHANGES, connect, print_raw};

#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Show what `apply` would change, per zone.
    Plan(RecordsArgs),
    /// Apply the plan: one Knot transaction per changed zone, aborted on any error.
    Apply(RecordsArgs),
    /// Validate static records offline: no daemon, the zones come from the values.
    ///
    /// Every problem is reported with its file:line:column, as plan and apply report them.
    /// Exit status: 0 the values are valid, 1 they are not (or a file cannot be read), 64 usage
    /// error. Run it in CI, or before `helm upgrade`. It does not check that Knot serves the
    /// zones or what the records would replace: `records plan` does.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Helm values files with `zones` and `staticRecords` (repeatable; later files win, as
    /// with `helm upgrade -f`).
    #[arg(short = 'f', long = "values", required = true, value_name = "VALUES")]
    values: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// Helm values files with `zones` and `staticRecords` (repeatable; later files win).
    #[arg(short = 'f', long = "values", required = true, value_name = "VALUES")]
    values: Vec<PathBuf>,
    /// Apply even if a zone would lose or change more than the safety limit allows (`plan`:
    /// judge the plan as `apply --force` would).
    #[arg(long)]
    force: bool,
    /// Safety limit: the largest share (0 to 100 %) of a zone's managed records one apply may
    /// delete or change, for zones managing at least 10 records. `plan` says whether `apply`
    /// would refuse the plan under it.
    #[arg(long, default_value = "30", value_name = "PERCENT", value_parser = parse_percent, allow_negative_numbers = true)]
    max_change: SafetyLimit,
    /// Print the plan (and outcome) as JSON.
    #[arg(long)]
    json: bool,
    /// `plan` only: exit 2 when the plan has changes, 0 when the zones already match (for CI).
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// `--max-change`: a number from 0 to 100 (NaN, negatives and more than 100 are usage errors).
fn parse_percent(text: &str) -> Result<SafetyLimit, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(SafetyLimit::percent)
        .ok_or_else(|| format!("`{text}` is not a percentage from 0 to 100"))
}

/// Runs `records plan` or `records apply` on the resolved target.
pub fn run(cmd: RecordsCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let (a, apply) = match cmd {
        RecordsCommand::Plan(a) => (a, false),
        RecordsCommand::Apply(a) => (a, true),
        RecordsCommand::Check(a) => return check(a, ctx),
    };
    if apply && a.exit_code {
        return Err(ctx
            .given
            .usage_error(
                clap::error::ErrorKind::ArgumentConflict,
                "--exit-code is for `records plan` (exit 2 when there are changes)",
            )
            .into());
    }
    let k = match a.target.resolve(&ctx.given)? {
        Target::Local(t) => return run_local(&a, apply, &t, ctx),
        Target::Kube(k) => k,
    };
    // Problems in the values are reported before the cluster is contacted.
    records::load_values(&a.values)?;
    let c = connect(&k)?;
    let percent = a.max_change.max_share * 100.0;
    let mut extra = vec!["--max-change".to_owned(), percent.to_string()];
    extra.extend(a.force.then(|| "--force".to_owned()));
    extra.extend(a.json.then(|| "--json".to_owned()));
    extra.extend(a.exit_code.then(|| "--exit-code".to_owned()));
    let (code, stdout) = kube::block_on(c.records(&a.values, apply, &extra))?;
    print_raw(&stdout)?;
    Ok(if code == i32::from(EXIT_CHANGES) {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

/// `records plan|apply --local`: planned (see [`plan_local`]), then applied or printed.
fn run_local(a: &RecordsArgs, apply: bool, t: &LocalTarget, ctx: &mut Ctx) -> Result<ExitCode> {
    let (client, values, desired, mut plan) = plan_local(a, t)?;
    if apply {
        return apply_local(a, t, client, (desired, values), plan, ctx);
    }
    plan.assess(&a.max_change, a.force);
    if a.json {
        ctx.out.report("records-plan", &plan)?;
    } else {
        ctx.out.plan(&plan);
    }
    let changes = !plan.is_empty();
    exit_soon((desired, plan, values));
    if a.exit_code && changes {
        return Ok(ExitCode::from(EXIT_CHANGES));
    }
    Ok(ExitCode::SUCCESS)
}

/// The values files are parsed and validated on one thread while another connects to Knot
/// and reads the zones they mention; then planned. Returns the connection, the values (their
/// entries dropped once validated), the desired state and the plan.
fn plan_local(
    a: &RecordsArgs,
    t: &LocalTarget,
) -> Result<(Client<UnixStream>, Values, Desired, Plan)> {
    let files = records::read_values_files(&a.values)?;
    let texts: Vec<String> = files.iter().map(|f| f.text.clone()).collect();
    let (parsed, connected) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            t.knot().map(|mut client| {
                let prefetched = records::prefetch_mentioned(&mut client, &texts);
                (client, prefetched)
            })
        });
        let parsed = records::parse_values(files).map(|mut values| {
            let desired = records::validate(&values);
            // Validated into `desired`: planning needs the entries' positions, not their text
            // (at 100,000 records, 18 MB less while the zones are planned).
            drop(std::mem::take(&mut values.records));
            (values, desired)
        });
        let connected = reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (parsed, connected)
    });
    drop(texts);
    // Reported in this order: the values' syntax, the connection, the values' content, the
    // server.
    let (values, desired) = parsed?;
    let (mut client, prefetched) = connected.context("connecting to Knot")?;
    let desired = desired?;
    let (desired, plan) = records::plan_prefetched(&mut client, &values, desired, prefetched?)?;
    Ok((client, values, desired, plan))
}

/// `records apply --local` of a plan: the validated state is freed while Knot fills the
/// transactions, the plan's text rendered meanwhile and printed once the apply succeeded.
fn apply_local(
    a: &RecordsArgs,
    t: &LocalTarget,
    mut client: Client<UnixStream>,
    validated: (Desired, Values),
    mut plan: Plan,
    ctx: &mut Ctx,
) -> Result<ExitCode> {
    let opts = ApplyOptions {
        force: a.force,
        limit: a.max_change,
    };
    if plan.is_empty() {
        exit_soon(validated);
    } else {
        // Freed while the transactions are filled (that is when memory peaks), on a thread of
        // its own: at 100,000 records freeing takes tens of milliseconds.
        std::thread::spawn(move || {
            drop(validated);
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe { libc::malloc_trim(0) };
        });
    }
    plan.assess(&opts.limit, opts.force);
    let connect = || t.knot();
    let color = ctx.out.color();
    let (text, applied) = std::thread::scope(|scope| {
        let text = (!a.json).then(|| scope.spawn(|| records::render_plan(&plan, color)));
        let applied = records::apply_assessed(&mut client, Some(&connect), &plan, &opts);
        let text = text.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (text, applied)
    });
    let records::Applied { committed, aborted } = applied?;
    match text {
        None => {
            let outcome = records::ApplyOutcome {
                plan,
                committed,
                aborted,
            };
            ctx.out.report("records-apply", &outcome)?;
            exit_soon(outcome);
        }
        Some(text) => {
            for abandoned in &aborted {
                ctx.out.line(abandoned.to_string());
            }
            ctx.out.plan_text(&text);
            ctx.out.applied(&committed);
            exit_soon((plan, text));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Leaves `big` to the end of the process instead of freeing it now: the command is about to
/// exit, and freeing hundreds of thousands of small allocations one by one takes tens of
/// milliseconds at 100,000 records, for nothing.
fn exit_soon<T>(big: T) {
    std::mem::forget(big);
}

/// `records check`: load and validate only; errors go back to `main` (exit 1).
fn check(a: CheckArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let values = records::load_values(&a.values)?;
    let desired = records::validate(&values)?;
    for note in &desired.notes {
        ctx.out.line(format!("note: {note}"));
    }
    for z in &desired.zones {
        ctx.out
            .line(format!("zone {}: {} record(s)", z.fqdn(), z.record_count()));
    }
    ctx.out.line("the static records are valid".to_owned());
    Ok(ExitCode::SUCCESS)
}
