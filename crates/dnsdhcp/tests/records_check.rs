//! `dnsdhcp records check` (offline validation, no daemon) and the `--max-change` range, run
//! as the binary a user runs. No daemon is started: these paths must not need one.

use std::path::Path;
use std::process::{Command, Output};

const DNSDHCP: &str = env!("CARGO_BIN_EXE_dnsdhcp");

fn run(args: &[&str]) -> Output {
    Command::new(DNSDHCP)
        .args(args)
        .env("NO_COLOR", "1")
        // A socket that does not exist: nothing here may try to talk to a daemon.
        .env("DNSDHCP_KNOT_SOCKET", "/nonexistent/knot.sock")
        .output()
        .expect("run dnsdhcp")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

const ZONES: &str = "zones:\n  - name: home.arpa\n  - name: 1.168.192.in-addr.arpa\n";

#[test]
fn check_accepts_valid_values_offline_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let v = write(
        dir.path(),
        "values.yaml",
        &format!(
            "{ZONES}staticRecords:\n  - \"router IN A 192.168.1.1\"\n  - \"nas A 10.0.0.5\"\n"
        ),
    );
    let o = run(&["records", "check", "-f", &v]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("zone home.arpa.: 2 record(s)"), "{t}");
    assert!(
        t.contains("zone 1.168.192.in-addr.arpa.: 1 record(s)"),
        "{t}"
    );
    assert!(
        t.contains("no configured reverse zone contains 10.0.0.5"),
        "{t}"
    );
}

#[test]
fn check_reports_every_error_with_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.yaml", ZONES);
    let bad = write(
        dir.path(),
        "bad.yaml",
        "staticRecords:\n  - \"foo IN A not-an-ip\"\n  - \"ok A 192.168.1.2\"\n  - name: x\n    type: MX\n    data: 10 mail\n    ptr: true\n",
    );
    let o = run(&["records", "check", "-f", &base, "-f", &bad]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{bad}:2:5: invalid record")), "{t}");
    assert!(
        t.contains(&format!("{bad}:4:5: `ptr` applies to A and AAAA")),
        "{t}"
    );
    assert!(t.contains("2 errors"), "{t}");

    let yaml = write(dir.path(), "broken.yaml", "zones: [\n");
    let o = run(&["records", "check", "-f", &yaml]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("{yaml}:")), "{}", text(&o));
    let o = run(&["records", "check", "-f", "/nonexistent/values.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn max_change_outside_0_to_100_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let v = write(dir.path(), "values.yaml", ZONES);
    for bad in ["NaN", "nan", "-5", "500", "100.1", "inf", "x"] {
        for cmd in ["plan", "apply"] {
            let o = run(&["records", cmd, "-f", &v, "--local", "--max-change", bad]);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(64), "{cmd} --max-change {bad}: {t}");
            assert!(t.contains("not a percentage from 0 to 100"), "{t}");
        }
    }
    // In range: accepted by the parser (it then fails on the missing daemon, exit 1).
    for good in ["0", "30", "100", "12.5"] {
        let o = run(&["records", "plan", "-f", &v, "--local", "--max-change", good]);
        assert_eq!(o.status.code(), Some(1), "{good}: {}", text(&o));
    }
}
