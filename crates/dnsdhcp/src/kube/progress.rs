//! Progress of steps and transfers: a bar on terminals, plain lines otherwise, or nothing.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Lines,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    fn bar(self) -> bool {
        self == ProgressMode::Auto && std::io::stderr().is_terminal()
    }

    /// Reports a step (unless quiet).
    pub fn step(self, msg: impl AsRef<str>) {
        if self != ProgressMode::Quiet {
            eprintln!("dnsdhcp: {}", msg.as_ref());
        }
    }

    /// Starts a transfer of `total` bytes.
    pub(crate) fn transfer(self, label: String, total: Option<u64>, upload: bool) -> Transfer {
        let bar = if self.bar() {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.clone());
            Some(bar)
        } else {
            None
        };
        if self == ProgressMode::Lines || (self == ProgressMode::Auto && bar.is_none()) {
            match total {
                Some(t) => eprintln!("dnsdhcp: {label}: {} ...", human(t)),
                None => eprintln!("dnsdhcp: {label} ..."),
            }
        }
        Transfer {
            upload,
            mode: self,
            bar,
            label,
            total,
            done: 0,
            next_line: 0.25,
            start: Instant::now(),
        }
    }
}

/// One transfer under way.
pub(crate) struct Transfer {
    /// Counts bytes sent (true) or received (false).
    pub(crate) upload: bool,
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    done: u64,
    next_line: f64,
    start: Instant,
}

impl Transfer {
    pub(crate) fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.mode != ProgressMode::Quiet
            && let Some(t) = self.total.filter(|t| *t > 0)
        {
            let share = self.done as f64 / t as f64;
            if share >= self.next_line && share < 1.0 {
                eprintln!(
                    "dnsdhcp: {}: {:.0}% ({})",
                    self.label,
                    share * 100.0,
                    human(self.done)
                );
                while self.next_line <= share {
                    self.next_line += 0.25;
                }
            }
        }
    }

    pub(crate) fn finish(mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != ProgressMode::Quiet {
            let rate = if secs > 0.0 {
                format!(", {}/s", human((self.done as f64 / secs) as u64))
            } else {
                String::new()
            };
            eprintln!(
                "dnsdhcp: {}: {} in {secs:.1}s{rate}",
                self.label,
                human(self.done)
            );
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// `1.5 MiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
