//! `GET /v1/events`: the engine's change feed as Server-Sent Events. Every event has the id
//! `EPOCH-SEQ`: EPOCH is when this server started, so an id from before a restart is told
//! apart; the last `--events-window` events are kept, so a client that reconnects with
//! `Last-Event-ID` gets what it missed. When that cannot be done (another epoch, older
//! than the window, a gap in the engine's own feed, a client too slow to keep up), the
//! client gets a `refetch` event: reload what you show. A graceful stop ends every stream
//! with a `shutdown` event.

use super::http::Call;
use super::State;
use crate::api::{self, Refetch};
use crate::backend::{Error, Gap};
use crate::model::Event;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// `GET /v1/events?queue=`: only that queue's events (refetch and shutdown always come).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub queue: Option<String>,
}

#[derive(Debug, Clone)]
enum Msg {
    Event(u64, Event),
    /// Everything before `at` (a seq) may be missing: refetch.
    Refetch(u64, String),
}

struct Ring {
    kept: VecDeque<(u64, Event)>,
    /// The seq the next event gets (from 1).
    next: u64,
}

pub struct Hub {
    epoch: u64,
    window: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Msg>,
}

impl Hub {
    pub fn new(epoch: u64, window: usize) -> Hub {
        Hub {
            epoch,
            window: window.max(1),
            ring: Mutex::new(Ring {
                kept: VecDeque::new(),
                next: 1,
            }),
            live: broadcast::channel(window.clamp(64, 8192)).0,
        }
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// The id of the newest event so far: every answer carries it, so a client that
    /// subscribes later can resume from there and miss nothing made after that answer.
    pub fn latest(&self) -> String {
        self.id(self.ring.lock().expect("event ring").next - 1)
    }

    pub fn push(&self, e: Event) {
        let mut ring = self.ring.lock().expect("event ring");
        let seq = ring.next;
        ring.next += 1;
        ring.kept.push_back((seq, e.clone()));
        while ring.kept.len() > self.window {
            ring.kept.pop_front();
        }
        let _ = self.live.send(Msg::Event(seq, e));
    }

    /// The engine's feed lost events: nothing kept can be trusted to be complete.
    pub fn gap(&self, why: String) {
        let mut ring = self.ring.lock().expect("event ring");
        ring.kept.clear();
        // A seq is burnt so that an id from before the gap is older than the window.
        ring.next += 1;
        let at = ring.next - 1;
        let _ = self.live.send(Msg::Refetch(at, why));
    }

    /// A new client: what it missed since `last` (a `Last-Event-ID`), or a refetch when
    /// that cannot be told, and the live feed from there on.
    fn join(&self, last: Option<&str>) -> (Vec<Msg>, broadcast::Receiver<Msg>) {
        let ring = self.ring.lock().expect("event ring");
        let rx = self.live.subscribe();
        let now = ring.next - 1;
        let Some(last) = last else {
            return (vec![], rx);
        };
        let parsed = last
            .split_once('-')
            .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
        let refetch = |why: &str| (vec![Msg::Refetch(now, why.to_string())], rx.resubscribe());
        let Some((epoch, seq)) = parsed else {
            return refetch("the Last-Event-ID is not one of this server's event ids");
        };
        if epoch != self.epoch {
            return refetch("the server restarted since that event");
        }
        if seq > now {
            return refetch("the Last-Event-ID is ahead of this server's events");
        }
        let from = ring.kept.front().map(|(s, _)| *s).unwrap_or(ring.next);
        if seq + 1 < from {
            return refetch("that event is older than the events this server keeps");
        }
        let missed = ring
            .kept
            .iter()
            .filter(|(s, _)| *s > seq)
            .map(|(s, e)| Msg::Event(*s, e.clone()))
            .collect();
        (missed, rx)
    }
}

/// Follows the engine's feed into the hub until the feed ends or the server stops.
pub fn follow(state: Arc<State>) {
    let mut feed = state.backend.subscribe();
    let mut stop = state.stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = feed.recv() => match got {
                    Ok(e) => state.events.push(e),
                    Err(Gap::Lagged(n)) => state
                        .events
                        .gap(format!("the server fell {n} events behind the engine")),
                    Err(Gap::Changed) => state
                        .events
                        .gap("the database changed outside this server".into()),
                    Err(Gap::Disconnected(why)) => {
                        state.events.gap(why);
                        return;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    });
}

fn queue_of(e: &Event) -> &str {
    match e {
        Event::Items { queue, .. } | Event::Queue { queue } => queue,
    }
}

fn sse_of(hub: &Hub, m: &Msg) -> sse::Event {
    match m {
        Msg::Event(seq, e) => {
            let name = match e {
                Event::Items { .. } => "items",
                Event::Queue { .. } => "queue",
            };
            sse::Event::default()
                .id(hub.id(*seq))
                .event(name)
                .data(serde_json::to_string(e).expect("events serialize"))
        }
        Msg::Refetch(at, why) => sse::Event::default()
            .id(hub.id(*at))
            .event(api::EVENT_REFETCH)
            .data(
                serde_json::to_string(&Refetch {
                    reason: why.clone(),
                })
                .expect("serializes"),
            ),
    }
}

/// Counts a stream among the live SSE clients while it lasts.
struct Counted(Arc<State>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Stream {
    counted: Counted,
    backlog: VecDeque<Msg>,
    rx: broadcast::Receiver<Msg>,
    queue: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

pub async fn serve(c: Call) -> Result<Response, Error> {
    let q: EventsQuery = c.query()?;
    let last = c
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let state = c.state.clone();
    let (backlog, rx) = state.events.join(last.as_deref());
    state.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let start = Stream {
        counted: Counted(state.clone()),
        backlog: backlog.into(),
        rx,
        queue: q.queue,
        stop: state.stop.clone(),
        done: *state.stop.borrow(),
    };
    let events = futures::stream::unfold(start, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let hub = &st.counted.0.events;
            let msg = if let Some(m) = st.backlog.pop_front() {
                m
            } else {
                tokio::select! {
                    got = st.rx.recv() => match got {
                        Ok(m) => m,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let at = hub.ring.lock().expect("event ring").next - 1;
                            Msg::Refetch(at, format!("this stream fell {n} events behind"))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = st.stop.changed() => {
                        st.done = true;
                        let bye = sse::Event::default()
                            .event(api::EVENT_SHUTDOWN)
                            .data(r#"{"reason":"the server is shutting down"}"#);
                        return Some((Ok::<_, Infallible>(bye), st));
                    }
                }
            };
            if let (Msg::Event(_, e), Some(q)) = (&msg, &st.queue) {
                if queue_of(e) != q {
                    continue;
                }
            }
            let ev = sse_of(hub, &msg);
            return Some((Ok(ev), st));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(q: &str) -> Event {
        Event::Queue { queue: q.into() }
    }

    fn seqs(m: &[Msg]) -> Vec<String> {
        m.iter()
            .map(|m| match m {
                Msg::Event(s, _) => s.to_string(),
                Msg::Refetch(s, _) => format!("refetch@{s}"),
            })
            .collect()
    }

    #[test]
    fn a_client_resumes_inside_the_window_and_refetches_beyond_it() {
        let hub = Hub::new(7, 3);
        for q in ["a", "b", "c", "d", "e"] {
            hub.push(ev(q));
        }
        // Kept: 3, 4, 5.
        assert_eq!(seqs(&hub.join(Some("7-3")).0), ["4", "5"]);
        assert_eq!(seqs(&hub.join(Some("7-2")).0), ["3", "4", "5"]);
        assert_eq!(seqs(&hub.join(Some("7-5")).0), Vec::<String>::new());
        assert_eq!(seqs(&hub.join(Some("7-1")).0), ["refetch@5"]);
        assert_eq!(
            seqs(&hub.join(Some("6-4")).0),
            ["refetch@5"],
            "another epoch"
        );
        assert_eq!(seqs(&hub.join(Some("7-9")).0), ["refetch@5"], "ahead");
        assert_eq!(seqs(&hub.join(Some("junk")).0), ["refetch@5"]);
        assert!(hub.join(None).0.is_empty());
        hub.gap("lost".into());
        assert_eq!(seqs(&hub.join(Some("7-5")).0), ["refetch@6"], "after a gap");
    }
}
