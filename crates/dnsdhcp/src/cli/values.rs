//! `dnsdhcp values convert`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use dnsdhcp::legacy::values::convert_values;

use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum ValuesCommand {
    /// Print values for this chart converted from values written for the original chart
    /// (`segments[]`): zones, static records, subnets and pools, reservations, DDNS and
    /// resolver settings; each setting that could not be mapped is listed as a comment.
    Convert(ConvertArgs),
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The original chart's values file.
    #[arg(short = 'f', long = "values", value_name = "OLD.yaml")]
    values: PathBuf,
}

/// Prints the converted values.
pub fn run(c: ValuesCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let ValuesCommand::Convert(a) = c;
    let converted = convert_values(&a.values)?;
    ctx.out.raw(&converted.yaml);
    Ok(ExitCode::SUCCESS)
}
