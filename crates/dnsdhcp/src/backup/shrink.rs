//! The guard that keeps a good fixed-name archive (`zones.tar.gz`, `kea-leases.tar.gz`, the
//! files the pod's start-up roles restore from) from being replaced by an implausible backup:
//! one whose lease, zone or record count drops to zero, or by more than a limit, against the
//! archive it would replace. The timestamped archive is written either way.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{self, ArchiveKind, Limits, Manifest};

/// The default `--shrink-limit`: a drop of more than half of any count is refused.
pub const DEFAULT_SHRINK_LIMIT: f64 = 50.0;

/// When a backup may replace the fixed-name archive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShrinkGuard {
    /// Replace it whatever the counts (`--allow-shrink`).
    pub allow_shrink: bool,
    /// The largest drop of any count, in percent (0–100), that still replaces it.
    pub limit_percent: f64,
}

impl Default for ShrinkGuard {
    /// Refuse drops to zero and of more than [`DEFAULT_SHRINK_LIMIT`] percent.
    fn default() -> Self {
        ShrinkGuard {
            allow_shrink: false,
            limit_percent: DEFAULT_SHRINK_LIMIT,
        }
    }
}

/// What an archive holds, as its manifest says: zones and records, or leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Zones (zone archives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<u64>,
    /// Resource records over all zones (zone archives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Leases (lease archives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leases: Option<u64>,
}

impl Counts {
    /// The counts of `m` that matter for its kind.
    pub fn of(m: &Manifest) -> Counts {
        match m.kind {
            ArchiveKind::Zones | ArchiveKind::ZonesFull => Counts {
                zones: Some(m.zones.len() as u64),
                records: Some(m.record_count()),
                leases: None,
            },
            ArchiveKind::Leases => Counts {
                zones: None,
                records: None,
                leases: Some(m.lease_count),
            },
        }
    }

    /// `(name, count)` for each count present.
    fn named(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("zones", self.zones),
            ("records", self.records),
            ("leases", self.leases),
        ]
        .into_iter()
        .filter_map(|(n, c)| c.map(|c| (n, c)))
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.named().map(|(n, c)| format!("{c} {n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A fixed-name archive kept because the new backup's counts dropped too far.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("{}", self.message())]
pub struct ShrinkRefused {
    /// The fixed-name archive, left byte for byte as it was.
    pub kept: PathBuf,
    /// Its counts.
    pub old: Counts,
    /// The new backup's counts.
    pub new: Counts,
    /// Which count dropped how: e.g. `leases dropped to zero`, `records dropped by 60 %`.
    pub reason: String,
    /// The limit in force (percent).
    pub limit_percent: f64,
    /// The timestamped archive of the new backup, written anyway.
    pub written: Option<PathBuf>,
}

impl ShrinkRefused {
    fn message(&self) -> String {
        let written = match &self.written {
            Some(w) => format!("; the new backup was still written as {}", w.display()),
            None => String::new(),
        };
        format!(
            "kept {} ({}) instead of the new backup ({}): {}{written}; if the drop is real, \
             run the backup again with --allow-shrink",
            self.kept.display(),
            self.old,
            self.new,
            self.reason,
        )
    }
}

impl ShrinkGuard {
    /// A guard refusing drops of more than `percent` (0–100); `None` otherwise (NaN too).
    pub fn percent(percent: f64) -> Option<Self> {
        (0.0..=100.0).contains(&percent).then_some(ShrinkGuard {
            allow_shrink: false,
            limit_percent: percent,
        })
    }

    /// Whether a backup with manifest `new` may replace `fixed`. A `fixed` that is missing, has
    /// no readable manifest or is of another kind counts as no previous archive. `written` is
    /// the timestamped archive already written, named in a refusal.
    pub fn check(
        &self,
        fixed: &Path,
        new: &Manifest,
        written: Option<&Path>,
    ) -> Result<(), Box<ShrinkRefused>> {
        if self.allow_shrink {
            return Ok(());
        }
        let Some(old) = previous(fixed, new) else {
            return Ok(());
        };
        let new_counts = Counts::of(new);
        match self.worst_drop(&old, &new_counts) {
            None => Ok(()),
            Some(reason) => Err(Box::new(ShrinkRefused {
                kept: fixed.to_owned(),
                old,
                new: new_counts,
                reason,
                limit_percent: self.limit_percent,
                written: written.map(Path::to_owned),
            })),
        }
    }

    /// The first count of `new` that dropped to zero or by more than the limit against `old`.
    fn worst_drop(&self, old: &Counts, new: &Counts) -> Option<String> {
        let new: Vec<_> = new.named().collect();
        old.named().find_map(|(name, was)| {
            let now = new.iter().find(|(n, _)| *n == name)?.1;
            if was == 0 || now >= was {
                return None;
            }
            if now == 0 {
                return Some(format!("the {name} dropped to zero ({was} to 0)"));
            }
            let drop = (was - now) as f64 * 100.0 / was as f64;
            (drop > self.limit_percent).then(|| {
                format!(
                    "the {name} dropped by {drop:.1} % ({was} to {now}), more than \
                     --shrink-limit {} %",
                    self.limit_percent
                )
            })
        })
    }
}

/// The counts of the fixed-name archive at `fixed` if it is a readable archive of `new`'s
/// kind (a zones-only archive compares with a full zone backup too).
fn previous(fixed: &Path, new: &Manifest) -> Option<Counts> {
    if !fixed.is_file() {
        return None;
    }
    let old = archive::read_manifest(fixed, &Limits::default()).ok()?;
    let zones = |k| matches!(k, ArchiveKind::Zones | ArchiveKind::ZonesFull);
    let same = old.kind == new.kind || (zones(old.kind) && zones(new.kind));
    same.then(|| Counts::of(&old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(records: u64) -> Counts {
        Counts {
            zones: Some(2),
            records: Some(records),
            leases: None,
        }
    }

    #[test]
    fn drops_past_the_limit_or_to_zero_are_refused() {
        let g = ShrinkGuard::default();
        assert_eq!(g.worst_drop(&counts(100), &counts(100)), None);
        assert_eq!(g.worst_drop(&counts(100), &counts(50)), None);
        assert_eq!(g.worst_drop(&counts(100), &counts(1000)), None);
        assert!(g.worst_drop(&counts(100), &counts(49)).is_some());
        let g100 = ShrinkGuard::percent(100.0).unwrap();
        assert_eq!(g100.worst_drop(&counts(100), &counts(1)), None);
        assert!(
            g100.worst_drop(&counts(100), &counts(0))
                .unwrap()
                .contains("zero")
        );
        let g0 = ShrinkGuard::percent(0.0).unwrap();
        assert!(g0.worst_drop(&counts(100), &counts(99)).is_some());
        assert_eq!(ShrinkGuard::percent(f64::NAN), None);
        assert_eq!(ShrinkGuard::percent(-1.0), None);
        assert_eq!(ShrinkGuard::percent(100.5), None);
    }
}
