//! Errors of the records module.

use std::fmt;
use std::path::PathBuf;

/// One problem in the values, located at a file, line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The values file.
    pub path: PathBuf,
    /// 1-based line (0 if unknown).
    pub line: u32,
    /// 1-based column (0 if unknown).
    pub column: u32,
    /// What is wrong.
    pub message: String,
    /// The source line, for a snippet.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// `path:line:column`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    /// Rustc-like: `error: message`, ` --> path:line:col`, the line and a caret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            write!(f, "\n{pad} |\n{num} | {src}\n{pad} | ")?;
            let col = self.column.max(1) as usize - 1;
            let prefix: String = src
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{prefix}^")?;
        }
        Ok(())
    }
}

/// Every problem found in one validation pass.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(v: Vec<Diagnostic>) -> Self {
        Diagnostics(v)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in the values; nothing was applied",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.0 {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// Errors of loading, validating, planning and applying static records.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// A values file could not be read.
    #[error("cannot read values file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A values file is not valid YAML.
    #[error("{}:{line}:{column}: invalid YAML: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 if unknown).
        line: u32,
        /// 1-based column (0 if unknown).
        column: u32,
        /// The parser's message.
        message: String,
    },
    /// The values declare something invalid (every problem is listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The plan holds conflicts with records the tool does not own; nothing was applied.
    #[error("zone {zone}: {}; nothing was applied", conflicts.join("; "))]
    Conflict {
        /// The zone.
        zone: String,
        /// Each conflict, explained.
        conflicts: Vec<String>,
    },
    /// The plan would delete or change too many managed records; nothing was applied.
    #[error(
        "zone {zone}: the plan deletes or changes {affected} of {managed} managed records \
         ({percent:.0}%, limit {limit_percent:.0}%); nothing was applied — re-run with --force \
         if this is intended"
    )]
    SafetyLimit {
        /// The zone.
        zone: String,
        /// Managed records that would be deleted or changed.
        affected: usize,
        /// Managed records in the zone now.
        managed: usize,
        /// affected / managed in percent.
        percent: f64,
        /// The configured limit in percent.
        limit_percent: f64,
    },
    /// Talking to Knot failed.
    #[error("knot: {context}: {source}")]
    Knot {
        /// What was being done.
        context: String,
        /// knot-ctl's error (keeps knotd's text).
        source: knot_ctl::Error,
    },
    /// A record the zone serves could not be understood.
    #[error("zone {zone}: {message}")]
    ZoneData {
        /// The zone.
        zone: String,
        /// What could not be parsed.
        message: String,
    },
    /// A zone has a control transaction open (another client, or one left behind by a crash).
    #[error(
        "zone {zone}: a control transaction is already open (another client, or a stale one); \
         nothing was applied — commit or abort it first"
    )]
    TransactionOpen {
        /// The zone.
        zone: String,
    },
    /// A zone has a transaction open that is not an abandoned one of dnsdhcp's.
    #[error(transparent)]
    Txn(#[from] crate::txn::TxnError),
    /// A zone's transaction failed and was aborted; that zone (and every later one) is unchanged.
    #[error(
        "zone {zone}: {message}; the transaction was aborted and the zone is unchanged{}",
        if applied.is_empty() { String::new() } else { format!(" (already applied: {})", applied.join(", ")) }
    )]
    Transaction {
        /// The zone.
        zone: String,
        /// What failed.
        message: String,
        /// Zones committed before this one (their changes stand).
        applied: Vec<String>,
    },
}
