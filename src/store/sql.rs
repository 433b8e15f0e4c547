//! SQL written from the rules, for the SQL stores: `rules::Cond`itions as WHERE terms and
//! a `rules::Transition`'s writes as a SET clause. A store that filters or changes many
//! items in one statement uses these instead of restating a rule in SQL, so its
//! statements and the rules it applies to loaded items cannot disagree.
//!
//! Column names are the schema's (`status`, `expires_at`, … on items; `sla_ms`,
//! `sla_risk_pct` on queues). Values come in as parameters named by what they hold
//! (`now`, `worker`, `lease_until`, …); `Names::param` writes a placeholder for one
//! (`:now` for SQLite, `?` bound in order, `$1` for PostgreSQL) and the returned list
//! says which parameters the text names, in order.

use crate::model::Status;
use crate::rules::{Cmp, Col, Cond, Edge, LeasePut, Put, Writes};

/// How a statement names things.
pub struct Names<'a> {
    /// The items table's alias with its dot (`i.`), or nothing.
    pub item: &'a str,
    /// The queues table's alias with its dot, when the statement joins it; conditions on
    /// the SLA need it.
    pub queue: Option<&'a str>,
    /// The placeholder of a named parameter.
    pub param: &'a dyn Fn(&str) -> String,
}

/// SQLite's named parameters: `:now`.
pub fn named(name: &str) -> String {
    format!(":{name}")
}

/// Positional parameters, bound in the order `cond` returns them: `?`.
pub fn positional(_: &str) -> String {
    "?".to_string()
}

/// PostgreSQL's numbered parameters for a statement written with named ones (`:now`, as
/// `named` writes them and the SQLite store binds them): the text with each name turned
/// into `$n` (the same `$n` each time a name comes back, numbered from `$1` in order of
/// first use) and the names in the order of their numbers. So one statement text, with the
/// rules rendered in it by `cond` and `set`, serves both stores. Text in single quotes and
/// `::` casts are left as they are.
pub fn numbered(sql: &str) -> (String, Vec<String>) {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut names: Vec<String> = Vec::new();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                // A quoted literal ('' inside is the quote itself): skipped whole.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b':' if i + 1 < b.len() && b[i + 1] == b':' => i += 2,
            b':' if i + 1 < b.len()
                && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_')
                && (i == 0 || b[i - 1] != b':') =>
            {
                out.push_str(&sql[start..i]);
                let mut j = i + 1;
                while j < b.len() && ident(b[j]) {
                    j += 1;
                }
                let name = &sql[i + 1..j];
                let n = match names.iter().position(|x| x == name) {
                    Some(k) => k + 1,
                    None => {
                        names.push(name.to_string());
                        names.len()
                    }
                };
                out.push_str(&format!("${n}"));
                i = j;
                start = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[start.min(sql.len())..]);
    (out, names)
}

/// The SQL of a condition, two-valued (never NULL, so it can be negated and combined), and
/// the parameters it names, in order (all `now`).
pub fn cond(c: &Cond, n: &Names) -> (String, Vec<&'static str>) {
    let mut out = String::new();
    let mut params = Vec::new();
    render(c, false, false, n, &mut out, &mut params);
    (out, params)
}

/// Whether `c` (negated when `neg`) renders to a term that is FALSE without an SLA target:
/// `sla_ms IS NOT NULL` itself, or a conjunction holding it. The other terms of the same
/// conjunction may then take the target as set (FALSE AND NULL is FALSE, so the whole stays
/// two-valued): a bare `enqueued_at >= ? - sla_ms` is a range of the open-items index,
/// where the same term guarded by `sla_ms IS NULL OR …` is not.
fn needs_sla(c: &Cond, neg: bool) -> bool {
    match c {
        Cond::HasSla => !neg,
        Cond::Status(_)
        | Cond::Time(..)
        | Cond::EnqueuedBefore(_)
        | Cond::FinishedInSla
        | Cond::PastMaxRuntime => false,
        Cond::Not(c) => needs_sla(c, !neg),
        // A conjunction needs it when one term does; a disjunction when every term does.
        Cond::All(cs) if !neg => cs.iter().any(|c| needs_sla(c, false)),
        Cond::Any(cs) if neg => cs.iter().any(|c| needs_sla(c, true)),
        Cond::All(cs) | Cond::Any(cs) => cs.iter().all(|c| needs_sla(c, neg)),
    }
}

fn time_col(c: Col) -> &'static str {
    match c {
        Col::ExpiresAt => "expires_at",
        Col::DelayUntil => "delay_until",
        Col::LeaseUntil => "lease_until",
        Col::FinishedAt => "finished_at",
    }
}

/// Renders `c`, or its negation: NOT is pushed down to the leaves, where each has an exact
/// opposite, so an index's `status = 'queued'` term stays visible to the planner.
/// `has_sla`: the enclosing conjunction already requires an SLA target (see `needs_sla`);
/// each term is still two-valued where it matters, as FALSE AND NULL is FALSE.
fn render(
    c: &Cond,
    neg: bool,
    has_sla: bool,
    n: &Names,
    out: &mut String,
    params: &mut Vec<&'static str>,
) {
    let i = n.item;
    let now = |params: &mut Vec<&'static str>| {
        params.push("now");
        (n.param)("now")
    };
    let q = || {
        n.queue
            .expect("an SLA condition needs the queues table joined")
    };
    match c {
        Cond::Status(s) => {
            let op = if neg { "<>" } else { "=" };
            out.push_str(&format!("{i}status {op} '{}'", Status::as_str(*s)));
        }
        Cond::Time(col, cmp) => {
            let col = format!("{i}{}", time_col(*col));
            let (op, opposite) = match cmp {
                Cmp::Reached => ("<=", ">"),
                Cmp::Passed => ("<", ">="),
                Cmp::Ahead => (">", "<="),
            };
            let now = now(params);
            out.push_str(&if neg {
                format!("({col} IS NULL OR {col} {opposite} {now})")
            } else {
                format!("({col} IS NOT NULL AND {col} {op} {now})")
            });
        }
        Cond::HasSla => {
            let is = if neg { "IS" } else { "IS NOT" };
            out.push_str(&format!("{}sla_ms {is} NULL", q()));
        }
        Cond::EnqueuedBefore(edge) => {
            let q = q();
            let now = now(params);
            // `rules::sla_edges`: out = now − sla; risk = now − sla × pct / 100 + 1.
            let edge = match edge {
                Edge::Out => format!("{now} - {q}sla_ms"),
                Edge::Risk => format!("{now} - ({q}sla_ms * {q}sla_risk_pct / 100) + 1"),
            };
            out.push_str(&match (neg, has_sla) {
                (false, true) => format!("{i}enqueued_at < {edge}"),
                (true, true) => format!("{i}enqueued_at >= {edge}"),
                (false, false) => format!("({q}sla_ms IS NOT NULL AND {i}enqueued_at < {edge})"),
                (true, false) => format!("({q}sla_ms IS NULL OR {i}enqueued_at >= {edge})"),
            });
        }
        Cond::FinishedInSla => {
            let q = q();
            let now = now(params);
            let took = format!("COALESCE({i}finished_at, {now}) - {i}enqueued_at");
            out.push_str(&match (neg, has_sla) {
                (false, true) => format!("{took} <= {q}sla_ms"),
                (true, true) => format!("{took} > {q}sla_ms"),
                (false, false) => format!("({q}sla_ms IS NOT NULL AND {took} <= {q}sla_ms)"),
                (true, false) => format!("({q}sla_ms IS NULL OR {took} > {q}sla_ms)"),
            });
        }
        Cond::PastMaxRuntime => {
            let q = q();
            let now = now(params);
            let end = format!("{i}started_at + {q}max_runtime_ms");
            out.push_str(&if neg {
                format!("({i}started_at IS NULL OR {q}max_runtime_ms IS NULL OR {end} >= {now})")
            } else {
                format!("({i}started_at IS NOT NULL AND {q}max_runtime_ms IS NOT NULL AND {end} < {now})")
            });
        }
        Cond::Not(c) => render(c, !neg, has_sla, n, out, params),
        Cond::All(cs) | Cond::Any(cs) => {
            let and = matches!(c, Cond::All(_)) != neg;
            let has_sla = has_sla || (and && cs.iter().any(|c| needs_sla(c, neg)));
            out.push('(');
            for (k, c) in cs.iter().enumerate() {
                if k > 0 {
                    out.push_str(if and { " AND " } else { " OR " });
                }
                render(c, neg, has_sla, n, out, params);
            }
            out.push(')');
        }
    }
}

/// The SET clause of a transition to `to` with writes `w`: `status = 'processing',
/// started_at = :now, …`, and the parameters it names. `token` is the SQL of a granted
/// lease's token. Writes that SQL cannot compute (a failure note's signature) are a
/// programming error here: such a transition is applied to a loaded row (`rules::apply`).
pub fn set(to: Status, w: &Writes, token: &str, param: &dyn Fn(&str) -> String) -> SetClause {
    let mut sets = vec![format!("status = '{}'", to.as_str())];
    let mut params: Vec<&'static str> = Vec::new();
    let p = |name: &'static str, params: &mut Vec<&'static str>| {
        if !params.contains(&name) {
            params.push(name);
        }
        param(name)
    };
    let fields: [(&'static str, Put); 11] = [
        ("reason", w.reason),
        ("signature", w.signature),
        ("retry_count", w.retry_count),
        ("requeue_count", w.requeue_count),
        ("priority", w.priority),
        ("started_at", w.started_at),
        ("finished_at", w.finished_at),
        ("expires_at", w.expires_at),
        ("delay_until", w.delay_until),
        ("worker", w.worker),
        ("value", w.value),
    ];
    for (col, put) in fields {
        let v = match put {
            Put::Keep => continue,
            Put::Clear => "NULL".to_string(),
            Put::Now => p("now", &mut params),
            Put::Given if col == "signature" => {
                panic!("a failure's signature is computed from its note: apply it to a loaded row")
            }
            Put::Given => p(col, &mut params),
            Put::Increment => format!("{col} + 1"),
            Put::ClearPassed => {
                format!(
                    "CASE WHEN {col} <= {} THEN NULL ELSE {col} END",
                    p("now", &mut params)
                )
            }
        };
        sets.push(format!("{col} = {v}"));
    }
    match w.lease {
        LeasePut::Keep => {}
        LeasePut::Grant => {
            sets.push(format!("lease_token = {token}"));
            sets.push(format!("lease_until = {}", p("lease_until", &mut params)));
        }
        LeasePut::Extend => sets.push(format!("lease_until = {}", p("lease_until", &mut params))),
        LeasePut::End => sets.push("lease_token = NULL, lease_until = NULL".into()),
    }
    SetClause {
        sql: sets.join(", "),
        params,
    }
}

/// A SET clause and the parameters it names, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetClause {
    pub sql: String,
    pub params: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sla;
    use crate::rules::{self, Facts};
    use rusqlite::Connection;
    use std::collections::BTreeSet;

    /// The SQL a condition renders to selects exactly the items `Cond::holds` says it
    /// holds for, on every combination of statuses and times around each edge (at, one
    /// millisecond before and after now and the SLA edges): a store's filter and the rules
    /// cannot disagree.
    #[test]
    fn rendered_conditions_select_what_the_rules_say() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE queues (id INTEGER PRIMARY KEY, sla_ms INTEGER, sla_risk_pct INTEGER NOT NULL,
                max_runtime_ms INTEGER);
             CREATE TABLE items (id INTEGER PRIMARY KEY, queue_id INTEGER, status TEXT NOT NULL,
                enqueued_at INTEGER NOT NULL, finished_at INTEGER, expires_at INTEGER,
                delay_until INTEGER, lease_until INTEGER, started_at INTEGER);",
        )
        .unwrap();
        let now: i64 = 10_000_000;
        let queues: [(i64, Option<i64>, u8, Option<i64>); 3] = [
            (1, None, 80, None),
            (2, Some(100_000), 80, Some(5)),
            (3, Some(1_001), 33, Some(1_001)),
        ];
        let mut facts: Vec<(i64, Facts)> = Vec::new();
        let around = |t: i64| [t - 1, t, t + 1];
        for (qid, sla, pct, max_runtime) in queues {
            conn.execute(
                "INSERT INTO queues VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![qid, sla, pct, max_runtime],
            )
            .unwrap();
            let mut ages = vec![0, 5];
            if let Some(sla) = sla {
                let e = rules::sla_edges(sla, pct, now);
                ages.extend(around(now - e.out));
                ages.extend(around(now - e.risk));
            }
            if let Some(m) = max_runtime {
                ages.extend(around(m));
            }
            for status in Status::ALL {
                for age in &ages {
                    let enqueued = now - age;
                    // An attempt started when the item was enqueued, while it is processing.
                    let started = (*status == Status::Processing).then_some(enqueued);
                    let finished = [None, Some(enqueued + sla.unwrap_or(0)), Some(now + 1)];
                    let times = [None, Some(now - 1), Some(now), Some(now + 1)];
                    for fin in finished {
                        for exp in times {
                            for delay in times {
                                for lease in times {
                                    let f = Facts {
                                        status: *status,
                                        enqueued_at: enqueued,
                                        finished_at: fin,
                                        expires_at: exp,
                                        delay_until: delay,
                                        lease_until: lease,
                                        sla_ms: sla,
                                        risk_pct: pct,
                                        started_at: started,
                                        max_runtime_ms: max_runtime,
                                    };
                                    conn.execute(
                                        "INSERT INTO items (queue_id, status, enqueued_at,
                                            finished_at, expires_at, delay_until, lease_until, started_at)
                                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                        rusqlite::params![
                                            qid,
                                            status.as_str(),
                                            enqueued,
                                            fin,
                                            exp,
                                            delay,
                                            lease,
                                            started
                                        ],
                                    )
                                    .unwrap();
                                    facts.push((conn.last_insert_rowid(), f));
                                }
                            }
                        }
                    }
                }
            }
        }
        let names = Names {
            item: "i.",
            queue: Some("q."),
            param: &positional,
        };
        let mut conds = vec![
            rules::EXPIRY_PASSED,
            rules::EXPIRED,
            rules::DELAYED,
            rules::TAKEABLE,
            rules::DORMANT,
            rules::LEASE_RAN_OUT,
            rules::LEASE_LIVE,
            rules::RUNTIME_RAN_OUT,
            rules::TIMED_OUT,
        ];
        conds.extend(Sla::ALL.iter().map(|s| rules::sla_cond(*s)));
        let negated: Vec<Cond> = conds
            .iter()
            .map(|c| Cond::Not(Box::leak(Box::new(*c))))
            .collect();
        conds.extend(negated);
        for c in &conds {
            let (sql, params) = cond(c, &names);
            let mut st = conn
                .prepare(&format!(
                    "SELECT i.id FROM items i JOIN queues q ON q.id = i.queue_id WHERE {sql}"
                ))
                .unwrap();
            let got: BTreeSet<i64> = st
                .query_map(
                    rusqlite::params_from_iter(params.iter().map(|_| now)),
                    |r| r.get(0),
                )
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let want: BTreeSet<i64> = facts
                .iter()
                .filter(|(_, f)| c.holds(f, now))
                .map(|(id, _)| *id)
                .collect();
            assert!(
                !want.is_empty() && want.len() < facts.len(),
                "{c:?} tells nothing apart"
            );
            assert_eq!(got, want, "{c:?} as {sql}");
            // Never NULL, so it can be stored (`dormant = …`) or combined as it is.
            let nulls: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM items i JOIN queues q ON q.id = i.queue_id
                         WHERE ({sql}) IS NULL"
                    ),
                    rusqlite::params_from_iter(params.iter().map(|_| now)),
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(nulls, 0, "{c:?} is NULL for some items: {sql}");
        }
    }

    #[test]
    fn a_set_clause_says_what_the_transition_writes() {
        let t = rules::transition(rules::ItemEvent::Dequeue);
        let s = set(t.to, &t.writes, ":token || '.' || seq", &named);
        assert_eq!(
            s.sql,
            "status = 'processing', started_at = :now, delay_until = NULL, worker = :worker, \
             lease_token = :token || '.' || seq, lease_until = :lease_until"
        );
        assert_eq!(s.params, ["now", "worker", "lease_until"]);
        let t = rules::transition(rules::ItemEvent::Complete);
        let s = set(t.to, &t.writes, "", &named);
        assert_eq!(
            s.sql,
            "status = 'processed', reason = NULL, finished_at = :now, \
             lease_token = NULL, lease_until = NULL"
        );
        let requeue = rules::action_rule("requeue").unwrap();
        let s = set(Status::Queued, &requeue.writes, "", &named);
        assert!(
            s.sql.contains(
                "expires_at = CASE WHEN expires_at <= :now THEN NULL ELSE expires_at END"
            ),
            "{}",
            s.sql
        );
        assert_eq!(s.params, ["now", "delay_until", "value"]);
    }

    #[test]
    fn named_parameters_become_numbered_ones_for_postgresql() {
        let (sql, names) = numbered(
            "UPDATE items SET a = :now, b = ':not' || x::text WHERE c < :now AND d = :worker_1",
        );
        assert_eq!(
            sql,
            "UPDATE items SET a = $1, b = ':not' || x::text WHERE c < $1 AND d = $2"
        );
        assert_eq!(names, ["now", "worker_1"]);
        let t = rules::transition(rules::ItemEvent::Dequeue);
        let s = set(t.to, &t.writes, "''", &named);
        let (sql, names) = numbered(&s.sql);
        assert!(!sql.contains(':'), "{sql}");
        assert_eq!(names, s.params);
    }

    #[test]
    #[should_panic(expected = "signature")]
    fn a_signature_is_never_made_in_sql() {
        let t = rules::transition(rules::ItemEvent::Fail);
        set(t.to, &t.writes, "", &named);
    }
}
