//! The console on the imported queue: time to first frame, frame render time, key press to
//! updated frame, idle CPU and peak memory, through the same update → effects → draw path
//! the console runs (only the terminal is ratatui's `TestBackend`).

use super::engine::sqlite_file;
use super::import::{DB, QUEUE};
use super::{median, median_ms_sync, peak_rss_mb, Engine, Figure};
use crate::backend::Backend;
use crate::model::*;
use crate::tui::commands::Command;
use crate::tui::state::{State, View};
use crate::tui::update::{self, update, Msg};
use crate::tui::{app, effects, views};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::widgets::{Block, Borders, Row, Table};
use ratatui::Terminal;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const SIZE: (u16, u16) = (160, 48);

/// Applies messages and performs the effects they cause, until nothing is left to do.
async fn settle(b: &dyn Backend, s: &mut State, msgs: Vec<Msg>) {
    let mut queue: VecDeque<Msg> = msgs.into();
    while let Some(m) = queue.pop_front() {
        for fx in update(s, m) {
            if let Some(reply) = effects::perform(b, fx).await {
                queue.push_back(reply);
            }
        }
    }
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn terminal() -> Result<Terminal<TestBackend>, String> {
    Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).map_err(|e| e.to_string())
}

fn draw(term: &mut Terminal<TestBackend>, s: &State) -> Result<(), String> {
    term.draw(|f| views::draw(f, s))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub async fn figures(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    let mut figs = console(dir, engine, QUEUE).await?;
    figs.push(Figure {
        what: "console: peak memory on the 1M-item file".into(),
        engine: peak_rss_mb(),
        baseline: None,
        unit: "MB".into(),
        goal: "≤ 80".into(),
        note: "VmHWM of the process that ran the console figures".into(),
    });
    Ok(figs)
}

/// The console figures on the run's imported database (a queue `queue` of many items).
async fn console(dir: &Path, engine: &Engine, queue: &str) -> Result<Vec<Figure>, String> {
    let e = |e: crate::Error| e.to_string();
    // First frame: open the file, load what the first screen shows, draw it.
    let started = Instant::now();
    let store: Arc<dyn Backend> = engine.open(dir, DB)?;
    let opts = app::Options {
        source: sqlite_file(dir, DB).display().to_string(),
        read_only: false,
        actor: "user:bench".into(),
        notice: None,
    };
    let mut s = app::initial_state_from(&opts, None, false);
    settle(
        &*store,
        &mut s,
        vec![Msg::Resize(SIZE.0, SIZE.1), Msg::Changed],
    )
    .await;
    let mut term = terminal()?;
    draw(&mut term, &s)?;
    let first = started.elapsed().as_secs_f64() * 1000.0;
    if !s.queues.loaded {
        return Err("the first frame had no queues".into());
    }
    // Baseline: the same file opened and its queue summaries read, nothing drawn.
    let started = Instant::now();
    let bare = engine.open(dir, DB)?;
    bare.queues().await.map_err(e)?;
    let first_base = started.elapsed().as_secs_f64() * 1000.0;
    drop(bare);

    // Into the items of the big queue.
    s.queues.selected = Some(queue.to_string());
    settle(&*store, &mut s, vec![key(KeyCode::Enter)]).await;
    if s.view != View::Items || s.items.total < 1000 {
        return Err(format!(
            "expected the items of '{queue}', got {:?} with {} rows",
            s.view, s.items.total
        ));
    }
    let frame = median_ms_sync(200, || draw(&mut term, &s))?;
    // Baseline: a bare ratatui table of the same rows and size.
    let rows: Vec<Row> = s
        .items
        .rows
        .iter()
        .take(SIZE.1 as usize)
        .map(|i| {
            Row::new(vec![
                i.id.clone(),
                i.name.clone().unwrap_or_default(),
                i.status.to_string(),
                i.priority.to_string(),
                i.value.chars().take(60).collect(),
            ])
        })
        .collect();
    let widths = [26, 20, 12, 8, 60].map(ratatui::layout::Constraint::Length);
    let frame_base = median_ms_sync(200, || {
        term.draw(|f| {
            let t = Table::new(rows.clone(), widths).block(Block::default().borders(Borders::ALL));
            f.render_widget(t, f.area());
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    })?;

    // Key press to updated frame: next status tab, its page fetched and drawn.
    let mut key_ms = Vec::new();
    let mut key_base = Vec::new();
    for _ in 0..12 {
        let started = Instant::now();
        settle(&*store, &mut s, vec![key(KeyCode::Tab)]).await;
        draw(&mut term, &s)?;
        key_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        // Baseline: the page query for that tab alone.
        let f = Filter {
            queue: Some(queue.to_string()),
            statuses: s.items.effective_filter().statuses,
            ..Default::default()
        };
        let started = Instant::now();
        store
            .items(
                f,
                PageRequest {
                    limit: 100,
                    count: Count::Exact,
                    ..Default::default()
                },
            )
            .await
            .map_err(e)?;
        key_base.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // Sorted by name: the key press to the frame showing the first page of the sorted list.
    settle(&*store, &mut s, vec![key(KeyCode::Char('g'))]).await;
    let mut sort_ms = Vec::new();
    let mut sort_base = Vec::new();
    let raw = rusqlite::Connection::open(sqlite_file(dir, DB)).map_err(|e| e.to_string())?;
    for _ in 0..7 {
        let started = Instant::now();
        let fx = update::run(&mut s, Command::Sort, Some("name".into()));
        perform_all(&*store, &mut s, fx).await;
        draw(&mut term, &s)?;
        sort_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        // Baseline: the bare page in enqueue order (an index walk, no sorting).
        let started = Instant::now();
        raw_page(&raw, queue)?;
        sort_base.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    if s.items.sort != SortBy::Name || s.items.rows.is_empty() {
        return Err("the items were not sorted by name".into());
    }
    // Idle, sorted by name: what the console loop does with nothing changing (a tick a
    // second), against the same loop refetching on each tick as the console did before.
    let idle = idle_cpu_ms(&*store, &mut s, &mut term, None).await?;
    let idle_base = idle_cpu_ms(&*store, &mut s, &mut term, Some((&raw, queue))).await?;
    Ok(vec![
        Figure {
            what: "console: time to first frame".into(),
            engine: first,
            baseline: Some(first_base),
            unit: "ms".into(),
            goal: "≤ 300".into(),
            note: "open, load, draw 160×48; baseline: open + queue summaries".into(),
        },
        Figure {
            what: "console: frame render, items view 160×48".into(),
            engine: frame,
            baseline: Some(frame_base),
            unit: "ms".into(),
            goal: "≤ 5".into(),
            note: "median of 200 (TestBackend); baseline: a bare ratatui table".into(),
        },
        Figure {
            what: "console: key to frame, next status tab".into(),
            engine: median(key_ms),
            baseline: Some(median(key_base)),
            unit: "ms".into(),
            goal: "≤ 50".into(),
            note: "median of 12: update, page query, draw; baseline: the query".into(),
        },
        Figure {
            what: "console: key to frame, sort 1M items by name".into(),
            engine: median(sort_ms),
            baseline: Some(median(sort_base)),
            unit: "ms".into(),
            goal: "≤ 50".into(),
            note: "median of 7; baseline: the bare page in enqueue order (no sort)".into(),
        },
        Figure {
            what: format!("console: CPU over {IDLE_SECS} s idle, 1M items by name"),
            engine: idle,
            baseline: Some(idle_base),
            unit: "ms".into(),
            goal: "≤ 50".into(),
            note: "a tick a second, nothing changing (10 ms steps); baseline: as before, a \
                   reload on each tick, its page sorted without the name index"
                .into(),
        },
    ])
}

/// How long the idle figures watch the loop.
const IDLE_SECS: u64 = 10;

/// CPU time this process used (all threads), from `/proc/self/stat`, in seconds.
fn cpu_secs() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15; Linux counts them in 1/100 s.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// Runs the console's messages for `IDLE_SECS` of one-second ticks and returns the CPU
/// time used, in ms. `before`: also do on each tick what the console did before: reload
/// the view, and sort the page as the store did without the name index.
async fn idle_cpu_ms(
    b: &dyn Backend,
    s: &mut State,
    term: &mut Terminal<TestBackend>,
    before: Option<(&rusqlite::Connection, &str)>,
) -> Result<f64, String> {
    let cpu = cpu_secs()?;
    for _ in 0..IDLE_SECS {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let mut fx = update(s, Msg::Tick(chrono::Utc::now()));
        if let Some((raw, queue)) = before {
            fx.extend(update::refresh(s));
            // `+name`: the sort may not use an index, as when there was none.
            raw.prepare_cached(
                "SELECT i.id FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE q.name = ?1 ORDER BY +i.name DESC, i.seq LIMIT 120",
            )
            .and_then(|mut st| {
                st.query_map([queue], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| e.to_string())?;
        }
        perform_all(b, s, fx).await;
        draw(term, s)?;
    }
    Ok((cpu_secs()? - cpu) * 1000.0)
}

/// Performs effects and the messages their answers cause, until nothing is left to do.
async fn perform_all(b: &dyn Backend, s: &mut State, fx: Vec<update::Effect>) {
    let mut msgs = Vec::new();
    for f in fx {
        if let Some(m) = effects::perform(b, f).await {
            msgs.push(m);
        }
    }
    settle(b, s, msgs).await;
}

/// One page of the queue in enqueue order, straight from SQLite.
fn raw_page(raw: &rusqlite::Connection, queue: &str) -> Result<(), String> {
    raw.prepare_cached(
        "SELECT i.* FROM items i JOIN queues q ON q.id = i.queue_id
         WHERE q.name = ?1 ORDER BY i.seq DESC LIMIT 120",
    )
    .and_then(|mut st| {
        st.query_map([queue], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}
