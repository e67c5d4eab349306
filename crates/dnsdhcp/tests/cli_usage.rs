//! The command line's own checks, before any daemon or cluster is contacted: target flags
//! resolve into one target, contradictory flags are usage errors (exit 2) naming the flag and
//! the fix. No daemon is needed (none is reached).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

/// Runs dnsdhcp with a clean target environment; returns (exit code, stdout, stderr).
fn dnsdhcp(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in [
        "DNSDHCP_KNOT_SOCKET",
        "DNSDHCP_KEA_SOCKET",
        "DNSDHCP_KEA_LEASE_FILE",
        "DNSDHCP_CONTEXT",
        "DNSDHCP_NAMESPACE",
        "DNSDHCP_STATEFULSET",
    ] {
        cmd.env_remove(var);
    }
    // A kubeconfig that does not exist: a command that got as far as the cluster fails
    // differently (exit 1), so exit 2 proves the usage check came first.
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig");
    cmd.env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn usage_error(args: &[&str], wanted: &str) {
    let (code, stdout, stderr) = dnsdhcp(args, &[]);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: {stdout}");
    assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    assert!(stderr.contains("Usage: dnsdhcp"), "{args:?}: {stderr}");
}

#[test]
fn local_only_flags_without_local_are_usage_errors() {
    for (flag, value) in [
        ("--knot-socket", "/run/x.sock"),
        ("--kea-socket", "/run/y.sock"),
        ("--kea-lease-file", "/var/lib/kea/z.csv"),
    ] {
        usage_error(
            &["backup", "zones", flag, value],
            &format!("{flag} works only with --local"),
        );
        usage_error(&["leases", "count", flag, value], "add --local");
    }
}

#[test]
fn kubernetes_flags_with_local_are_usage_errors() {
    for flag in [
        "-c",
        "--context",
        "-n",
        "--namespace",
        "-s",
        "--statefulset",
    ] {
        usage_error(
            &["zones", "status", "--local", flag, "x"],
            "names a Kubernetes target, but --local works on this host's daemons",
        );
    }
    usage_error(
        &["records", "plan", "--local", "-f", "v.yaml", "-c", "prod"],
        "-c/--context",
    );
}

#[test]
fn restore_flags_of_the_kubernetes_target_are_refused_with_local() {
    usage_error(
        &["restore", "--local", "--live", "--zones", "z.tar.gz"],
        "--live is for the Kubernetes target",
    );
    usage_error(
        &[
            "restore",
            "--local",
            "--timeout",
            "60",
            "--zones",
            "z.tar.gz",
        ],
        "--timeout is for the Kubernetes target",
    );
    usage_error(
        &["restore", "--local"],
        "--zones [<ARCHIVE>]|--leases [<ARCHIVE>]|--from <URL>",
    );
}

#[test]
fn leases_wipe_needs_yes() {
    usage_error(&["leases", "wipe", "--local"], "add --yes");
    usage_error(&["leases", "wipe"], "add --yes");
}

#[test]
fn target_values_from_the_environment_are_defaults_not_contradictions() {
    // DNSDHCP_CONTEXT set while working --local, DNSDHCP_KNOT_SOCKET set while working on the
    // cluster: neither is a usage error; the command goes on to its target (and fails there).
    let (code, _, stderr) = dnsdhcp(
        &[
            "zones",
            "status",
            "--local",
            "--knot-socket",
            "/nonexistent/knot.sock",
        ],
        &[("DNSDHCP_CONTEXT", "prod")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("knotd"), "{stderr}");
    assert!(!stderr.contains("names a Kubernetes target"), "{stderr}");
    let (code, _, stderr) = dnsdhcp(
        &["zones", "status"],
        &[("DNSDHCP_KNOT_SOCKET", "/nonexistent/knot.sock")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("works only with --local"), "{stderr}");
}

#[test]
fn restore_timeout_is_a_documented_flag() {
    let (code, stdout, _) = dnsdhcp(&["restore", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--timeout <SECONDS>"), "{stdout}");
    assert!(stdout.contains("[default: 600]"), "{stdout}");
}

#[test]
fn keep_serial_on_the_kubernetes_target_needs_live() {
    usage_error(
        &["restore", "--zones", "zones.tar.gz", "--keep-serial"],
        "--keep-serial needs --live",
    );
}
