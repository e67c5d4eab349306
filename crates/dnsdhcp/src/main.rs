use clap::Parser;

/// Back up, restore and declaratively manage Knot DNS zones and Kea DHCPv4 leases.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
