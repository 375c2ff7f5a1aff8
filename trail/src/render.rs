//! The terminal report: the most contended entities first (writers, conflicts, incidents,
//! replays, fights), then the writer pairs, the writers, the buckets, and what was skipped
//! and why.

use std::collections::HashMap;
use std::fmt::Write;

use crate::report::Report;

/// Short writer names for tables: the role or user name, with its account when two
/// writers share a name.
fn writer_names(report: &Report) -> HashMap<String, String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for w in &report.writers {
        *count.entry(w.name.as_str()).or_default() += 1;
    }
    report
        .writers
        .iter()
        .map(|w| {
            let name = if count[w.name.as_str()] > 1 && !w.account.is_empty() {
                format!("{} ({})", w.name, w.account)
            } else {
                w.name.clone()
            };
            (w.id.clone(), name)
        })
        .collect()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The report as text, with at most `top` entities in detail (0: all).
pub fn text(report: &Report, top: usize) -> String {
    let names = writer_names(report);
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = String::new();
    let r = &report.reading;
    let t = &report.totals;
    let _ = writeln!(
        out,
        "writelane trail: {} read ({} MB, {}), {} skipped; {} on {} by {}; {}, {}, {}, {}",
        plural(r.files_read, "file", "files"),
        r.bytes / 1_000_000,
        plural(r.records, "record", "records"),
        r.files_skipped,
        plural(t.writes, "write", "writes"),
        plural(report.entities.len() as u64, "entity", "entities"),
        plural(report.writers.len() as u64, "writer", "writers"),
        plural(t.conflicts, "conflict", "conflicts"),
        plural(t.incidents, "incident", "incidents"),
        plural(t.replays, "replay", "replays"),
        plural(t.fights, "fight", "fights"),
    );
    let _ = writeln!(
        out,
        "(window {} ms; replay: {} calls within {} ms of a conflict; eventTime has one-second resolution, so writes in the same second have no known order)",
        report.settings.window_ms, report.settings.replay_calls, report.settings.replay_span_ms
    );

    let shown = if top == 0 {
        report.entities.len()
    } else {
        top.min(report.entities.len())
    };
    if shown > 0 {
        let _ = writeln!(out, "\nMost contended entities");
    }
    for (i, e) in report.entities.iter().take(shown).enumerate() {
        let _ = writeln!(
            out,
            "\n{}. {}  ({} {} in {})",
            i + 1,
            e.id,
            e.kind,
            e.name,
            e.account
        );
        let mut line = format!(
            "   {}, {}",
            plural(e.writes, "write", "writes"),
            plural(e.conflicts, "conflict", "conflicts")
        );
        if !e.other_errors.is_empty() {
            let errs: Vec<String> = e
                .other_errors
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            let _ = write!(line, ", other errors: {}", errs.join(", "));
        }
        let _ = writeln!(out, "{line}; first {}, last {}", e.first_seen, e.last_seen);
        for w in &e.writers {
            let _ = writeln!(
                out,
                "     {:<40} {:>7} writes {:>6} conflicts {:>5} errors",
                name(&w.writer),
                w.writes,
                w.conflicts,
                w.other_errors
            );
        }
        if !e.incidents.is_empty() {
            let worst = e
                .incidents
                .iter()
                .max_by_key(|x| (x.conflicts, x.writes))
                .unwrap_or(&e.incidents[0]);
            let who: Vec<String> = worst.writers.iter().map(|w| name(w)).collect();
            let _ = writeln!(
                out,
                "   {}; the largest: {} to {}, {} ({}, {})",
                plural(e.incidents.len() as u64, "incident", "incidents"),
                worst.start,
                worst.end,
                who.join(" × "),
                plural(worst.writes, "write", "writes"),
                plural(worst.conflicts, "conflict", "conflicts"),
            );
        }
        for rp in &e.replays {
            let _ = writeln!(
                out,
                "   immediate replay: {} repeated {} {} times from {} to {} after a conflict ({}{})",
                name(&rp.writer),
                rp.action,
                rp.calls,
                rp.start,
                rp.end,
                rp.tool,
                rp.retry_mode
                    .as_ref()
                    .map(|m| format!(", retry mode {m}"))
                    .unwrap_or_default()
            );
        }
        for f in &e.fights {
            let who: Vec<String> = f.writers.iter().map(|w| name(w)).collect();
            let _ = writeln!(
                out,
                "   fight on {}: {} reverted each other {} from {} to {}",
                f.document,
                who.join(" and "),
                plural(f.reverts, "time", "times"),
                f.start,
                f.end
            );
            for d in &f.diffs {
                let _ = writeln!(
                    out,
                    "     {} ({}) replaced {} ({}):",
                    name(&d.to_writer),
                    short_token(&d.to),
                    name(&d.from_writer),
                    short_token(&d.from)
                );
                for s in &d.added {
                    let _ = writeln!(out, "       + {s}");
                }
                for s in &d.removed {
                    let _ = writeln!(out, "       - {s}");
                }
                if d.added.is_empty() && d.removed.is_empty() {
                    let _ = writeln!(
                        out,
                        "       (same statements; Version or an unparsed document differs)"
                    );
                }
            }
        }
    }
    if shown < report.entities.len() {
        let _ = writeln!(
            out,
            "\n... and {} more (--top 0 shows all, --json gives every one)",
            plural((report.entities.len() - shown) as u64, "entity", "entities")
        );
    }

    if !report.pairs.is_empty() {
        let _ = writeln!(out, "\nWriter pairs");
        for p in &report.pairs {
            let _ = writeln!(
                out,
                "  {} × {}: {} on {}",
                name(&p.a),
                name(&p.b),
                plural(p.incidents, "incident", "incidents"),
                plural(p.entities.len() as u64, "entity", "entities")
            );
        }
    }

    if !report.writers.is_empty() {
        let _ = writeln!(out, "\nWriters");
        for w in &report.writers {
            let tools: Vec<String> = w
                .tools
                .iter()
                .map(|u| match &u.retry_mode {
                    Some(m) => format!("{} {} (retry mode {m})", u.tool, u.writes),
                    None => format!("{} {}", u.tool, u.writes),
                })
                .collect();
            let _ = writeln!(
                out,
                "  {} [{}]: {}, {}, {}, {}; {}",
                name(&w.id),
                w.id,
                plural(w.writes, "write", "writes"),
                plural(w.conflicts, "conflict", "conflicts"),
                plural(w.entities, "entity", "entities"),
                plural(w.runs, "run", "runs"),
                tools.join(", ")
            );
        }
    }

    if !report.buckets.is_empty() {
        let _ = writeln!(
            out,
            "\nPer bucket ({} ms)",
            report.settings.bucket_ms.unwrap_or(0)
        );
        for b in &report.buckets {
            let _ = writeln!(
                out,
                "  {}  {:>7} writes {:>6} conflicts ({:>3}.{}%) {:>5} incidents",
                b.start,
                b.writes,
                b.conflicts,
                b.conflict_permille / 10,
                b.conflict_permille % 10,
                b.incidents
            );
        }
    }

    let _ = writeln!(out, "\nSkipped");
    let _ = writeln!(
        out,
        "  {} of analysed sources, {} of other sources, {} left out by filters",
        plural(t.reads, "read", "reads"),
        plural(t.other_sources, "record", "records"),
        plural(t.filtered_out, "write", "writes")
    );
    if !t.unmapped.is_empty() {
        let list: Vec<String> = t.unmapped.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let _ = writeln!(out, "  writes naming no entity: {}", list.join(", "));
    }
    if !t.other_errors.is_empty() {
        let list: Vec<String> = t
            .other_errors
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  failed writes that are not conflicts (counted, not conflicts): {}",
            list.join(", ")
        );
    }
    for p in &r.problems {
        if p.whole_file {
            let _ = writeln!(out, "  {}: skipped whole: {}", p.file, p.reason);
        } else {
            let _ = writeln!(
                out,
                "  {}: {} skipped: {}",
                p.file,
                plural(p.records, "record", "records"),
                p.reason
            );
        }
    }
    out
}

fn short_token(token: &str) -> &str {
    let hex = token.rsplit(':').next().unwrap_or(token);
    hex.get(..12).unwrap_or(hex)
}
