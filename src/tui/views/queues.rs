//! The queues view: every queue with its counts and health, and the selected queue's
//! settings, throughput and deadline projection below.

use super::{compact, list_offset, list_visible, safe, spark};
use crate::model::*;
use crate::rules::format_duration;
use crate::text::{
    age_secs, projection, projection_ok, projection_short, projection_tight, thousands,
};
use crate::tui::state::State;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline};
use ratatui::Frame;
use std::time::Duration;

/// The queue table on top, as tall as its rows (leaving the panel at least 8 lines).
pub fn table_area(s: &State, body: Rect) -> Rect {
    if s.queues.loaded && s.queues.list.is_empty() {
        return body;
    }
    let want = s.queues.list.len().max(1) as u16 + 3;
    let room = body.height.saturating_sub(8).max(4);
    Rect::new(body.x, body.y, body.width, want.min(room))
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let ta = table_area(s, body);
    let panel = Rect::new(
        body.x,
        ta.y + ta.height,
        body.width,
        body.height - ta.height,
    );
    let title = format!(
        " Queues ({}) ",
        if s.queues.loaded {
            s.queues.list.len().to_string()
        } else {
            "loading…".into()
        }
    );
    let block = super::panel(title, t);
    if s.queues.loaded && s.queues.list.is_empty() {
        let p = Paragraph::new(vec![
            Line::raw(""),
            Line::raw("  No queues yet. Create one with:  workq queue create NAME"),
            Line::raw("  or try the demo:                 workq demo"),
        ])
        .block(block);
        f.render_widget(p, ta);
        return;
    }
    let wide = body.width >= 140;
    let mid = body.width >= 100;
    // Below this the names need the room more than the hold count and the trend.
    let narrow = body.width < 76;
    let spark_w = if wide {
        30
    } else if mid {
        12
    } else {
        10
    };
    let mut header = vec!["QUEUE", "QUEUED", "FLIGHT", "EXCEPT"];
    if !narrow {
        header.push("HOLD");
    }
    if mid {
        header.extend(["DONE", "EXPIRED", "RISK"]);
    }
    header.push("OUT");
    if !narrow {
        header.extend(["OLDEST", "THROUGHPUT"]);
    }
    if mid {
        header.push("/MIN");
    }
    if wide {
        header.push("DEADLINE");
    }
    // The names are what people read first: never cut them when there is room.
    let name_w = s
        .queues
        .list
        .iter()
        .map(|q| q.queue.name.chars().count() + 2)
        .max()
        .unwrap_or(10)
        .clamp(10, 34) as u16;
    let mut widths = vec![
        Constraint::Length(name_w),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    if !narrow {
        widths.push(Constraint::Length(5));
    }
    if mid {
        widths.extend([
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(5),
        ]);
    }
    widths.push(Constraint::Length(5));
    if !narrow {
        widths.extend([Constraint::Length(7), Constraint::Length(spark_w as u16)]);
    }
    if mid {
        widths.push(Constraint::Length(6));
    }
    if wide {
        widths.push(Constraint::Fill(1));
    }
    // What is left for the deadline: the table less its borders, the fixed columns and
    // the space between columns.
    let fixed: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(n) => *n,
            _ => 0,
        })
        .sum();
    let deadline_w = (ta.width.saturating_sub(2 + fixed + widths.len() as u16 - 1)) as usize;
    let cursor = s.queues.cursor();
    let visible = list_visible(s);
    let offset = list_offset(cursor, visible);
    let rows: Vec<Row> = s
        .queues
        .list
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, q)| {
            let c = &q.counts;
            let paused = q.queue.state == QueueState::Paused;
            let alerted = !s.queues.fired_on(&q.queue.name).is_empty();
            let name = if alerted {
                Line::from(vec![
                    Span::styled("▲ ", t.bad),
                    Span::raw(safe(&q.queue.name)),
                ])
            } else if paused {
                Line::from(vec![
                    Span::styled("⏸ ", t.warn),
                    Span::raw(safe(&q.queue.name)),
                ])
            } else {
                Line::from(vec![Span::raw("  "), Span::raw(safe(&q.queue.name))])
            };
            let n = |v: u64, style| {
                Cell::from(
                    Line::styled(compact(v), if v > 0 { style } else { t.dim }).right_aligned(),
                )
            };
            let flight = match q.queue.concurrency {
                Some(l) => format!("{}/{}", c.processing, l),
                None => compact(c.processing),
            };
            let full = q
                .queue
                .concurrency
                .is_some_and(|l| c.processing >= l as u64);
            let mut cells = vec![
                Cell::from(name),
                n(c.queued, t.queued),
                Cell::from(
                    Line::styled(flight, if full { t.warn } else { t.processing }).right_aligned(),
                ),
                n(c.exception, t.exception),
            ];
            if !narrow {
                cells.push(n(c.on_hold, t.on_hold));
            }
            if mid {
                cells.push(n(c.processed, t.processed));
                cells.push(n(q.expired, t.bad));
                cells.push(n(q.at_risk, t.warn));
            }
            cells.push(n(q.out_of_sla, t.bad));
            if !narrow {
                cells.push(Cell::from(
                    Line::raw(
                        q.oldest_queued_secs
                            .map(age_secs)
                            .unwrap_or_else(|| "-".into()),
                    )
                    .right_aligned(),
                ));
                cells.push(Cell::from(Span::styled(
                    spark(&q.throughput_history, spark_w),
                    t.processed,
                )));
            }
            if mid {
                cells.push(Cell::from(
                    Line::raw(format!("{:.1}", q.throughput_per_min)).right_aligned(),
                ));
            }
            if wide {
                cells.push(deadline_cell(q, s.now, deadline_w, t));
            }
            let row = Row::new(cells);
            if i == cursor {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    super::draw_table(f, ta, block, header, rows, widths, t);
    if let Some(q) = s.queues.current() {
        panel_draw(f, s, t, q, panel);
    }
}

/// The projection in the room the cell has: the short form, a tighter one, or its head,
/// whichever fits first (a cut would lose the zone at its end).
fn deadline_cell<'a>(q: &QueueSummary, now: Time, width: usize, t: &Theme) -> Cell<'a> {
    match &q.projection {
        Some(p) => {
            let style = if projection_ok(p) { t.ok } else { t.bad };
            let short = projection_short(p, &q.queue.tz, now);
            let tight = projection_tight(p, &q.queue.tz, now);
            let fits = |t: &str| t.chars().count() <= width;
            let text = if fits(&short) {
                short
            } else if fits(&tight) {
                tight
            } else {
                // The head of it: the drain time and its zone, or what went wrong.
                tight.split(", ").next().unwrap_or_default().to_string()
            };
            Cell::from(Span::styled(text, style))
        }
        None => Cell::from(Span::styled("-", t.dim)),
    }
}

fn panel_draw(f: &mut Frame, s: &State, t: &Theme, q: &QueueSummary, area: Rect) {
    if area.height < 3 {
        return;
    }
    let qq = &q.queue;
    let c = &q.counts;
    let block = super::panel(format!(" {} ", safe(&qq.name)), t).title(
        Line::from(Span::styled(
            format!(" {} ", qq.state),
            if qq.state == QueueState::Paused {
                t.warn
            } else {
                t.ok
            },
        ))
        .right_aligned(),
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    let d = |d: Option<Duration>| d.map(format_duration).unwrap_or_else(|| "none".into());
    let label = |s: &str| Span::styled(format!("{s:<12}"), t.dim);
    let mut lines = vec![];
    if !qq.description.is_empty() {
        lines.push(Line::styled(safe(&qq.description), t.base));
    }
    lines.push(Line::from(vec![
        label("backlog"),
        Span::styled(format!("{} queued", thousands(c.queued)), t.queued),
        Span::raw(" · "),
        Span::styled(
            match qq.concurrency {
                Some(l) => format!("{}/{} in flight", c.processing, l),
                None => format!("{} in flight", thousands(c.processing)),
            },
            t.processing,
        ),
        Span::raw(" · "),
        Span::styled(
            format!("{} exceptions", thousands(c.exception)),
            t.exception,
        ),
        Span::raw(" · "),
        Span::styled(format!("{} on hold", thousands(c.on_hold)), t.on_hold),
    ]));
    lines.push(Line::from(vec![
        label("SLA"),
        Span::raw(match qq.sla {
            Some(sla) => format!("{} (risk {}%)", format_duration(sla), qq.sla_risk_pct),
            None => "none".into(),
        }),
        Span::raw(" · "),
        Span::styled(
            format!("{} at risk", thousands(q.at_risk)),
            if q.at_risk > 0 { t.warn } else { t.base },
        ),
        Span::raw(" · "),
        Span::styled(
            format!("{} out of SLA", thousands(q.out_of_sla)),
            if q.out_of_sla > 0 { t.bad } else { t.base },
        ),
        Span::raw(" · "),
        Span::styled(
            format!("{} expired", thousands(q.expired)),
            if q.expired > 0 { t.bad } else { t.base },
        ),
        Span::raw(format!(
            " · oldest {}",
            q.oldest_queued_secs
                .map(age_secs)
                .unwrap_or_else(|| "-".into())
        )),
    ]));
    lines.push(Line::from(vec![
        label("throughput"),
        Span::styled(format!("{} processed", thousands(c.processed)), t.processed),
        Span::raw(format!(
            " · {:.1}/min (last {THROUGHPUT_WINDOW_MIN}m) · handling {} · errors {}",
            q.throughput_per_min,
            q.avg_handling_ms
                .map(|m| format_duration(Duration::from_millis(m)))
                .unwrap_or_else(|| "-".into()),
            q.error_rate
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into())
        )),
    ]));
    lines.push(Line::from(vec![
        label("deadline"),
        match (&qq.deadline, &q.projection) {
            (Some(dl), Some(p)) => Span::styled(
                format!("{dl} {}: {}", qq.tz, projection(p, &qq.tz, s.now)),
                if projection_ok(p) { t.ok } else { t.bad },
            ),
            (Some(dl), None) => Span::raw(format!("{dl} {}", qq.tz)),
            _ => Span::styled("none", t.dim),
        },
    ]));
    let fired = s.queues.fired_on(&qq.name);
    if !fired.is_empty() {
        let list: Vec<String> = fired
            .iter()
            .map(|a| format!("{} ({})", safe(&a.name), safe(&a.rule)))
            .collect();
        lines.push(Line::from(vec![
            label("alerts"),
            Span::styled(format!("▲ fired: {}", list.join(", ")), t.bad),
        ]));
    }
    lines.push(Line::from(vec![
        label("settings"),
        Span::raw(format!(
            "lease {}{} · retries {} · limit {} · ttl {} · priority {}",
            format_duration(qq.lease),
            qq.max_runtime
                .map(|m| format!(" · max runtime {}", format_duration(m)))
                .unwrap_or_default(),
            qq.max_retries,
            qq.concurrency
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unlimited".into()),
            d(qq.ttl),
            qq.priority
        )),
    ]));
    let text_h = (lines.len() as u16).min(inner.height);
    // Wide screens show the queue's biggest exception groups beside its health.
    let split = inner.width >= 130;
    let text_w = if split {
        inner.width * 3 / 5
    } else {
        inner.width
    };
    f.render_widget(
        Paragraph::new(lines),
        Rect::new(inner.x + 1, inner.y, text_w.saturating_sub(2), text_h),
    );
    if split {
        let x = inner.x + text_w + 1;
        let area = Rect::new(
            x,
            inner.y,
            inner.width.saturating_sub(text_w + 2),
            inner.height,
        );
        f.render_widget(
            Paragraph::new(top_groups(s, t, &qq.name, area.height as usize)),
            area,
        );
    }
    // The throughput of the last 30 minutes, as large as the room allows.
    let room = inner.height.saturating_sub(text_h + 1);
    if room >= 2 {
        let h = room.min(14);
        let area = Rect::new(
            inner.x + 1,
            inner.y + text_h + 1,
            text_w.saturating_sub(2),
            h,
        );
        let label_line = Rect::new(area.x, area.y, area.width, 1);
        let max = q.throughput_history.iter().copied().max().unwrap_or(0);
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "processed per minute, last {} minutes (peak {max})",
                    q.throughput_history.len()
                ),
                t.dim,
            )),
            label_line,
        );
        if h > 1 {
            let bars = Rect::new(area.x, area.y + 1, area.width, h - 1);
            // Stretch each minute over several columns so the chart fills the width.
            let per = (bars.width as usize / q.throughput_history.len().max(1)).max(1);
            let data: Vec<u64> = q
                .throughput_history
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, per))
                .collect();
            f.render_widget(Sparkline::default().data(&data).style(t.processed), bars);
        }
    }
}

/// The biggest exception groups of a queue, for the panel.
fn top_groups<'a>(s: &State, t: &Theme, queue: &str, room: usize) -> Vec<Line<'a>> {
    let mut groups: Vec<&ExceptionGroup> =
        s.inbox.groups.iter().filter(|g| g.queue == queue).collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let mut out = vec![Line::styled(
        "top exception groups (3 opens the inbox)",
        t.dim,
    )];
    if groups.is_empty() {
        out.push(Line::styled(
            if s.inbox.loaded { "none" } else { "…" },
            t.dim,
        ));
    }
    for g in groups.iter().take(room.saturating_sub(1)) {
        let sig = if g.signature.is_empty() {
            "(no note)"
        } else {
            &g.signature
        };
        out.push(Line::from(vec![
            Span::styled(format!("{:>6} ", compact(g.count)), t.exception),
            Span::styled(
                format!("{}: ", g.reason.map(|r| r.as_str()).unwrap_or("exception")),
                t.dim,
            ),
            Span::raw(safe(sig)),
        ]));
    }
    out
}
