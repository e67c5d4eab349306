//! `dnsdhcp`: the command line. Parses arguments, calls one library function, prints.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let (args, mut ctx) = cli::parse();
    match cli::run(args, &mut ctx) {
        Ok(code) => code,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => usage.exit(),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
