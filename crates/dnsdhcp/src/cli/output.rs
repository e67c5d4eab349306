//! Human-readable and JSON output of the commands. The only code that writes to stdout.

use std::io::{IsTerminal, Write};

use dnsdhcp::archive::VerifyReport;
use dnsdhcp::backup::{LeasesBackup, Written, ZonesBackup};
use dnsdhcp::kube::inpod::Report;
use dnsdhcp::legacy::ImportReport;
use dnsdhcp::records::{self, Plan};
use dnsdhcp::restore::{LeasesRestore, ZonesRestore};

/// The body of a report that is a list: the list under `items`.
#[derive(serde::Serialize)]
struct Items<T> {
    items: T,
}

/// `value` as pretty-printed JSON and a line feed, through a buffer of its own.
fn write_json<T: serde::Serialize + ?Sized>(to: impl Write, value: &T) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, to);
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Standard output, with colour only on terminals.
pub struct Out {
    out: std::io::Stdout,
    color: bool,
}

impl Out {
    pub fn stdout() -> Self {
        let out = std::io::stdout();
        let color = out.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Out { out, color }
    }

    /// One line. A reader that went away (broken pipe) ends the process quietly: nothing
    /// more would be read.
    pub fn line(&mut self, line: String) {
        if let Err(e) = writeln!(self.out, "{line}")
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }

    /// Writes `text` as it is.
    pub fn raw(&mut self, text: &str) {
        let _ = write!(self.out, "{text}");
    }

    /// `value` as pretty-printed JSON, written as it is serialized (no tree of it in memory)
    /// through one buffer: a first apply's report of 100,000 records is 2.8 million lines, which
    /// standard output's line buffering would write one system call each.
    pub fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> anyhow::Result<()> {
        write_json(self.out.lock(), value)
    }

    /// A JSON report: `kind` (which command's report) and `version` (of the format), then
    /// the fields of `value`, a struct or a map (a list goes through [`Out::report_items`]).
    pub fn report<T: serde::Serialize + ?Sized>(
        &mut self,
        kind: &str,
        value: &T,
    ) -> anyhow::Result<()> {
        self.json(&Report::new(kind, value))
    }

    /// [`Out::report`] of a list: the list under `items`.
    pub fn report_items<T: serde::Serialize>(
        &mut self,
        kind: &str,
        items: T,
    ) -> anyhow::Result<()> {
        self.report(kind, &Items { items })
    }

    /// `value` as one line of JSON.
    pub fn json_line<T: serde::Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        self.json_lines(std::slice::from_ref(value))
    }

    /// One line of JSON per value, through one buffer (not a system call per line). A reader
    /// that went away ends the process quietly, as for [`Out::line`].
    pub fn json_lines<T: serde::Serialize>(&mut self, values: &[T]) -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, self.out.lock());
        let written = values
            .iter()
            .try_for_each(|v| {
                serde_json::to_writer(&mut out, v)?;
                writeln!(out).map_err(serde_json::Error::io)
            })
            .and_then(|()| out.flush().map_err(serde_json::Error::io));
        match written {
            Err(e) if e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe) => {
                std::process::exit(0)
            }
            other => Ok(other?),
        }
    }

    fn written(&mut self, w: &Written, what: String) {
        self.line(format!("wrote {} ({what})", w.path.display()));
    }

    pub fn zones_backup(&mut self, z: &ZonesBackup) {
        let m = &z.full.manifest;
        let records: u64 = m.zones.iter().map(|z| z.records).sum();
        let summary = format!("{} zone(s), {records} record(s)", m.zones.len());
        self.written(&z.full, format!("Knot backup: {summary}"));
        self.written(&z.zones, format!("zone files: {summary}"));
        for zone in &m.zones {
            self.line(format!(
                "  {:<40} serial {:<10} {} record(s)",
                zone.name, zone.serial, zone.records
            ));
        }
    }

    pub fn leases_backup(&mut self, l: &LeasesBackup) {
        let count = l.archive.manifest.lease_count;
        self.written(&l.archive, format!("{count} lease(s)"));
        self.written(&l.latest, format!("{count} lease(s)"));
        if l.snapshot_attempts > 1 {
            self.line(format!(
                "  the lease files changed during the snapshot; consistent after {} attempts",
                l.snapshot_attempts
            ));
        }
        for row in &l.skipped_rows {
            self.line(format!(
                "  warning: skipped a row Kea would also skip: {row}"
            ));
        }
    }

    pub fn zones_restore(&mut self, r: &ZonesRestore) {
        self.line(format!(
            "restored {} zone(s) from {} ({})",
            r.zones.len(),
            r.archive.display(),
            r.method
        ));
        for z in &r.zones {
            self.line(format!(
                "  {:<40} serial {:<10} {} record(s)",
                z.zone, z.serial, z.records
            ));
        }
    }

    pub fn leases_restore(&mut self, r: &LeasesRestore) {
        self.line(format!(
            "restored leases from {}: {} in the archive, Kea holds {}",
            r.archive.display(),
            r.archived,
            r.held
        ));
    }

    pub fn verify_report(&mut self, r: &VerifyReport) {
        let status = if r.ok { "OK" } else { "FAILED" };
        let status = match (self.color, r.ok) {
            (true, true) => format!("\x1b[32m{status}\x1b[0m"),
            (true, false) => format!("\x1b[31m{status}\x1b[0m"),
            _ => status.to_owned(),
        };
        self.line(format!("{}: {status}", r.archive.display()));
        if r.legacy {
            let kind = r.kind.map_or("unconvertible".to_owned(), |k| k.to_string());
            self.line(format!(
                "  legacy {kind} archive (the original chart's format)"
            ));
        } else if let Some(kind) = r.kind {
            self.line(format!(
                "  {kind} archive from {}, created {}, dnsdhcp {}",
                r.source.as_deref().unwrap_or("?"),
                r.created.as_deref().unwrap_or("?"),
                r.tool_version.as_deref().unwrap_or("?")
            ));
        }
        self.line(format!("  {} file(s), {} byte(s)", r.files, r.bytes));
        for z in &r.zones {
            self.line(format!(
                "  zone {:<35} serial {:<10} {} record(s)",
                z.name, z.serial, z.records
            ));
        }
        if !r.lease_files.is_empty() {
            self.line(format!("  {} lease(s)", r.lease_count));
        }
        for n in &r.notes {
            self.line(format!("  note: {n}"));
        }
        for p in &r.problems {
            self.line(format!("  problem: {p}"));
        }
    }

    pub fn import_report(&mut self, r: &ImportReport) {
        self.line(format!(
            "{} ({} archive of the original chart):",
            r.archive.display(),
            r.format
        ));
        for w in &r.written {
            self.line(format!("  wrote {}", w.path.display()));
            let z = &w.report;
            if !z.zones.is_empty() {
                self.line(format!(
                    "    {} zone(s), {} record(s){}",
                    z.zones.len(),
                    z.records,
                    if z.zones.iter().any(|z| z.apex_from_target) {
                        "; SOA and NS are kept from the target zone on restore"
                    } else {
                        ""
                    }
                ));
            }
            if !z.lease_files.is_empty() {
                self.line(format!("    {} lease(s)", z.lease_count));
            }
            for p in &z.problems {
                self.line(format!("    problem: {p}"));
            }
        }
        if r.unconverted.is_empty() {
            self.line("  everything converted".into());
        } else {
            self.line(format!("  not converted ({}):", r.unconverted.len()));
            for u in &r.unconverted {
                self.line(format!("    {}:{}: {}", u.script, u.line, u.reason));
            }
        }
        for i in &r.ignored {
            self.line(format!("  ignored {i}"));
        }
    }

    pub fn plan(&mut self, plan: &Plan) {
        self.plan_text(&records::render_plan(plan, self.color));
    }

    /// A plan already rendered ([`records::render_plan`] with [`Out::color`]).
    pub fn plan_text(&mut self, text: &str) {
        let _ = write!(self.out, "{text}");
        if !text.ends_with('\n') && !text.is_empty() {
            self.line(String::new());
        }
    }

    /// Whether output is colored.
    pub fn color(&self) -> bool {
        self.color
    }

    pub fn applied(&mut self, committed: &[String]) {
        if committed.is_empty() {
            self.line("nothing to apply: the zones already match the values".into());
        } else {
            self.line(format!("applied: committed {}", committed.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as `--json` prints it, and its keys in order.
    fn printed<T: serde::Serialize>(value: &T) -> (serde_json::Value, Vec<String>) {
        let mut bytes = Vec::new();
        write_json(&mut bytes, value).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        let keys = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .filter_map(|l| l.split_once('"'))
            .map(|(k, _)| k.to_owned())
            .collect();
        (serde_json::from_str(&text).unwrap(), keys)
    }

    #[test]
    fn reports_lead_with_kind_and_version_and_lists_go_under_items() {
        #[derive(serde::Serialize)]
        struct Body {
            zones: Vec<&'static str>,
            ok: bool,
        }
        let body = Body {
            zones: vec!["home.arpa."],
            ok: true,
        };
        let (doc, keys) = printed(&Report::new("records-plan", &body));
        assert_eq!(keys, ["kind", "version", "zones", "ok"]);
        assert_eq!(
            doc,
            serde_json::json!({"kind": "records-plan", "version": 1, "zones": ["home.arpa."], "ok": true})
        );

        let (doc, keys) = printed(&Report::new("leases-list", Items { items: [1, 2] }));
        assert_eq!(keys, ["kind", "version", "items"]);
        assert_eq!(doc["items"], serde_json::json!([1, 2]));
        let (doc, _) = printed(&Report::new(
            "leases-list",
            Items {
                items: Vec::<u8>::new(),
            },
        ));
        assert_eq!(doc["items"], serde_json::json!([]));
    }
}
