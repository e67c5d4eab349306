//! `dnsdhcp`: the command line. Parses arguments, calls one library function, prints.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let (args, mut ctx) = cli::parse();
    match cli::run(args, &mut ctx) {
        Ok(code) => code,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => cli::usage_exit(usage),
            Err(e) => cli::report_error(&e, &mut ctx),
        },
    }
}
