//! The command line's own checks, before any daemon or cluster is contacted: target flags
//! resolve into one target, contradictory flags are usage errors (exit 64) naming the flag and
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
    // differently (exit 1), so exit 64 proves the usage check came first.
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
    assert_eq!(code, 64, "{args:?}: {stderr}");
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
    // The Kubernetes target records its own source; the hidden flag is not silently dropped.
    usage_error(
        &["backup", "zones", "--source", "x", "-s", "dns"],
        "--source is for backups on this host (--local) only",
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

#[test]
fn an_unreachable_socket_is_named_once_with_what_to_do() {
    let (code, stdout, stderr) = dnsdhcp(
        &[
            "zones",
            "status",
            "--local",
            "--knot-socket",
            "/nonexistent/knot.sock",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("/nonexistent/knot.sock"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause is printed once: {stderr}"
    );
    assert!(
        stderr.contains("hint: is knotd running? set --knot-socket or DNSDHCP_KNOT_SOCKET"),
        "{stderr}"
    );

    // With --json, the same error as a JSON object on stdout.
    let (code, stdout, _) = dnsdhcp(
        &[
            "zones",
            "status",
            "--local",
            "--json",
            "--knot-socket",
            "/nonexistent/knot.sock",
        ],
        &[],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(v["kind"], "error");
    assert_eq!(v["version"], 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/knot.sock")
    );
    assert!(v["hint"].as_str().unwrap().contains("--knot-socket"));

    // A listing that cannot start prints the error alone, no list begun.
    let (code, stdout, _) = dnsdhcp(
        &[
            "leases",
            "list",
            "--local",
            "--json",
            "--kea-socket",
            "/nonexistent/kea.sock",
        ],
        &[],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(v["kind"], "error", "{stdout}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/kea.sock")
    );
}

#[test]
fn without_a_kubeconfig_the_error_is_one_line_and_mentions_local() {
    let (code, _, stderr) = dnsdhcp(&["zones", "status"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("or use --local"), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn json_reports_carry_kind_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, b"not an archive").unwrap();
    let (code, stdout, _) = dnsdhcp(&["verify", "--json", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(v["kind"], "verify");
    assert_eq!(v["version"], 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["reports"][0]["ok"], false);
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, b"not an archive").unwrap();
    // The reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["verify", bad.to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}
