//! The report as text a person reads in ten seconds: the counts, then each class of root
//! cause with its packages, the first differing input on both sides, what it invalidated and
//! what to do. `--json` is the same [`Report`] serialized.

use std::fmt::Write;

use crate::compare::{ActionRef, Report};

/// Root causes shown in full per class; the rest are named on one line.
const SHOWN: usize = 5;
/// Invalidated actions named per root cause.
const NAMED: usize = 4;

fn time(secs: u64) -> String {
    // A civil UTC date from Unix seconds (Howard Hinnant's days_from_civil inverse).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn names(v: &[ActionRef], max: usize) -> String {
    let mut s: Vec<String> = v.iter().take(max).map(ActionRef::short).collect();
    if v.len() > max {
        s.push(format!("+{} more", v.len() - max));
    }
    s.join(", ")
}

fn clip(s: &str) -> String {
    const MAX: usize = 160;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let b = &r.baseline;
    let _ = writeln!(
        o,
        "sgcache explain: `go {}` against {}: `go {}`, recorded {} with {}",
        r.command.join(" "),
        b.source,
        b.command.join(" "),
        time(b.recorded_at),
        b.go_version
    );
    let s = &r.summary;
    let mut line = format!(
        "  {} actions, {} missed: {} root cause{}, {} cascade{}, {} not available",
        s.actions,
        s.missed,
        s.root_causes,
        if s.root_causes == 1 { "" } else { "s" },
        s.cascades,
        if s.cascades == 1 { "" } else { "s" },
        s.not_available
    );
    if !r.groups.is_empty() {
        let classes: Vec<&str> = r.groups.iter().map(|g| g.class.as_str()).collect();
        let _ = write!(line, " (classes: {})", classes.join(", "));
    }
    let _ = writeln!(o, "{line}");
    if s.uncacheable_tests > 0 {
        let _ = writeln!(
            o,
            "  {} test result{} not cacheable in this run (go test flags or local directory mode)",
            s.uncacheable_tests,
            if s.uncacheable_tests == 1 {
                " is"
            } else {
                "s are"
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    if s.missed == 0 {
        let _ = writeln!(o, "  nothing missed the cache.");
    }
    for g in &r.groups {
        let _ = writeln!(
            o,
            "\n{} — {} root cause{}: {}",
            g.class.as_str(),
            g.root_causes.len(),
            if g.root_causes.len() == 1 { "" } else { "s" },
            g.title
        );
        for rc in g.root_causes.iter().take(SHOWN) {
            let hit = if rc.missed {
                ""
            } else {
                "  (its new result was in the cache)"
            };
            let _ = writeln!(o, "  {}{hit}", rc.action.short());
            if let Some(c) = rc.changes.first() {
                let _ = writeln!(o, "      {}", clip(&c.what));
                // A test input's line is a path and a hash: its stat line says more.
                let (b, n) = match &c.detail {
                    Some((b, n)) if !b.is_empty() && !n.is_empty() && b != n => (
                        format!("{} {}", c.key, b.join("; ")),
                        format!("{} {}", c.key, n.join("; ")),
                    ),
                    _ => (
                        c.baseline.clone().unwrap_or_else(|| "(absent)".into()),
                        c.now.clone().unwrap_or_else(|| "(absent)".into()),
                    ),
                };
                let _ = writeln!(o, "      baseline: {}", clip(&b));
                let _ = writeln!(o, "      now:      {}", clip(&n));
                if rc.changes.len() > 1 {
                    let more: Vec<&str> = rc.changes[1..]
                        .iter()
                        .take(4)
                        .map(|c| c.key.as_str())
                        .collect();
                    let _ = writeln!(
                        o,
                        "      and {} more change{}: {}{}",
                        rc.changes.len() - 1,
                        if rc.changes.len() == 2 { "" } else { "s" },
                        more.join(", "),
                        if rc.changes.len() > 5 { ", …" } else { "" }
                    );
                }
            }
            if !rc.invalidated.is_empty() {
                let _ = writeln!(
                    o,
                    "      invalidated {}: {}",
                    rc.invalidated.len(),
                    names(&rc.invalidated, NAMED)
                );
            }
        }
        if g.root_causes.len() > SHOWN {
            let rest: Vec<ActionRef> = g.root_causes[SHOWN..]
                .iter()
                .map(|r| r.action.clone())
                .collect();
            let _ = writeln!(o, "  and {} more: {}", rest.len(), names(&rest, 8));
        }
        let _ = writeln!(o, "  → {}", g.remedy);
    }
    if !r.not_available.is_empty() {
        let _ = writeln!(
            o,
            "\nnot available — {} action{} with the baseline's inputs: {}",
            r.not_available.len(),
            if r.not_available.len() == 1 { "" } else { "s" },
            names(&r.not_available, 8)
        );
        let _ = writeln!(
            o,
            "  → nothing changed: the entry was evicted, never uploaded, stored in a namespace this job does not read, or refused by verification"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00 UTC");
    }
}
