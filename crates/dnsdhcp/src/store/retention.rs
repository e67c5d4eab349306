//! Retention as restic's `forget` does it: keep the last N, and the newest backup of each of
//! the last N hours, days, weeks and months; forget the rest. Backups are grouped by source and
//! kind, and each group is planned on its own. Times are UTC; weeks are ISO 8601 weeks.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many backups each rule keeps (0: the rule is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N.
    pub last: usize,
    /// The newest backup in each of the newest N hours that have one.
    pub hourly: usize,
    /// ... days.
    pub daily: usize,
    /// ... ISO weeks.
    pub weekly: usize,
    /// ... months.
    pub monthly: usize,
}

impl Policy {
    /// True when no rule is on: such a policy would forget everything, so it is refused.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// One backup as retention sees it.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its name (unique).
    pub name: String,
    /// Its group: backups are only compared with their own group.
    pub group: String,
    /// When it was taken.
    pub time: jiff::Timestamp,
}

/// What happens to one backup, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The backup's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Kept (true) or to be removed.
    pub keep: bool,
    /// The rules that keep it (`last`, `hourly`, ..., `newest verified`).
    pub reasons: Vec<String>,
}

/// The time bucket (hour, day, ISO week, month) a backup falls in, as a comparable string.
type BucketOf = fn(&jiff::civil::DateTime) -> String;

/// Plans which backups `policy` keeps. Decisions come newest first within each group, groups
/// in name order.
pub fn plan(items: &[Item], policy: &Policy) -> Vec<Decision> {
    let mut groups: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for i in items {
        groups.entry(&i.group).or_default().push(i);
    }
    let mut out = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|a, b| (b.time, &b.name).cmp(&(a.time, &a.name)));
        let rules: [(&str, usize, BucketOf); 5] = [
            ("last", policy.last, |_| String::new()),
            ("hourly", policy.hourly, |t| {
                t.strftime("%Y-%m-%d %H").to_string()
            }),
            ("daily", policy.daily, |t| {
                t.strftime("%Y-%m-%d").to_string()
            }),
            ("weekly", policy.weekly, |t| {
                let w = t.date().iso_week_date();
                format!("{}-W{}", w.year(), w.week())
            }),
            ("monthly", policy.monthly, |t| {
                t.strftime("%Y-%m").to_string()
            }),
        ];
        let mut remaining: Vec<usize> = rules.iter().map(|r| r.1).collect();
        let mut last_bucket: Vec<Option<String>> = vec![None; rules.len()];
        for (n, item) in members.iter().enumerate() {
            let civil = item.time.to_zoned(jiff::tz::TimeZone::UTC).datetime();
            let mut reasons = Vec::new();
            for (r, (rule, _, bucket_of)) in rules.iter().enumerate() {
                if remaining[r] == 0 {
                    continue;
                }
                // keep-last: every backup is its own bucket.
                let bucket = if *rule == "last" {
                    n.to_string()
                } else {
                    bucket_of(&civil)
                };
                if last_bucket[r].as_deref() != Some(bucket.as_str()) {
                    last_bucket[r] = Some(bucket);
                    remaining[r] -= 1;
                    reasons.push((*rule).to_owned());
                }
            }
            out.push(Decision {
                name: item.name.clone(),
                group: item.group.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    out
}

/// Keeps, in every group, the newest backup for which `verifies` is true, whatever the policy
/// said: a prune must never leave a group without a restorable backup. `verifies` is asked
/// newest first and only until one passes. A group where nothing verifies is kept whole (there
/// is no known-good backup to fall back on). Returns the names kept against the policy.
pub fn protect_newest_verified(
    decisions: &mut [Decision],
    mut verifies: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut rescued = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for d in decisions.iter() {
        if !groups.contains(&d.group) {
            groups.push(d.group.clone());
        }
    }
    for group in groups {
        let members: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].group == group)
            .collect();
        let good = members
            .iter()
            .copied()
            .find(|&i| verifies(&decisions[i].name));
        let (protect, reason): (Vec<usize>, &str) = match good {
            Some(i) => (vec![i], "newest verified"),
            None => (members, "nothing in the group verifies"),
        };
        for i in protect {
            let d = &mut decisions[i];
            if !d.keep {
                d.keep = true;
                rescued.push(d.name.clone());
            }
            d.reasons.push(reason.to_owned());
        }
    }
    rescued
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, time: &str) -> Item {
        Item {
            name: name.into(),
            group: "g".into(),
            time: time.parse().unwrap(),
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// Three backups a day, every day of January 2026.
    fn january() -> Vec<Item> {
        let mut v = Vec::new();
        for day in 1..=31 {
            for hour in [1, 9, 17] {
                let t = format!("2026-01-{day:02}T{hour:02}:30:00Z");
                v.push(item(&format!("b-{day:02}-{hour:02}"), &t));
            }
        }
        v
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let d = plan(
            &january(),
            &Policy {
                last: 2,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "b-31-09"]);
        assert_eq!(d.len(), 93);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let d = plan(
            &january(),
            &Policy {
                daily: 3,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "b-30-17", "b-29-17"]);
    }

    #[test]
    fn hourly_counts_hours_that_have_a_backup() {
        let d = plan(
            &january(),
            &Policy {
                hourly: 4,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "b-31-09", "b-31-01", "b-30-17"]);
    }

    #[test]
    fn weekly_uses_iso_weeks_and_monthly_months() {
        // 2026-01-25 is a Sunday: weeks W04 (19..25), W05 (26..31), W03 (12..18).
        let d = plan(
            &january(),
            &Policy {
                weekly: 3,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "b-25-17", "b-18-17"]);
        let mut items = january();
        items.push(item("dec", "2025-12-31T23:00:00Z"));
        items.push(item("nov", "2025-11-02T00:00:00Z"));
        let d = plan(
            &items,
            &Policy {
                monthly: 2,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "dec"]);
    }

    #[test]
    fn rules_combine_and_name_their_reasons() {
        let d = plan(
            &january(),
            &Policy {
                last: 1,
                daily: 2,
                monthly: 1,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "b-30-17"]);
        assert_eq!(d[0].reasons, ["last", "daily", "monthly"]);
        assert_eq!(d[3].reasons, ["daily"]);
    }

    #[test]
    fn groups_are_planned_apart() {
        let mut items = january();
        let mut other = item("other", "2025-06-01T00:00:00Z");
        other.group = "h".into();
        items.push(other);
        let d = plan(
            &items,
            &Policy {
                last: 1,
                ..Policy::default()
            },
        );
        assert_eq!(kept(&d), ["b-31-17", "other"]);
    }

    #[test]
    fn the_newest_backup_that_verifies_is_never_removed() {
        let items = vec![
            item("new-broken", "2026-01-03T00:00:00Z"),
            item("mid", "2026-01-02T00:00:00Z"),
            item("old", "2026-01-01T00:00:00Z"),
        ];
        // keep-last 1 keeps only the broken newest one; "mid" must survive.
        let mut d = plan(
            &items,
            &Policy {
                last: 1,
                ..Policy::default()
            },
        );
        let mut asked = Vec::new();
        let rescued = protect_newest_verified(&mut d, |n| {
            asked.push(n.to_owned());
            n != "new-broken"
        });
        assert_eq!(rescued, ["mid"]);
        assert_eq!(asked, ["new-broken", "mid"]);
        assert_eq!(kept(&d), ["new-broken", "mid"]);
        // Nothing verifies: nothing is removed from the group.
        let mut d = plan(
            &items,
            &Policy {
                last: 1,
                ..Policy::default()
            },
        );
        assert_eq!(protect_newest_verified(&mut d, |_| false), ["mid", "old"]);
        assert_eq!(kept(&d), ["new-broken", "mid", "old"]);
    }

    #[test]
    fn an_empty_policy_is_recognised() {
        assert!(Policy::default().is_empty());
        assert!(
            !Policy {
                weekly: 1,
                ..Policy::default()
            }
            .is_empty()
        );
    }
}
