//! Alert rules (issue 9): what `--when` may say, how a rule is judged against a queue's
//! figures, and which transition (fire or clear) a judgement makes. Pure and sync: the
//! checker (CLI `alert check`, `workq serve`) gathers the facts, the store records the state.

use crate::model::{QueueSummary, Time};
use crate::rules::{format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a count is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, value: u64, threshold: u64) -> bool {
        match self {
            Cmp::Gt => value > threshold,
            Cmp::Ge => value >= threshold,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// One parsed `--when` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Items out of SLA above a count.
    Out(Cmp, u64),
    /// Items at risk of leaving their SLA above a count.
    AtRisk(Cmp, u64),
    /// The queue's deadline projection says the backlog will not (or did not) drain in time.
    DeadlineMiss,
    /// Exceptions within the last `window` above a count.
    Exceptions(Cmp, u64, Duration),
    /// No worker heard from on the queue for longer than this.
    NoWorker(Duration),
}

const RULE_HINT: &str = "write out>N, at-risk>=N, deadline-miss, exceptions>N/10m or no-worker>5m";

impl Rule {
    /// Parses a `--when` rule; every error names the rule and the part that is wrong.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let t = text.trim();
        let bad = |why: String| Err(format!("bad alert rule '{text}': {why}"));
        if t.is_empty() {
            return bad(format!("it is empty ({RULE_HINT})"));
        }
        if t == "deadline-miss" {
            return Ok(Rule::DeadlineMiss);
        }
        let Some(at) = t.find(['>', '<', '=', '!']) else {
            return bad(format!("no comparison and not a known word ({RULE_HINT})"));
        };
        let (name, rest) = (t[..at].trim(), &t[at..]);
        let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
            (Cmp::Ge, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Cmp::Gt, v)
        } else {
            let op: String = rest.chars().take_while(|c| "<>=!".contains(*c)).collect();
            return bad(format!(
                "comparison '{op}' after '{name}' is not one of > or >="
            ));
        };
        let value = value.trim();
        if value.starts_with(['<', '>', '=', '!']) {
            return bad(format!(
                "comparison after '{name}' is doubled; write one > or >="
            ));
        }
        if value.is_empty() {
            return bad(format!("nothing after '{name}{}'", cmp.symbol()));
        }
        let count = |v: &str| -> Result<u64, String> {
            v.parse::<u64>().map_err(|_| {
                format!("bad alert rule '{text}': '{v}' after '{name}' is not a whole number")
            })
        };
        match name {
            "out" => Ok(Rule::Out(cmp, count(value)?)),
            "at-risk" => Ok(Rule::AtRisk(cmp, count(value)?)),
            "exceptions" => {
                let Some((n, w)) = value.split_once('/') else {
                    return bad(format!(
                        "exceptions needs a window, like exceptions>{value}/10m"
                    ));
                };
                let window = parse_duration(w)
                    .map_err(|e| format!("bad alert rule '{text}': window: {e}"))?;
                if window.is_zero() {
                    return bad("the exceptions window cannot be zero".into());
                }
                Ok(Rule::Exceptions(cmp, count(n.trim())?, window))
            }
            "no-worker" => {
                if cmp == Cmp::Ge {
                    return bad("no-worker takes '>' and a duration, like no-worker>5m".into());
                }
                let d = parse_duration(value)
                    .map_err(|e| format!("bad alert rule '{text}': no-worker: {e}"))?;
                if d.is_zero() {
                    return bad("the no-worker duration cannot be zero".into());
                }
                Ok(Rule::NoWorker(d))
            }
            "" => bad(format!("nothing before the comparison ({RULE_HINT})")),
            other => bad(format!("unknown figure '{other}' ({RULE_HINT})")),
        }
    }

    /// The window of exceptions the checker must count, if this rule needs them.
    pub fn exception_window(&self) -> Option<Duration> {
        match self {
            Rule::Exceptions(_, _, w) => Some(*w),
            _ => None,
        }
    }
}

impl std::fmt::Display for Rule {
    /// The canonical text: what `parse` reads back to the same rule.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Out(c, n) => write!(f, "out{}{n}", c.symbol()),
            Rule::AtRisk(c, n) => write!(f, "at-risk{}{n}", c.symbol()),
            Rule::DeadlineMiss => write!(f, "deadline-miss"),
            Rule::Exceptions(c, n, w) => {
                write!(f, "exceptions{}{n}/{}", c.symbol(), format_duration(*w))
            }
            Rule::NoWorker(d) => write!(f, "no-worker>{}", format_duration(*d)),
        }
    }
}

/// What the checker knows of a queue at one moment.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub summary: &'a QueueSummary,
    /// Exceptions within the rule's window (only read by exception rules).
    pub exceptions: u64,
    /// When a worker last touched the queue; `None` when none ever did.
    pub last_worker: Option<Time>,
    /// When the queue was created, so a new queue has the same grace as a quiet one.
    pub since: Time,
    pub now: Time,
}

/// The figures a judgement rests on, sent in the alert's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub out_of_sla: u64,
    pub at_risk: u64,
    pub backlog: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exceptions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_missed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_margin_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_worker_secs: Option<i64>,
}

/// Whether the rule holds, and the figures it was judged on.
pub fn judge(rule: &Rule, f: &Facts) -> (bool, Figures) {
    let s = f.summary;
    let mut figures = Figures {
        out_of_sla: s.out_of_sla,
        at_risk: s.at_risk,
        backlog: s.counts.queued + s.counts.processing,
        exceptions: None,
        deadline_missed: None,
        deadline_margin_secs: None,
        no_worker_secs: None,
    };
    let holds = match rule {
        Rule::Out(c, n) => c.holds(s.out_of_sla, *n),
        Rule::AtRisk(c, n) => c.holds(s.at_risk, *n),
        Rule::DeadlineMiss => {
            let p = s.projection.as_ref();
            figures.deadline_missed = p.map(|p| p.missed);
            figures.deadline_margin_secs = p.and_then(|p| p.margin_secs);
            // A miss: it was missed, or the projected drain falls after the deadline, or
            // backlog is left and nothing drains it at all.
            p.is_some_and(|p| {
                p.missed
                    || p.margin_secs.is_some_and(|m| m < 0)
                    || (p.backlog > 0 && p.drains_at.is_none())
            })
        }
        Rule::Exceptions(c, n, _) => {
            figures.exceptions = Some(f.exceptions);
            c.holds(f.exceptions, *n)
        }
        Rule::NoWorker(d) => {
            let since = f.last_worker.unwrap_or(f.since);
            let quiet = (f.now - since).num_seconds().max(0);
            figures.no_worker_secs = Some(quiet);
            quiet as u128 * 1000 > d.as_millis()
        }
    };
    (holds, figures)
}

/// An alert's recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Fired,
    Cleared,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Fired => "fired",
            AlertState::Cleared => "cleared",
        }
    }
}

/// The transition a judgement makes from the recorded state, if any. A new alert starts
/// cleared, so a rule that holds from the start fires once and one that never holds is silent.
pub fn transition(recorded: AlertState, holds: bool) -> Option<AlertState> {
    match (recorded, holds) {
        (AlertState::Cleared, true) => Some(AlertState::Fired),
        (AlertState::Fired, false) => Some(AlertState::Cleared),
        _ => None,
    }
}

/// Where an alert's transitions are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A command run with the body on stdin.
    Run(String),
    /// A URL the body is POSTed to.
    Webhook(String),
}

/// An alert to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    pub name: String,
    pub queue: String,
    /// A `--when` rule, like `out>0` or `no-worker>5m`.
    pub rule: String,
    pub target: Target,
}

/// A stored alert and what its last check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub name: String,
    pub queue: String,
    pub rule: String,
    pub target: Target,
    pub state: AlertState,
    /// Counts the transitions; a checker names the one it saw when it moves the state.
    pub generation: u64,
    #[serde(with = "crate::model::opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub changed_at: Option<Time>,
    #[serde(with = "crate::model::time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

/// Checks a new alert before it is stored; the rule comes back in its canonical words.
pub fn check_new(a: &NewAlert) -> Result<String, (&'static str, String)> {
    check_name(&a.name).map_err(|e| ("name", e))?;
    let rule = Rule::parse(&a.rule).map_err(|e| ("rule", e))?;
    match &a.target {
        Target::Run(c) if c.trim().is_empty() => return Err(("run", "empty command".into())),
        Target::Webhook(u) => {
            let ok = reqwest::Url::parse(u)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !matches!(ok, Ok(true)) {
                return Err((
                    "webhook",
                    format!("'{u}' is not an http:// or https:// URL"),
                ));
            }
        }
        _ => {}
    }
    Ok(rule.to_string())
}

/// A few items the alert is about, so the receiver can look without a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub name: Option<String>,
}

/// The JSON body sent on each transition, to a webhook or on a command's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub alert: String,
    pub queue: String,
    pub rule: String,
    pub state: AlertState,
    #[serde(with = "crate::model::time_ms")]
    pub at: Time,
    pub figures: Figures,
    pub examples: Vec<Example>,
}

/// How many example items a body carries.
pub const EXAMPLES: usize = 5;

/// Checks an alert's name: the same words as a queue name would be confusing, so it is
/// simply non-empty, printable and short.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("alert name is empty".into());
    }
    if name.len() > 100 {
        return Err(format!("alert name is {} bytes; at most 100", name.len()));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("alert name {name:?} holds a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use chrono::TimeZone;

    fn err(s: &str) -> String {
        Rule::parse(s).unwrap_err()
    }

    #[test]
    fn good_rules_parse_and_read_back_the_same() {
        let cases = [
            ("out>0", Rule::Out(Cmp::Gt, 0)),
            (" at-risk >= 10 ", Rule::AtRisk(Cmp::Ge, 10)),
            ("deadline-miss", Rule::DeadlineMiss),
            (
                "exceptions>50/10m",
                Rule::Exceptions(Cmp::Gt, 50, Duration::from_secs(600)),
            ),
            ("no-worker>5m", Rule::NoWorker(Duration::from_secs(300))),
            ("no-worker>1h30m", Rule::NoWorker(Duration::from_secs(5400))),
        ];
        for (text, rule) in cases {
            assert_eq!(Rule::parse(text).unwrap(), rule, "{text}");
            assert_eq!(Rule::parse(&rule.to_string()).unwrap(), rule, "{rule}");
        }
    }

    #[test]
    fn bad_rules_name_what_and_where() {
        let cases = [
            ("out>>0", "doubled"),
            ("out<3", "comparison '<' after 'out'"),
            ("out=3", "comparison '=' after 'out'"),
            ("out!=3", "comparison '!=' after 'out'"),
            ("out>", "nothing after 'out>'"),
            ("out>-1", "'-1' after 'out' is not a whole number"),
            ("out>1.5", "'1.5' after 'out'"),
            ("out>x", "'x' after 'out'"),
            ("at-risk>=99999999999999999999999", "not a whole number"),
            ("", "empty"),
            ("   ", "empty"),
            ("deadline", "no comparison"),
            ("deadline-miss>0", "unknown figure 'deadline-miss'"),
            ("outs>0", "unknown figure 'outs'"),
            (">0", "nothing before the comparison"),
            ("exceptions>50", "needs a window"),
            ("exceptions>50/", "window"),
            ("exceptions>50/10", "window"),
            ("exceptions>50/0m", "cannot be zero"),
            ("exceptions>x/10m", "'x' after 'exceptions'"),
            ("no-worker>5", "no-worker"),
            ("no-worker>0s", "cannot be zero"),
            ("no-worker>=5m", "takes '>'"),
            ("no-worker>", "nothing after"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(
                e.contains(&format!("'{text}'")),
                "{text:?} names the rule: {e}"
            );
        }
    }

    fn at(secs: i64) -> Time {
        chrono::Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn summary(out: u64, risk: u64, projection: Option<Projection>) -> QueueSummary {
        let queue = Queue {
            name: "q".into(),
            description: String::new(),
            state: QueueState::Active,
            ttl: None,
            sla: None,
            sla_risk_pct: 80,
            deadline: None,
            tz: "UTC".into(),
            max_retries: 0,
            lease: Duration::from_secs(20),
            concurrency: None,
            priority: 0,
            retry_backoff: None,
            max_runtime: None,
            created_at: at(0),
        };
        let mut s = QueueSummary {
            queue,
            counts: StatusCounts::default(),
            expired: 0,
            at_risk: 0,
            out_of_sla: 0,
            oldest_queued_secs: None,
            throughput_per_min: 0.0,
            throughput_history: vec![],
            avg_handling_ms: None,
            error_rate: None,
            projection: None,
        };
        s.out_of_sla = out;
        s.at_risk = risk;
        s.projection = projection;
        s
    }

    fn facts(s: &QueueSummary) -> Facts<'_> {
        Facts {
            summary: s,
            exceptions: 0,
            last_worker: None,
            since: at(0),
            now: at(0),
        }
    }

    #[test]
    fn counts_compare_strictly_or_not_as_written() {
        let s = summary(3, 10, None);
        let f = facts(&s);
        assert!(judge(&Rule::parse("out>2").unwrap(), &f).0);
        assert!(!judge(&Rule::parse("out>3").unwrap(), &f).0);
        assert!(judge(&Rule::parse("at-risk>=10").unwrap(), &f).0);
        assert!(!judge(&Rule::parse("at-risk>10").unwrap(), &f).0);
        let mut f = facts(&s);
        f.exceptions = 51;
        let (holds, fig) = judge(&Rule::parse("exceptions>50/10m").unwrap(), &f);
        assert!(holds);
        assert_eq!(fig.exceptions, Some(51));
    }

    #[test]
    fn deadline_miss_follows_the_projection() {
        let p = |margin: Option<i64>, drains: bool, backlog: u64, missed: bool| Projection {
            deadline: at(3600),
            drains_at: drains.then(|| at(100)),
            margin_secs: margin,
            backlog,
            missed,
            stalled: None,
        };
        let rule = Rule::DeadlineMiss;
        let judge_p = |proj: Option<Projection>| judge(&rule, &facts(&summary(0, 0, proj))).0;
        assert!(!judge_p(None), "no deadline, no miss");
        assert!(
            !judge_p(Some(p(Some(60), true, 5, false))),
            "drains in time"
        );
        assert!(judge_p(Some(p(Some(-60), true, 5, false))), "drains late");
        assert!(judge_p(Some(p(None, false, 5, false))), "nothing drains it");
        assert!(!judge_p(Some(p(None, false, 0, false))), "nothing to drain");
        assert!(judge_p(Some(p(Some(-10), false, 5, true))), "missed");
    }

    #[test]
    fn no_worker_counts_from_the_last_worker_or_the_queue_birth() {
        let s = summary(0, 0, None);
        let rule = Rule::parse("no-worker>5m").unwrap();
        let mut f = facts(&s);
        f.now = at(300);
        assert!(!judge(&rule, &f).0, "exactly 5m is not past 5m");
        f.now = at(301);
        assert!(judge(&rule, &f).0);
        f.last_worker = Some(at(200));
        assert!(!judge(&rule, &f).0);
    }

    #[test]
    fn each_transition_happens_once() {
        use AlertState::*;
        assert_eq!(transition(Cleared, true), Some(Fired));
        assert_eq!(transition(Fired, true), None);
        assert_eq!(transition(Fired, false), Some(Cleared));
        assert_eq!(transition(Cleared, false), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("late invoices").is_ok());
        assert!(check_name("").unwrap_err().contains("empty"));
        assert!(check_name("a\u{1b}[2J").unwrap_err().contains("control"));
        assert!(check_name(&"x".repeat(101)).unwrap_err().contains("101"));
    }
}
