//! From the collected write events to the [`Report`]: per entity its writers, incidents,
//! immediate replays, fights and buckets; per writer its tools; per writer pair the
//! entities they overlap on.
//!
//! Every decision is integer arithmetic on whole seconds: `eventTime` has one-second
//! resolution and marks completion, so writes in the same second are never put in an order
//! that means anything (they are sorted by their other fields only to be deterministic).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::collect::{Collector, Counts, Event, CONFLICT, ERROR, OK};
use crate::extract::{describe_writer, EntityKey};
use crate::report::*;
use crate::time::format;

/// The analysis knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Incident window.
    pub window_ms: u64,
    /// Calls that make an immediate replay.
    pub replay_calls: u32,
    /// Their span.
    pub replay_span_ms: u64,
    /// Bucket size.
    pub bucket_ms: Option<u64>,
    /// Put every write on its entity's timeline in the report (the JSON and the HTML page
    /// need it; the terminal report does not, and it is the one part of the report as
    /// large as the trail's writes).
    pub timeline: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            window_ms: 10_000,
            replay_calls: 3,
            replay_span_ms: 2_000,
            bucket_ms: None,
            timeline: true,
        }
    }
}

/// Everything the collectors gathered, merged, with string ids ranked in string order.
pub struct Merged {
    strings: Vec<Box<str>>,
    events: Vec<Event>,
    statements: HashMap<u32, Vec<String>>,
    /// The counts over all files.
    pub counts: Counts,
}

/// Merge the collectors of every thread. The result does not depend on how files were
/// spread over threads or in which order they were read.
pub fn merge(collectors: Vec<Collector>) -> Merged {
    let mut all: BTreeSet<Box<str>> = BTreeSet::new();
    for c in &collectors {
        all.extend(c.strings.strings.iter().skip(1).cloned());
    }
    let mut strings: Vec<Box<str>> = vec!["".into()];
    strings.extend(all);
    let rank: HashMap<&str, u32> = strings
        .iter()
        .enumerate()
        .map(|(i, s)| (&**s, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    // Ids are rewritten in place and each thread's events appended to the largest
    // thread's vector, so merging never holds two copies of the events.
    let mut collectors = collectors;
    collectors.sort_by_key(|c| std::cmp::Reverse(c.events.len()));
    let mut events: Vec<Event> = Vec::new();
    let mut statements = HashMap::new();
    let mut counts = Counts::default();
    for mut c in collectors {
        let map: Vec<u32> = c
            .strings
            .strings
            .iter()
            .map(|s| if s.is_empty() { 0 } else { rank[&**s] })
            .collect();
        let m = |id: u32| map[id as usize];
        for e in c.events.iter_mut() {
            *e = Event {
                entity: m(e.entity),
                writer: m(e.writer),
                action: m(e.action),
                error: m(e.error),
                slot: m(e.slot),
                token: m(e.token),
                run: m(e.run),
                tool: m(e.tool),
                retry: m(e.retry),
                ..*e
            };
        }
        if events.is_empty() {
            events = std::mem::take(&mut c.events);
        } else {
            events.append(&mut c.events);
        }
        for (token, list) in c.statements {
            statements.entry(m(token)).or_insert(list);
        }
        counts.add(c.counts);
    }
    events.sort_unstable();
    // The same event delivered twice (CloudTrail does at times, and inputs may overlap)
    // counts once; events without an id are never merged.
    events.dedup_by(|b, a| a.event_id != 0 && a == b);
    Merged {
        strings,
        events,
        statements,
        counts,
    }
}

fn bucket_rows(map: &BTreeMap<i64, (u64, u64, u64)>, bucket_ms: u64) -> Vec<Bucket> {
    map.iter()
        .map(|(&b, &(writes, conflicts, incidents))| Bucket {
            start: format(b.saturating_mul(i64::try_from(bucket_ms).unwrap_or(i64::MAX)) / 1000),
            writes,
            conflicts,
            conflict_permille: (conflicts * 1000).checked_div(writes).unwrap_or(0),
            incidents,
        })
        .collect()
}

fn bucket_of(t: i64, bucket_ms: u64) -> i64 {
    // `t` in seconds (a 4-digit year, so `* 1000` cannot overflow); buckets of
    // `bucket_ms` aligned to the epoch.
    (t * 1000).div_euclid(i64::try_from(bucket_ms.max(1)).unwrap_or(i64::MAX))
}

/// Build the report. `reading` and `settings` are passed through.
pub fn report(merged: &Merged, knobs: &Knobs, settings: Settings, reading: Reading) -> Report {
    build(merged, knobs, settings, reading, None)
}

/// The report without timelines, and for each merged event (in their order) whether it
/// belongs to an immediate replay: what [`write_json_streaming`] needs.
pub fn report_with_marks(
    merged: &Merged,
    knobs: &Knobs,
    settings: Settings,
    reading: Reading,
) -> (Report, Vec<bool>) {
    let mut knobs = knobs.clone();
    knobs.timeline = false;
    let mut marks = Vec::with_capacity(merged.events.len());
    let report = build(merged, &knobs, settings, reading, Some(&mut marks));
    (report, marks)
}

/// One write as a timeline entry.
fn timeline_event(merged: &Merged, e: &Event, replay: bool) -> TimelineEvent {
    let s = |id: u32| -> String { merged.strings[id as usize].to_string() };
    TimelineEvent {
        time: format(e.t),
        epoch_s: e.t,
        writer: s(e.writer),
        run: (e.run != 0).then(|| s(e.run)),
        action: s(e.action),
        outcome: match e.outcome {
            OK => "ok",
            CONFLICT => "conflict",
            _ => "error",
        }
        .to_string(),
        error_code: (e.error != 0).then(|| s(e.error)),
        replay,
        revision: (e.token != 0).then(|| s(e.token)),
    }
}

/// Write `report` (made without timelines) as compact JSON, each entity's timeline made
/// entry by entry from the merged events as it is written, so the timelines never exist
/// all at once. The text is what serializing the report with its timelines gives.
pub fn write_json_streaming(
    merged: &Merged,
    report_without_timelines: &Report,
    marks: &[bool],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut ranges: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut start = 0;
    while start < merged.events.len() {
        let entity = merged.events[start].entity;
        let mut end = start;
        while end < merged.events.len() && merged.events[end].entity == entity {
            end += 1;
        }
        ranges.insert(&merged.strings[entity as usize], (start, end));
        start = end;
    }
    let mut shell = report_without_timelines.clone();
    let entities = std::mem::take(&mut shell.entities);
    let text = serde_json::to_string(&shell)?;
    let marker = "\"entities\":[],\"writers\":";
    let Some(at) = text.find(marker) else {
        return serde_json::to_writer(&mut *out, report_without_timelines).map_err(Into::into);
    };
    let (head, tail) = text.split_at(at + "\"entities\":[".len());
    out.write_all(head.as_bytes())?;
    for (i, e) in entities.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let text = serde_json::to_string(e)?;
        let end = "\"timeline\":[]}";
        match (text.strip_suffix(end), ranges.get(e.id.as_str())) {
            (Some(body), Some(&(from, to))) => {
                out.write_all(body.as_bytes())?;
                out.write_all(b"\"timeline\":[")?;
                for k in from..to {
                    if k > from {
                        out.write_all(b",")?;
                    }
                    let entry = timeline_event(
                        merged,
                        &merged.events[k],
                        marks.get(k).copied().unwrap_or(false),
                    );
                    serde_json::to_writer(&mut *out, &entry)?;
                }
                out.write_all(b"]}")?;
            }
            _ => out.write_all(text.as_bytes())?,
        }
    }
    out.write_all(tail.as_bytes())?;
    Ok(())
}

fn build(
    merged: &Merged,
    knobs: &Knobs,
    settings: Settings,
    reading: Reading,
    mut marks: Option<&mut Vec<bool>>,
) -> Report {
    let s = |id: u32| -> String { merged.strings[id as usize].to_string() };
    let ev = &merged.events;
    let mut entities = Vec::new();
    let mut pairs: BTreeMap<(u32, u32), (u64, BTreeSet<u32>)> = BTreeMap::new();
    let mut overall_buckets: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    let mut totals = Totals {
        reads: merged.counts.reads,
        other_sources: merged.counts.other_sources,
        unmapped: merged.counts.unmapped.clone(),
        filtered_out: merged.counts.filtered_out,
        ..Totals::default()
    };
    // Per writer: writes, conflicts, entities, runs, (tool, retry) -> writes.
    struct W {
        writes: u64,
        conflicts: u64,
        entities: BTreeSet<u32>,
        runs: BTreeSet<u32>,
        tools: BTreeMap<(u32, u32), u64>,
    }
    let mut writers: BTreeMap<u32, W> = BTreeMap::new();
    // Compared in milliseconds: `(t - t0) * 1000 <= window_ms`, so a window below a
    // second joins same-second writes only.
    let window_ms = i64::try_from(knobs.window_ms).unwrap_or(i64::MAX / 2);
    let span_ms = i64::try_from(knobs.replay_span_ms).unwrap_or(i64::MAX / 2);

    let mut start = 0;
    while start < ev.len() {
        let entity = ev[start].entity;
        let mut end = start;
        while end < ev.len() && ev[end].entity == entity {
            end += 1;
        }
        let group = &ev[start..end];
        start = end;

        let mut writes = 0;
        let mut conflicts = 0;
        let mut other_errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_writer: BTreeMap<u32, (u64, u64, u64, i64, i64)> = BTreeMap::new();
        for e in group {
            writes += 1;
            let w = per_writer.entry(e.writer).or_insert((0, 0, 0, e.t, e.t));
            w.0 += 1;
            w.4 = e.t;
            match e.outcome {
                CONFLICT => {
                    conflicts += 1;
                    w.1 += 1;
                }
                ERROR => {
                    *other_errors.entry(s(e.error)).or_default() += 1;
                    w.2 += 1;
                }
                _ => {}
            }
            let wr = writers.entry(e.writer).or_insert_with(|| W {
                writes: 0,
                conflicts: 0,
                entities: BTreeSet::new(),
                runs: BTreeSet::new(),
                tools: BTreeMap::new(),
            });
            wr.entities.insert(entity);
            if e.run != 0 {
                wr.runs.insert(e.run);
            }
            if e.primary == 1 {
                wr.writes += 1;
                wr.conflicts += u64::from(e.outcome == CONFLICT);
                *wr.tools.entry((e.tool, e.retry)).or_default() += 1;
                totals.writes += 1;
                match e.outcome {
                    CONFLICT => totals.conflicts += 1,
                    ERROR => *totals.other_errors.entry(s(e.error)).or_default() += 1,
                    _ => {}
                }
                if let Some(b) = knobs.bucket_ms {
                    let row = overall_buckets.entry(bucket_of(e.t, b)).or_default();
                    row.0 += 1;
                    row.1 += u64::from(e.outcome == CONFLICT);
                }
            }
        }

        // Incidents: from a write, every write at most the window later; two or more
        // writers make it an incident and the next one starts after it, else the next
        // candidate starts at the following write.
        let mut incidents = Vec::new();
        let mut entity_buckets: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
        if let Some(b) = knobs.bucket_ms {
            for e in group {
                let row = entity_buckets.entry(bucket_of(e.t, b)).or_default();
                row.0 += 1;
                row.1 += u64::from(e.outcome == CONFLICT);
            }
        }
        let mut i = 0;
        while i < group.len() {
            let t0 = group[i].t;
            let mut j = i;
            while j < group.len() && (group[j].t - t0).saturating_mul(1000) <= window_ms {
                j += 1;
            }
            let ws: BTreeSet<u32> = group[i..j].iter().map(|e| e.writer).collect();
            if ws.len() >= 2 {
                let ids: Vec<u32> = ws.iter().copied().collect();
                for (x, &a) in ids.iter().enumerate() {
                    for &b in &ids[x + 1..] {
                        // Ids are ranked in string order, and `ids` is sorted: a < b.
                        let p = pairs.entry((a, b)).or_default();
                        p.0 += 1;
                        p.1.insert(entity);
                    }
                }
                let mut names: Vec<String> = ws.iter().map(|&w| s(w)).collect();
                names.sort();
                incidents.push(Incident {
                    start: format(t0),
                    end: format(group[j - 1].t),
                    writers: names,
                    writes: (j - i) as u64,
                    conflicts: group[i..j].iter().filter(|e| e.outcome == CONFLICT).count() as u64,
                });
                if let Some(b) = knobs.bucket_ms {
                    entity_buckets.entry(bucket_of(t0, b)).or_default().2 += 1;
                    overall_buckets.entry(bucket_of(t0, b)).or_default().2 += 1;
                }
                i = j;
            } else {
                i += 1;
            }
        }

        // Immediate replays: per (writer, action, parameters), from each conflicted call,
        // the same calls within the span.
        let mut replay_mark = vec![false; group.len()];
        let mut replays = Vec::new();
        let mut same_call: BTreeMap<(u32, u32, u64), Vec<usize>> = BTreeMap::new();
        for (idx, e) in group.iter().enumerate() {
            same_call
                .entry((e.writer, e.action, e.params))
                .or_default()
                .push(idx);
        }
        for list in same_call.values() {
            let mut a = 0;
            while a < list.len() {
                let first = &group[list[a]];
                if first.outcome != CONFLICT {
                    a += 1;
                    continue;
                }
                let mut b = a;
                while b + 1 < list.len()
                    && (group[list[b + 1]].t - first.t).saturating_mul(1000) <= span_ms
                {
                    b += 1;
                }
                let calls = (b - a + 1) as u64;
                if calls >= u64::from(knobs.replay_calls) {
                    let burst = &list[a..=b];
                    for &k in burst {
                        replay_mark[k] = true;
                    }
                    replays.push(Replay {
                        writer: s(first.writer),
                        action: s(first.action),
                        calls,
                        conflicts: burst
                            .iter()
                            .filter(|&&k| group[k].outcome == CONFLICT)
                            .count() as u64,
                        start: format(first.t),
                        end: format(group[list[b]].t),
                        tool: s(first.tool),
                        retry_mode: (first.retry != 0).then(|| s(first.retry)),
                    });
                    a = b + 1;
                } else {
                    a += 1;
                }
            }
        }
        replays.sort_by(|x, y| {
            (&x.start, &x.writer, &x.action).cmp(&(&y.start, &y.writer, &y.action))
        });

        // Fights: per document slot, the successful writes in time order.
        let mut slots: BTreeMap<u32, Vec<&Event>> = BTreeMap::new();
        for e in group
            .iter()
            .filter(|e| e.slot != 0 && e.token != 0 && e.outcome == OK)
        {
            slots.entry(e.slot).or_default().push(e);
        }
        let mut fights = Vec::new();
        for (slot, seq) in &slots {
            // Runs of one revision: (token, writer of its first write, time).
            let mut runs: Vec<(u32, u32, i64)> = Vec::new();
            for e in seq {
                if runs.last().is_none_or(|r| r.0 != e.token) {
                    runs.push((e.token, e.writer, e.t));
                }
            }
            let mut reverts = 0;
            let mut fighters = BTreeSet::new();
            let mut diffs: Vec<RevisionDiff> = Vec::new();
            let mut first_t = None;
            let mut last_t = 0;
            for k in 2..runs.len() {
                let (token, writer, t) = runs[k];
                let (prev_token, prev_writer, prev_t) = runs[k - 1];
                let seen_before = runs[..k - 1].iter().any(|r| r.0 == token);
                if seen_before && writer != prev_writer {
                    reverts += 1;
                    fighters.insert(s(writer));
                    fighters.insert(s(prev_writer));
                    first_t.get_or_insert(prev_t);
                    last_t = t;
                    let empty = Vec::new();
                    let from_st = merged.statements.get(&prev_token).unwrap_or(&empty);
                    let to_st = merged.statements.get(&token).unwrap_or(&empty);
                    let diff = RevisionDiff {
                        from: s(prev_token),
                        from_writer: s(prev_writer),
                        to: s(token),
                        to_writer: s(writer),
                        added: to_st
                            .iter()
                            .filter(|x| !from_st.contains(x))
                            .cloned()
                            .collect(),
                        removed: from_st
                            .iter()
                            .filter(|x| !to_st.contains(x))
                            .cloned()
                            .collect(),
                    };
                    if !diffs.contains(&diff) {
                        diffs.push(diff);
                    }
                }
            }
            if reverts > 0 {
                fights.push(Fight {
                    document: s(*slot),
                    writers: fighters.into_iter().collect(),
                    reverts,
                    start: format(first_t.unwrap_or(last_t)),
                    end: format(last_t),
                    revisions: seq
                        .iter()
                        .map(|e| Revision {
                            time: format(e.t),
                            writer: s(e.writer),
                            token: s(e.token),
                        })
                        .collect(),
                    diffs,
                });
            }
        }

        let mut entity_writers: Vec<EntityWriter> = per_writer
            .iter()
            .map(
                |(&w, &(writes, conflicts, errors, first, last))| EntityWriter {
                    writer: s(w),
                    writes,
                    conflicts,
                    other_errors: errors,
                    first_seen: format(first),
                    last_seen: format(last),
                },
            )
            .collect();
        entity_writers.sort_by(|a, b| {
            b.writes
                .cmp(&a.writes)
                .then_with(|| a.writer.cmp(&b.writer))
        });

        let timeline = if !knobs.timeline {
            Vec::new()
        } else {
            group
                .iter()
                .zip(&replay_mark)
                .map(|(e, &replay)| timeline_event(merged, e, replay))
                .collect()
        };
        if let Some(marks) = marks.as_mut() {
            marks.extend_from_slice(&replay_mark);
        }

        let id = s(entity);
        let key = EntityKey::from_id(&id);
        totals.incidents += incidents.len() as u64;
        totals.replays += replays.len() as u64;
        totals.fights += fights.len() as u64;
        entities.push(EntityReport {
            id,
            account: key.account,
            kind: key.kind,
            name: key.name,
            writes,
            conflicts,
            other_errors,
            first_seen: format(group[0].t),
            last_seen: format(group[group.len() - 1].t),
            writers: entity_writers,
            incidents,
            replays,
            fights,
            buckets: knobs
                .bucket_ms
                .map(|b| bucket_rows(&entity_buckets, b))
                .unwrap_or_default(),
            timeline,
        });
    }

    entities.sort_by(|a, b| {
        b.conflicts
            .cmp(&a.conflicts)
            .then(b.incidents.len().cmp(&a.incidents.len()))
            .then(b.writers.len().cmp(&a.writers.len()))
            .then(b.writes.cmp(&a.writes))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut writer_rows: Vec<WriterReport> = writers
        .into_iter()
        .map(|(w, data)| {
            let id = s(w);
            let (name, account, kind, via) = describe_writer(&id);
            let mut tools: Vec<ToolUse> = data
                .tools
                .into_iter()
                .map(|((tool, retry), writes)| ToolUse {
                    tool: s(tool),
                    retry_mode: (retry != 0).then(|| s(retry)),
                    writes,
                })
                .collect();
            tools.sort_by(|a, b| {
                b.writes
                    .cmp(&a.writes)
                    .then_with(|| (&a.tool, &a.retry_mode).cmp(&(&b.tool, &b.retry_mode)))
            });
            WriterReport {
                id,
                name,
                account,
                kind,
                via_cloudformation: via,
                writes: data.writes,
                conflicts: data.conflicts,
                entities: data.entities.len() as u64,
                runs: data.runs.len() as u64,
                tools,
            }
        })
        .collect();
    writer_rows.sort_by(|a, b| {
        b.conflicts
            .cmp(&a.conflicts)
            .then(b.writes.cmp(&a.writes))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut pair_rows: Vec<PairReport> = pairs
        .into_iter()
        .map(|((a, b), (incidents, ents))| {
            let mut entities: Vec<String> = ents.into_iter().map(s).collect();
            entities.sort();
            PairReport {
                a: s(a),
                b: s(b),
                incidents,
                entities,
            }
        })
        .collect();
    pair_rows.sort_by(|x, y| {
        y.incidents
            .cmp(&x.incidents)
            .then_with(|| (&x.a, &x.b).cmp(&(&y.a, &y.b)))
    });

    Report {
        schema: SCHEMA.to_string(),
        writelane_version: writelane_core::VERSION.to_string(),
        settings,
        reading,
        totals,
        entities,
        writers: writer_rows,
        pairs: pair_rows,
        buckets: knobs
            .bucket_ms
            .map(|b| bucket_rows(&overall_buckets, b))
            .unwrap_or_default(),
    }
}
