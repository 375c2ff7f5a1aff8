//! `writelane trail --html FILE`: the [`Report`] as one self-contained page.
//!
//! The page needs no network: the style, the script and every chart are inline (SVG). It
//! shows the totals, a timeline per entity with one swimlane per writer, and the summary
//! tables (entities, writers, writer pairs, buckets, what was skipped).
//!
//! On a timeline every write is a mark in its writer's lane: a filled dot for a write that
//! landed, a red cross for a conflict, an orange square for another error, a ring around
//! calls that belong to an immediate replay. Overlap incidents are shaded bands across the
//! lanes, replays bands in their writer's lane. Each mark and band carries its details in
//! an SVG `<title>` (the browser's tooltip) and in `data-tip`, which the inline script shows
//! as a tooltip that follows the pointer.
//!
//! `eventTime` has one-second resolution, so the axis is in whole seconds: the writes of
//! one writer within one second are spread evenly across that second in the order the
//! report lists them, which is not a known order of the calls. The axis is cut where
//! nothing happens for longer than three incident windows (at least a minute), so bursts
//! hours apart (deployment cycles) each get room; each cut is marked and says how long
//! the quiet stretch was.
//!
//! Pages stay bounded for huge trails: at most [`MAX_TIMELINES`] entities get a timeline
//! (the most contended, in the report's order), a timeline draws at most
//! [`MAX_MARKS`] writes and the page at most [`MAX_PAGE_MARKS`], and the tables show at most [`MAX_ROWS`] rows each; the page says
//! what it left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Bucket, EntityReport, Report, TimelineEvent};
use crate::time;

/// Entities that get a timeline, the most contended first.
pub const MAX_TIMELINES: usize = 200;
/// Writes drawn on one timeline; later ones are counted, not drawn.
pub const MAX_MARKS: usize = 5_000;
/// Writes drawn on the whole page (about 1 KB of page each): later timelines draw fewer.
pub const MAX_PAGE_MARKS: usize = 50_000;
/// Rows per summary table.
pub const MAX_ROWS: usize = 1_000;

/// Plot geometry, in SVG user units.
const LABEL_W: i64 = 220;
const PLOT_W: i64 = 860;
const LANE_H: i64 = 28;
const AXIS_H: i64 = 30;
const TOP_PAD: i64 = 8;

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2433;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 4px;font-family:ui-monospace,Menlo,monospace}
.muted{color:#5b6578}.totals{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.total{border:1px solid #d8dde6;border-radius:6px;padding:6px 12px;min-width:90px}
.total b{display:block;font-size:20px}.total.bad b{color:#c62828}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d8dde6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,monospace;font-size:12px}
svg.timeline{display:block;margin:4px 0 8px;background:#fbfcfe;border:1px solid #e3e7ee}
.lane-bg{fill:#fff}.lane-bg.alt{fill:#f5f7fb}.lane-label{font:12px ui-monospace,Menlo,monospace;fill:#1d2433}
.axis{stroke:#8a93a6;stroke-width:1}.tick{font:11px ui-monospace,Menlo,monospace;fill:#5b6578}
.incident{fill:#ffb300;fill-opacity:.18;stroke:#ff8f00;stroke-opacity:.6}
.replay-band{fill:#8e24aa;fill-opacity:.14;stroke:#8e24aa;stroke-opacity:.5}
.mark-ok{fill:#2e7d32}.mark-conflict{stroke:#c62828;stroke-width:2.5}.mark-error{fill:#ef6c00}
.mark-replay{fill:none;stroke:#8e24aa;stroke-width:1.5}
.gap-bg{fill:#eef1f6}.gap-cut{stroke:#8a93a6;stroke-width:1.5;fill:none}
.legend span{margin-right:14px}.legend svg{vertical-align:middle}
#tip{position:fixed;pointer-events:none;background:#1d2433;color:#fff;padding:6px 8px;border-radius:4px;
font:12px/1.35 ui-monospace,Menlo,monospace;white-space:pre;display:none;z-index:10;max-width:640px}
.fight pre{background:#f6f8fa;padding:6px;margin:2px 0;white-space:pre-wrap;word-break:break-all}
.add{color:#2e7d32}.del{color:#c62828}
"#;

/// Shows `data-tip` of the element under the pointer; the SVG `<title>` stays for
/// browsers without script.
const SCRIPT: &str = r#"
(function(){var tip=document.getElementById('tip');
document.addEventListener('mousemove',function(e){var t=e.target.closest?e.target.closest('[data-tip]'):null;
if(!t){tip.style.display='none';return;}tip.textContent=t.getAttribute('data-tip');tip.style.display='block';
tip.style.left=Math.min(e.clientX+14,window.innerWidth-tip.offsetWidth-8)+'px';
tip.style.top=Math.min(e.clientY+14,window.innerHeight-tip.offsetHeight-8)+'px';});})();
"#;

/// Renders the page.
pub fn render(report: &Report) -> String {
    let names: BTreeMap<&str, &str> = report
        .writers
        .iter()
        .map(|w| (w.id.as_str(), w.name.as_str()))
        .collect();
    let name_of = |id: &str| names.get(id).copied().unwrap_or(id).to_owned();
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>writelane trail report</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    totals(&mut out, report);
    legend(&mut out);

    // Quiet stretches longer than this are cut out of a timeline's axis: three incident
    // windows, and at least a minute.
    let gap_s = i64::try_from(report.settings.window_ms / 1000)
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(3)
        .max(60);
    let mut budget = MAX_PAGE_MARKS;
    out.push_str("<h2 id=\"timelines\">Timelines</h2>\n");
    if report.entities.is_empty() {
        out.push_str("<p class=\"muted\">No writes to any entity.</p>\n");
    }
    for (i, entity) in report.entities.iter().take(MAX_TIMELINES).enumerate() {
        timeline(&mut out, i, entity, gap_s, &mut budget, &name_of);
    }
    if report.entities.len() > MAX_TIMELINES {
        let _ = writeln!(
            out,
            "<p class=\"muted\" id=\"timelines-left-out\">{} less contended entities have no timeline (see the table).</p>",
            report.entities.len() - MAX_TIMELINES
        );
    }
    tables(&mut out, report, &name_of);
    out.push_str("<div id=\"tip\"></div><script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>\n");
    out
}

/// Escapes text for HTML text and attribute values (double- or single-quoted).
fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in HTML.
            c if c.is_control() && c != '\n' && c != '\t' => s.push('\u{fffd}'),
            c => s.push(c),
        }
    }
    s
}

fn totals(out: &mut String, r: &Report) {
    let t = &r.totals;
    out.push_str("<h1>writelane trail</h1>\n");
    let _ = writeln!(
        out,
        "<p class=\"muted\">{} · incident window {} s · replay: {} calls within {} s · {} file(s) read, {} skipped, {} record(s)</p>",
        esc(&r.schema),
        r.settings.window_ms / 1000,
        r.settings.replay_calls,
        r.settings.replay_span_ms / 1000,
        r.reading.files_read,
        r.reading.files_skipped,
        r.reading.records
    );
    out.push_str("<div class=\"totals\" id=\"totals\">");
    let other: u64 = t.other_errors.values().sum();
    let unmapped: u64 = t.unmapped.values().sum();
    for (label, value, bad) in [
        ("entities", r.entities.len() as u64, false),
        ("writers", r.writers.len() as u64, false),
        ("writes", t.writes, false),
        ("conflicts", t.conflicts, t.conflicts > 0),
        ("other errors", other, false),
        ("incidents", t.incidents, t.incidents > 0),
        ("replays", t.replays, t.replays > 0),
        ("fights", t.fights, t.fights > 0),
        ("reads (not counted)", t.reads, false),
        ("unmapped writes", unmapped, false),
    ] {
        let _ = write!(
            out,
            "<div class=\"total{}\" data-total=\"{}\"><b>{value}</b>{}</div>",
            if bad { " bad" } else { "" },
            esc(label),
            esc(label)
        );
    }
    out.push_str("</div>\n");
}

fn legend(out: &mut String) {
    out.push_str(
        "<p class=\"legend muted\">\
<span><svg width=\"14\" height=\"14\"><circle cx=\"7\" cy=\"7\" r=\"4.5\" class=\"mark-ok\"/></svg> write</span>\
<span><svg width=\"14\" height=\"14\"><path d=\"M3 3L11 11M11 3L3 11\" class=\"mark-conflict\"/></svg> conflict</span>\
<span><svg width=\"14\" height=\"14\"><rect x=\"3\" y=\"3\" width=\"8\" height=\"8\" class=\"mark-error\"/></svg> other error</span>\
<span><svg width=\"14\" height=\"14\"><circle cx=\"7\" cy=\"7\" r=\"6\" class=\"mark-replay\"/></svg> immediate replay</span>\
<span><svg width=\"22\" height=\"14\"><rect x=\"1\" y=\"1\" width=\"20\" height=\"12\" class=\"incident\"/></svg> overlap incident</span>\
<span><svg width=\"14\" height=\"14\"><path d=\"M3 13L7 1M8 13L12 1\" class=\"gap-cut\"/></svg> axis cut (a quiet stretch left out)</span>\
Times have one-second resolution; writes within one second are spread across it in no known order. Hover for details.</p>\n",
    );
}

/// Width of the cut marking a quiet stretch left out of a time axis.
const GAP_W: i64 = 28;
/// Most pieces a time axis is cut into; the longest quiet stretches are cut first.
const MAX_SEGMENTS: usize = 12;
/// Pixels per tick label.
const TICK_SPACING: i64 = 170;

/// One stretch of a time axis: seconds `start..=end`, drawn from `x0` over `width`.
struct Segment {
    start: i64,
    end: i64,
    x0: i64,
    width: i64,
}

/// A time axis cut at quiet stretches longer than a gap, so bursts hours apart (deployment
/// cycles) each get room instead of a sliver. Each piece is linear; cuts are marked.
/// Arithmetic is in `i128`, so no times in a report (even hand-edited ones) overflow it.
struct Axis {
    segments: Vec<Segment>,
}

impl Axis {
    /// The axis for the seconds `seconds` (in any order), cut where nothing happens for
    /// more than `gap_s` seconds.
    fn new(mut seconds: Vec<i64>, gap_s: i64) -> Axis {
        seconds.sort_unstable();
        seconds.dedup();
        let (Some(&first), Some(&last)) = (seconds.first(), seconds.last()) else {
            return Axis {
                segments: vec![Segment {
                    start: 0,
                    end: 0,
                    x0: LABEL_W,
                    width: PLOT_W,
                }],
            };
        };
        // Cut after position i where the quiet stretch to i + 1 is long, the longest first.
        let mut cuts: Vec<(i128, usize)> = seconds
            .windows(2)
            .enumerate()
            .map(|(i, w)| (i128::from(w[1]) - i128::from(w[0]), i))
            .filter(|(gap, _)| *gap > i128::from(gap_s))
            .collect();
        cuts.sort_unstable_by(|a, b| b.cmp(a));
        cuts.truncate(MAX_SEGMENTS - 1);
        let mut at: Vec<usize> = cuts.into_iter().map(|(_, i)| i).collect();
        at.sort_unstable();
        let mut bounds = Vec::with_capacity(at.len() + 1);
        let mut start = first;
        for i in at {
            bounds.push((start, seconds[i]));
            start = seconds[i + 1];
        }
        bounds.push((start, last));
        let n = bounds.len() as i128;
        let spans: Vec<i128> = bounds
            .iter()
            .map(|(s, e)| i128::from(*e) - i128::from(*s) + 1)
            .collect();
        // Each piece gets its share of time plus an equal share, so a one-second burst
        // next to a long one is still wide enough to tell its marks apart.
        let average = spans.iter().sum::<i128>() / n;
        let weights: Vec<i128> = spans.iter().map(|s| s + average.max(1)).collect();
        let total: i128 = weights.iter().sum::<i128>().max(1);
        let available = i128::from(PLOT_W - GAP_W * (bounds.len() as i64 - 1)).max(n);
        let mut x0 = LABEL_W;
        let mut segments = Vec::with_capacity(bounds.len());
        for (i, ((start, end), weight)) in bounds.iter().zip(&weights).enumerate() {
            let width = if i + 1 == bounds.len() {
                (LABEL_W + PLOT_W - x0).max(1)
            } else {
                i64::try_from(available * weight / total)
                    .unwrap_or(1)
                    .max(1)
            };
            segments.push(Segment {
                start: *start,
                end: *end,
                x0,
                width,
            });
            x0 += width + GAP_W;
        }
        Axis { segments }
    }

    /// The x coordinate of second `s` plus `frac_milli` thousandths of it.
    fn x(&self, s: i64, frac_milli: i64) -> i64 {
        for seg in &self.segments {
            if s > seg.end {
                continue;
            }
            if s < seg.start {
                // In a cut: its middle.
                return seg.x0 - GAP_W / 2;
            }
            let span = (i128::from(seg.end) - i128::from(seg.start) + 1) * 1000;
            let offset = (i128::from(s) - i128::from(seg.start)) * 1000
                + i128::from(frac_milli.clamp(0, 1000));
            let dx = offset * i128::from(seg.width) / span.max(1);
            return seg.x0 + i64::try_from(dx).unwrap_or(seg.width).clamp(0, seg.width);
        }
        LABEL_W + PLOT_W
    }
}

/// A quiet stretch for people: `45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 4 h`.
fn human(secs: i128) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

fn timeline(
    out: &mut String,
    index: usize,
    e: &EntityReport,
    gap_s: i64,
    budget: &mut usize,
    name_of: &dyn Fn(&str) -> String,
) {
    let _ = writeln!(
        out,
        "<section class=\"entity\" id=\"entity-{index}\" data-entity=\"{}\">",
        esc(&e.id)
    );
    let _ = writeln!(
        out,
        "<h3>{}</h3><p class=\"muted\">{} write(s), {} conflict(s), {} writer(s), {} incident(s), {} replay(s), {} fight(s); {} to {}</p>",
        esc(&e.id),
        e.writes,
        e.conflicts,
        e.writers.len(),
        e.incidents.len(),
        e.replays.len(),
        e.fights.len(),
        esc(&e.first_seen),
        esc(&e.last_seen)
    );
    let drawn: &[TimelineEvent] = &e.timeline[..e.timeline.len().min(MAX_MARKS).min(*budget)];
    *budget -= drawn.len();
    let mut seconds: Vec<i64> = drawn.iter().map(|ev| ev.epoch_s).collect();
    for (start, end) in e
        .incidents
        .iter()
        .map(|i| (&i.start, &i.end))
        .chain(e.replays.iter().map(|r| (&r.start, &r.end)))
    {
        seconds.extend(time::parse(start));
        seconds.extend(time::parse(end));
    }
    let axis = Axis::new(seconds, gap_s);
    let mut lanes: Vec<&str> = Vec::new();
    let mut lane_index: BTreeMap<&str, usize> = BTreeMap::new();
    for w in e
        .writers
        .iter()
        .map(|w| w.writer.as_str())
        .chain(drawn.iter().map(|ev| ev.writer.as_str()))
    {
        if !lane_index.contains_key(w) {
            lane_index.insert(w, lanes.len());
            lanes.push(w);
        }
    }
    let lane_of = |w: &str| lane_index.get(w).copied();
    let height = TOP_PAD + lanes.len() as i64 * LANE_H + AXIS_H;
    let width = LABEL_W + PLOT_W + 20;
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"timeline of {}\">",
        esc(&e.id)
    );
    let lanes_bottom = TOP_PAD + lanes.len() as i64 * LANE_H;
    for (i, w) in lanes.iter().enumerate() {
        let y = TOP_PAD + i as i64 * LANE_H;
        let label = name_of(w);
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-writer=\"{}\"><rect class=\"lane-bg{}\" x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{LANE_H}\"/>\
<text class=\"lane-label\" x=\"6\" y=\"{}\" data-tip=\"{}\"><title>{}</title>{}</text></g>",
            esc(w),
            if i % 2 == 1 { " alt" } else { "" },
            y + LANE_H / 2 + 4,
            esc(w),
            esc(w),
            esc(&truncate(&label, 28))
        );
    }
    // Incidents: bands across every lane.
    for inc in &e.incidents {
        let (Some(s), Some(t)) = (time::parse(&inc.start), time::parse(&inc.end)) else {
            continue;
        };
        let x0 = axis.x(s, 0);
        let x1 = axis.x(t, 1000);
        let names: Vec<String> = inc.writers.iter().map(|w| name_of(w)).collect();
        let tip = format!(
            "overlap incident\n{} to {}\nwriters: {}\n{} write(s), {} conflict(s)",
            inc.start,
            inc.end,
            names.join(", "),
            inc.writes,
            inc.conflicts
        );
        let _ = writeln!(
            out,
            "<rect class=\"incident\" data-mark=\"incident\" x=\"{x0}\" y=\"{TOP_PAD}\" width=\"{}\" height=\"{}\" data-tip=\"{}\"><title>{}</title></rect>",
            (x1 - x0).max(2),
            lanes_bottom - TOP_PAD,
            esc(&tip),
            esc(&tip)
        );
    }
    // Replays: bands in their writer's lane.
    for rp in &e.replays {
        let (Some(s), Some(t), Some(lane)) = (
            time::parse(&rp.start),
            time::parse(&rp.end),
            lane_of(&rp.writer),
        ) else {
            continue;
        };
        let x0 = axis.x(s, 0);
        let x1 = axis.x(t, 1000);
        let y = TOP_PAD + lane as i64 * LANE_H + 3;
        let tip = format!(
            "immediate replay by {}\n{} x {}, {} conflict(s)\n{} to {}\ntool: {}{}",
            name_of(&rp.writer),
            rp.calls,
            rp.action,
            rp.conflicts,
            rp.start,
            rp.end,
            rp.tool,
            rp.retry_mode
                .as_deref()
                .map(|m| format!(", retry mode {m}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "<rect class=\"replay-band\" data-mark=\"replay\" x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"4\" data-tip=\"{}\"><title>{}</title></rect>",
            (x1 - x0).max(2),
            LANE_H - 6,
            esc(&tip),
            esc(&tip)
        );
    }
    // Marks: per lane and second, spread evenly across the second.
    let mut per_cell: BTreeMap<(usize, i64), i64> = BTreeMap::new();
    for ev in drawn {
        if let Some(lane) = lane_of(&ev.writer) {
            *per_cell.entry((lane, ev.epoch_s)).or_insert(0) += 1;
        }
    }
    let mut seen: BTreeMap<(usize, i64), i64> = BTreeMap::new();
    for ev in drawn {
        let Some(lane) = lane_of(&ev.writer) else {
            continue;
        };
        let count = per_cell
            .get(&(lane, ev.epoch_s))
            .copied()
            .unwrap_or(1)
            .max(1);
        let k = seen.entry((lane, ev.epoch_s)).or_insert(0);
        let frac = (2 * *k + 1) * 1000 / (2 * count);
        *k += 1;
        let x = axis.x(ev.epoch_s, frac);
        let y = TOP_PAD + lane as i64 * LANE_H + LANE_H / 2;
        mark(out, ev, x, y, &name_of(&ev.writer));
    }
    axis_lines(out, &axis, lanes_bottom);
    out.push_str("</svg>\n");
    if e.timeline.is_empty() && e.writes > 0 {
        out.push_str("<p class=\"muted\">This report was made without its timelines (the analysis kept none), so no write is drawn.</p>\n");
    }
    if e.timeline.len() > drawn.len() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} later write(s) not drawn.</p>",
            e.timeline.len() - drawn.len()
        );
    }
    entity_writers(out, e, name_of);
    if !e.buckets.is_empty() {
        out.push_str("<p class=\"muted\">Per bucket:</p>\n");
        bucket_table(out, &e.buckets, "entity-buckets");
    }
    fights(out, e, name_of);
    out.push_str("</section>\n");
}

/// The axis line per piece, tick labels, and the cuts between pieces.
fn axis_lines(out: &mut String, axis: &Axis, lanes_bottom: i64) {
    let (first, last) = match (axis.segments.first(), axis.segments.last()) {
        (Some(f), Some(l)) => (f.start, l.end),
        _ => return,
    };
    // Labels carry the date when the axis spans more than one day.
    let long = last.saturating_sub(first) >= 86_400;
    let label = |s: i64| {
        let full = time::format(s);
        let short = if long {
            full.get(5..19).map(|t| t.replace('T', " "))
        } else {
            full.get(11..19).map(str::to_owned)
        };
        (short.unwrap_or_else(|| full.clone()), full)
    };
    for (n, seg) in axis.segments.iter().enumerate() {
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{}\" y1=\"{lanes_bottom}\" x2=\"{}\" y2=\"{lanes_bottom}\"/>",
            seg.x0,
            seg.x0 + seg.width
        );
        let span = i128::from(seg.end) - i128::from(seg.start) + 1;
        let count = (seg.width / TICK_SPACING).max(1);
        let mut ticks: Vec<(i64, &str)> = (0..count)
            .map(|k| {
                let step = span * i128::from(k) / i128::from(count);
                (
                    seg.start.saturating_add(i64::try_from(step).unwrap_or(0)),
                    "start",
                )
            })
            .collect();
        if n + 1 == axis.segments.len() && seg.width >= TICK_SPACING && seg.end > seg.start {
            ticks.push((seg.end.saturating_add(1), "end"));
        }
        ticks.dedup_by_key(|t| t.0);
        for (s, anchor) in ticks {
            let x = if anchor == "end" {
                seg.x0 + seg.width
            } else {
                axis.x(s, 0)
            };
            let (short, full) = label(s);
            let _ = writeln!(
                out,
                "<line class=\"axis\" x1=\"{x}\" y1=\"{lanes_bottom}\" x2=\"{x}\" y2=\"{}\"/><text class=\"tick\" x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\"><title>{}</title>{}</text>",
                lanes_bottom + 4,
                lanes_bottom + 17,
                esc(&full),
                esc(&short)
            );
        }
        if let Some(next) = axis.segments.get(n + 1) {
            let quiet = i128::from(next.start) - i128::from(seg.end);
            let gx = seg.x0 + seg.width;
            let tip = format!(
                "axis cut: no writes for {} ({} to {})",
                human(quiet),
                time::format(seg.end),
                time::format(next.start)
            );
            let _ = writeln!(
                out,
                "<g class=\"gap\" data-mark=\"gap\" data-tip=\"{tip}\"><title>{tip}</title><rect class=\"gap-bg\" x=\"{gx}\" y=\"{TOP_PAD}\" width=\"{GAP_W}\" height=\"{}\"/>\
<path class=\"gap-cut\" d=\"M{} {}L{} {}M{} {}L{} {}\"/></g>",
                lanes_bottom - TOP_PAD + 6,
                gx + 8,
                lanes_bottom + 6,
                gx + 14,
                lanes_bottom - 6,
                gx + 14,
                lanes_bottom + 6,
                gx + 20,
                lanes_bottom - 6,
                tip = esc(&tip)
            );
        }
    }
}

fn mark(out: &mut String, ev: &TimelineEvent, x: i64, y: i64, writer: &str) {
    let mut tip = format!("{}\n{} by {}", ev.time, ev.action, writer);
    if let Some(run) = &ev.run {
        let _ = write!(tip, "\nrun: {run}");
    }
    let _ = write!(tip, "\noutcome: {}", ev.outcome);
    if let Some(code) = &ev.error_code {
        let _ = write!(tip, " ({code})");
    }
    if let Some(rev) = &ev.revision {
        let _ = write!(tip, "\nrevision: {rev}");
    }
    if ev.replay {
        tip.push_str("\npart of an immediate replay");
    }
    let tip = esc(&tip);
    let kind = match ev.outcome.as_str() {
        "ok" => "write",
        "conflict" => "conflict",
        _ => "error",
    };
    let _ = write!(
        out,
        "<g class=\"mark\" data-mark=\"{kind}\" data-writer=\"{}\" data-tip=\"{tip}\"><title>{tip}</title>",
        esc(&ev.writer)
    );
    match kind {
        "write" => {
            let _ = write!(
                out,
                "<circle class=\"mark-ok\" cx=\"{x}\" cy=\"{y}\" r=\"4.5\"/>"
            );
        }
        "conflict" => {
            let _ = write!(
                out,
                "<path class=\"mark-conflict\" d=\"M{} {}L{} {}M{} {}L{} {}\"/>",
                x - 5,
                y - 5,
                x + 5,
                y + 5,
                x + 5,
                y - 5,
                x - 5,
                y + 5
            );
        }
        _ => {
            let _ = write!(
                out,
                "<rect class=\"mark-error\" x=\"{}\" y=\"{}\" width=\"9\" height=\"9\"/>",
                x - 4,
                y - 4
            );
        }
    }
    if ev.replay {
        let _ = write!(
            out,
            "<circle class=\"mark-replay\" data-mark=\"replay-call\" cx=\"{x}\" cy=\"{y}\" r=\"8\"/>"
        );
    }
    out.push_str("</g>\n");
}

fn entity_writers(out: &mut String, e: &EntityReport, name_of: &dyn Fn(&str) -> String) {
    out.push_str(
        "<table class=\"entity-writers\"><tr><th>writer</th><th>writes</th><th>conflicts</th><th>other errors</th><th>first seen</th><th>last seen</th></tr>\n",
    );
    for w in e.writers.iter().take(MAX_ROWS) {
        let _ = writeln!(
            out,
            "<tr><td title=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.writer),
            esc(&name_of(&w.writer)),
            w.writes,
            w.conflicts,
            w.other_errors,
            esc(&w.first_seen),
            esc(&w.last_seen)
        );
    }
    out.push_str("</table>\n");
}

fn fights(out: &mut String, e: &EntityReport, name_of: &dyn Fn(&str) -> String) {
    for f in &e.fights {
        let names: Vec<String> = f.writers.iter().map(|w| name_of(w)).collect();
        let _ = writeln!(
            out,
            "<div class=\"fight\" data-mark=\"fight\"><p><b>Fight over the {}</b>: {} revert(s) between {}, {} to {}</p>",
            esc(&f.document),
            f.reverts,
            esc(&names.join(", ")),
            esc(&f.start),
            esc(&f.end)
        );
        for d in &f.diffs {
            let _ = writeln!(
                out,
                "<p class=\"muted\">{} (<span class=\"mono\">{}</span>) → {} (<span class=\"mono\">{}</span>)</p>",
                esc(&name_of(&d.from_writer)),
                esc(&truncate(&d.from, 24)),
                esc(&name_of(&d.to_writer)),
                esc(&truncate(&d.to, 24))
            );
            for s in &d.added {
                let _ = writeln!(out, "<pre class=\"add\">+ {}</pre>", esc(s));
            }
            for s in &d.removed {
                let _ = writeln!(out, "<pre class=\"del\">- {}</pre>", esc(s));
            }
        }
        out.push_str("</div>\n");
    }
}

fn tables(out: &mut String, r: &Report, name_of: &dyn Fn(&str) -> String) {
    out.push_str("<h2 id=\"entities\">Entities</h2>\n<table class=\"summary\" id=\"entity-table\"><tr><th>entity</th><th>writers</th><th>writes</th><th>conflicts</th><th>incidents</th><th>replays</th><th>fights</th><th>first seen</th><th>last seen</th></tr>\n");
    for (i, e) in r.entities.iter().take(MAX_ROWS).enumerate() {
        let link = if i < MAX_TIMELINES {
            format!("<a href=\"#entity-{i}\">{}</a>", esc(&e.id))
        } else {
            esc(&e.id)
        };
        let _ = writeln!(
            out,
            "<tr data-entity=\"{}\"><td class=\"mono\">{link}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.id),
            e.writers.len(),
            e.writes,
            e.conflicts,
            e.incidents.len(),
            e.replays.len(),
            e.fights.len(),
            esc(&e.first_seen),
            esc(&e.last_seen)
        );
    }
    out.push_str("</table>\n");
    left_out(out, r.entities.len());

    out.push_str("<h2 id=\"writers\">Writers</h2>\n<table class=\"summary\" id=\"writer-table\"><tr><th>writer</th><th>kind</th><th>account</th><th>tools</th><th>writes</th><th>conflicts</th><th>entities</th><th>runs</th></tr>\n");
    for w in r.writers.iter().take(MAX_ROWS) {
        let tools: Vec<String> = w
            .tools
            .iter()
            .map(|t| match &t.retry_mode {
                Some(m) => format!("{} (retry {m}): {}", t.tool, t.writes),
                None => format!("{}: {}", t.tool, t.writes),
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr data-writer=\"{}\"><td title=\"{}\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&w.id),
            esc(&w.id),
            esc(&w.name),
            esc(&w.kind),
            esc(&w.account),
            esc(&tools.join(", ")),
            w.writes,
            w.conflicts,
            w.entities,
            w.runs
        );
    }
    out.push_str("</table>\n");
    left_out(out, r.writers.len());

    out.push_str("<h2 id=\"pairs\">Writer pairs</h2>\n");
    if r.pairs.is_empty() {
        out.push_str("<p class=\"muted\">No two writers overlapped on any entity.</p>\n");
    } else {
        out.push_str("<table class=\"summary\" id=\"pair-table\"><tr><th>writers</th><th>incidents</th><th>entities</th></tr>\n");
        for p in r.pairs.iter().take(MAX_ROWS) {
            let _ = writeln!(
                out,
                "<tr><td>{} × {}</td><td class=\"n\">{}</td><td class=\"mono\">{}</td></tr>",
                esc(&name_of(&p.a)),
                esc(&name_of(&p.b)),
                p.incidents,
                esc(&p.entities.join(", "))
            );
        }
        out.push_str("</table>\n");
        left_out(out, r.pairs.len());
    }

    if !r.buckets.is_empty() {
        out.push_str("<h2 id=\"buckets\">Conflict rate over time</h2>\n");
        bucket_table(out, &r.buckets, "bucket-table");
    }

    out.push_str("<h2 id=\"skipped\">Skipped</h2>\n");
    let t = &r.totals;
    let mut rows: Vec<(String, String)> = Vec::new();
    for (code, n) in &t.other_errors {
        rows.push((format!("writes failed with {code}"), n.to_string()));
    }
    for (action, n) in &t.unmapped {
        rows.push((
            format!("writes of {action} with no entity known"),
            n.to_string(),
        ));
    }
    for (label, n) in [
        ("read-only records", t.reads),
        ("records of other event sources", t.other_sources),
        ("writes left out by the filters", t.filtered_out),
        ("bad records", r.reading.records_skipped),
    ] {
        if n > 0 {
            rows.push((label.to_owned(), n.to_string()));
        }
    }
    for p in r.reading.problems.iter().take(MAX_ROWS) {
        rows.push((
            format!(
                "{}: {}{}",
                p.file,
                p.reason,
                if p.whole_file { " (whole file)" } else { "" }
            ),
            p.records.to_string(),
        ));
    }
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">Nothing.</p>\n");
    } else {
        out.push_str("<table class=\"summary\" id=\"skipped-table\"><tr><th>what</th><th>records</th></tr>\n");
        for (what, n) in rows {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&what),
                esc(&n)
            );
        }
        out.push_str("</table>\n");
    }
}

/// Writes, conflicts, their rate and incidents per time bucket.
fn bucket_table(out: &mut String, buckets: &[Bucket], class: &str) {
    let _ = writeln!(
        out,
        "<table class=\"summary {class}\"><tr><th>bucket start</th><th>writes</th><th>conflicts</th><th>conflicts per 1000 writes</th><th>incidents</th></tr>"
    );
    for b in buckets.iter().take(MAX_ROWS) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&b.start),
            b.writes,
            b.conflicts,
            b.conflict_permille,
            b.incidents
        );
    }
    out.push_str("</table>\n");
    left_out(out, buckets.len());
}

fn left_out(out: &mut String, len: usize) {
    if len > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} more row(s) left out; the JSON report (--json) has them all.</p>",
            len - MAX_ROWS
        );
    }
}

/// At most `max` characters, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;

    fn event(t: i64, writer: &str, outcome: &str, replay: bool) -> TimelineEvent {
        TimelineEvent {
            time: time::format(t),
            epoch_s: t,
            writer: writer.into(),
            run: Some("run-1".into()),
            action: "PutRolePolicy".into(),
            outcome: outcome.into(),
            error_code: (outcome == "conflict").then(|| "ConcurrentModification".into()),
            replay,
            revision: None,
        }
    }

    fn report() -> Report {
        let t0 = 1_767_571_200;
        let a = "arn:aws:iam::111122223333:role/deploy";
        let b = "arn:aws:iam::111122223333:role/<fixer>&\"x\"";
        let entity = EntityReport {
            id: "111122223333:role/app".into(),
            account: "111122223333".into(),
            kind: "role".into(),
            name: "app".into(),
            writes: 4,
            conflicts: 2,
            other_errors: Default::default(),
            first_seen: time::format(t0),
            last_seen: time::format(t0 + 2),
            writers: vec![],
            incidents: vec![Incident {
                start: time::format(t0),
                end: time::format(t0 + 2),
                writers: vec![a.into(), b.into()],
                writes: 4,
                conflicts: 2,
            }],
            replays: vec![Replay {
                writer: b.into(),
                action: "PutRolePolicy".into(),
                calls: 3,
                conflicts: 2,
                start: time::format(t0),
                end: time::format(t0 + 1),
                tool: "boto3".into(),
                retry_mode: Some("legacy".into()),
            }],
            fights: vec![],
            buckets: vec![],
            timeline: vec![
                event(t0, a, "ok", false),
                event(t0, b, "conflict", true),
                event(t0, b, "conflict", true),
                event(t0 + 2, b, "ok", true),
            ],
        };
        Report {
            schema: crate::report::SCHEMA.into(),
            writelane_version: "0".into(),
            settings: Settings {
                window_ms: 10_000,
                replay_calls: 3,
                replay_span_ms: 2_000,
                bucket_ms: None,
                since: None,
                until: None,
                entities: vec![],
                accounts: vec![],
                writers: vec![],
                sources: vec!["iam.amazonaws.com".into()],
            },
            reading: Reading::default(),
            totals: Totals::default(),
            entities: vec![entity],
            writers: vec![],
            pairs: vec![],
            buckets: vec![],
        }
    }

    #[test]
    fn marks_every_write_incident_and_replay() {
        let page = render(&report());
        assert_eq!(page.matches("data-mark=\"write\"").count(), 2);
        assert_eq!(page.matches("data-mark=\"conflict\"").count(), 2);
        assert_eq!(page.matches("data-mark=\"incident\"").count(), 1);
        assert_eq!(page.matches("data-mark=\"replay\"").count(), 1);
        assert_eq!(page.matches("data-mark=\"replay-call\"").count(), 3);
        // Two lanes: the writers come from the timeline even when the writer list is empty.
        assert_eq!(page.matches("<g class=\"lane\"").count(), 2);
        assert!(page.contains("data-entity=\"111122223333:role/app\""));
    }

    #[test]
    fn text_from_the_trail_is_escaped_and_nothing_is_fetched() {
        let page = render(&report());
        assert!(!page.contains("<fixer>"));
        assert!(page.contains("&lt;fixer&gt;&amp;&quot;x&quot;"));
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            assert!(
                !page.contains(needle),
                "the page refers outside itself: {needle}"
            );
        }
    }

    #[test]
    fn same_second_marks_do_not_overlap() {
        let page = render(&report());
        // The two conflicts of writer b in one second sit at different x.
        let xs: Vec<&str> = page
            .match_indices("<path class=\"mark-conflict\" d=\"M")
            .map(|(i, m)| {
                let rest = &page[i + m.len()..];
                &rest[..rest.find(' ').unwrap_or(0)]
            })
            .collect();
        assert_eq!(xs.len(), 2);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn the_axis_cuts_quiet_stretches_and_keeps_order() {
        let t0 = 1_767_571_200;
        let axis = Axis::new(vec![t0, t0 + 5, t0 + 3600, t0 + 3602], 60);
        assert_eq!(
            axis.segments.len(),
            2,
            "one cut for the hour between bursts"
        );
        let xs: Vec<i64> = [t0, t0 + 5, t0 + 3600, t0 + 3602]
            .iter()
            .map(|&s| axis.x(s, 0))
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        // Both bursts get real room, not a sliver.
        assert!(xs[1] - xs[0] > 100 && xs[3] - xs[2] > 100, "{xs:?}");
        assert!(xs.iter().all(|x| (LABEL_W..=LABEL_W + PLOT_W).contains(x)));
        // A quiet stretch shorter than the gap stays on a linear axis.
        assert_eq!(Axis::new(vec![t0, t0 + 30], 60).segments.len(), 1);
        // Many bursts: at most MAX_SEGMENTS pieces.
        let many: Vec<i64> = (0..100).map(|k| t0 + k * 7200).collect();
        assert_eq!(Axis::new(many, 60).segments.len(), MAX_SEGMENTS);
        // Extreme times do not overflow.
        let wild = Axis::new(vec![i64::MIN, 0, i64::MAX], 60);
        let _ = (wild.x(i64::MIN, 0), wild.x(i64::MAX, 1000), wild.x(5, 500));
    }

    #[test]
    fn the_page_draws_a_bounded_number_of_marks() {
        let mut r = report();
        let base = r.entities[0].clone();
        r.entities = (0..12)
            .map(|i| {
                let mut e = base.clone();
                e.id = format!("111122223333:role/r{i}");
                e.timeline = (0..MAX_MARKS as i64 + 10)
                    .map(|k| event(1_767_571_200 + k, "w", "ok", false))
                    .collect();
                e
            })
            .collect();
        let page = render(&r);
        assert_eq!(page.matches("data-mark=\"write\"").count(), MAX_PAGE_MARKS);
        assert_eq!(page.matches("<section class=\"entity\"").count(), 12);
        assert!(page.contains("later write(s) not drawn"));
    }

    #[test]
    fn buckets_show_overall_and_per_entity() {
        let mut r = report();
        let bucket = Bucket {
            start: time::format(1_767_571_200),
            writes: 4,
            conflicts: 2,
            conflict_permille: 500,
            incidents: 1,
        };
        r.buckets = vec![bucket.clone()];
        r.entities[0].buckets = vec![bucket];
        let page = render(&r);
        assert!(page.contains("class=\"summary bucket-table\""));
        assert!(page.contains("class=\"summary entity-buckets\""));
        assert_eq!(page.matches("<td class=\"n\">500</td>").count(), 2);
    }

    #[test]
    fn an_empty_report_renders() {
        let mut r = report();
        r.entities.clear();
        let page = render(&r);
        assert!(page.contains("No writes to any entity."));
        assert!(page.ends_with("</html>\n"));
    }

    #[test]
    fn bad_times_in_a_report_do_not_panic() {
        let mut r = report();
        r.entities[0].incidents[0].start = "not a time".into();
        r.entities[0].timeline[0].epoch_s = i64::MIN;
        r.entities[0].timeline[1].epoch_s = i64::MAX;
        let page = render(&r);
        assert_eq!(page.matches("data-mark=\"incident\"").count(), 0);
    }
}
