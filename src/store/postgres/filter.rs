//! A `Filter` as SQL over `items i JOIN queues q`: one WHERE for listings, previews and
//! bulk actions alike, with named parameters `:f0`, `:f1`, … (the rules' conditions with
//! `:now`). Expiry and SLA are the rules' own conditions, rendered.

use super::rows::{queue_by_name, status_column};
use super::write::{cond_q, ms};
use super::{Ctx, Val};
use crate::backend::Result;
use crate::model::*;
use crate::rules;

pub struct Where {
    pub sql: String,
    /// The filter's own parameters; `now` is bound by whoever runs it.
    pub params: Vec<(String, Val)>,
    /// The filter only names a queue and statuses: counters can give the total.
    pub counter_only: bool,
    pub queue_id: Option<i64>,
    pub now: i64,
}

impl Where {
    fn push(&mut self, v: Val) -> String {
        let name = format!("f{}", self.params.len());
        self.params.push((name.clone(), v));
        format!(":{name}")
    }
}

pub async fn build(ctx: &Ctx<'_>, f: &Filter) -> Result<Where> {
    crate::rules::check_filter(f).map_err(|m| crate::backend::Error::invalid("search", m))?;
    let mut w = Where {
        sql: String::new(),
        params: Vec::new(),
        counter_only: false,
        queue_id: None,
        now: ms(ctx.now),
    };
    let mut conds: Vec<String> = Vec::new();
    if let Some(name) = &f.queue {
        let q = queue_by_name(ctx, name, false).await?;
        let p = w.push(Box::new(q.id));
        conds.push(format!("i.queue_id = {p}"));
        w.queue_id = Some(q.id);
    }
    if !f.statuses.is_empty() {
        // Literals, not parameters (they come from an enum): the planner then sees a
        // partial index's condition.
        conds.push(match f.statuses.as_slice() {
            [one] => format!("i.status = '{one}'"),
            many => {
                let list: Vec<String> = many.iter().map(|s| format!("'{s}'")).collect();
                format!("i.status IN ({})", list.join(", "))
            }
        });
        if !f.statuses.contains(&Status::Processed) {
            conds.push("i.status <> 'processed'".into());
        }
    }
    if let Some(r) = f.reason {
        let p = w.push(Box::new(r.as_str().to_string()));
        conds.push(format!("i.reason = {p}"));
    }
    if let Some(pr) = f.priority {
        let p = w.push(Box::new(pr.rank()));
        conds.push(format!("i.priority = {p}"));
    }
    if let Some(sla) = f.sla {
        conds.push(cond_q(&rules::sla_cond(sla)));
    }
    match f.expired {
        Some(true) => conds.push(cond_q(&rules::EXPIRED)),
        Some(false) => conds.push(cond_q(&rules::Cond::Not(&rules::EXPIRED))),
        None => {}
    }
    if let Some(text) = f.search.as_deref().filter(|t| !t.is_empty()) {
        let like = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let id = w.push(Box::new(text.to_string()));
        let l = w.push(Box::new(like));
        // ILIKE: SQLite's LIKE ignores ASCII case, and the search reads the same on both.
        conds.push(format!(
            "(i.id = {id} OR i.name ILIKE {l} ESCAPE '\\' OR i.key ILIKE {l} ESCAPE '\\' \
             OR i.value ILIKE {l} ESCAPE '\\' OR i.notes ILIKE {l} ESCAPE '\\')"
        ));
    }
    if let Some(sig) = &f.signature {
        let p = w.push(Box::new(sig.clone()));
        conds.push(format!("i.signature = {p}"));
    }
    if let Some(wk) = &f.worker {
        let p = w.push(Box::new(wk.clone()));
        conds.push(format!("i.worker = {p}"));
    }
    let bare = Filter {
        queue: f.queue.clone(),
        statuses: f.statuses.clone(),
        search: f.search.clone().filter(|t| t.is_empty()),
        ..Default::default()
    };
    w.counter_only = *f == bare;
    w.sql = if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join(" AND ")
    };
    Ok(w)
}

/// Items matching any of `fs`: the union of each filter's rows.
pub async fn build_any(ctx: &Ctx<'_>, fs: &[Filter]) -> Result<Where> {
    if fs.is_empty() {
        return Err(crate::backend::Error::invalid(
            "target",
            "no filters given; nothing matches",
        ));
    }
    let mut sql = Vec::new();
    let mut params: Vec<(String, Val)> = Vec::new();
    for (k, f) in fs.iter().enumerate() {
        let w = build(ctx, f).await?;
        // Each filter's parameters renamed apart.
        let mut text = w.sql;
        let mut renamed = Vec::new();
        for (name, v) in w.params.into_iter().rev() {
            let new = format!("u{k}_{name}");
            text = replace_param(&text, &name, &new);
            renamed.push((new, v));
        }
        params.extend(renamed);
        sql.push(format!(
            "SELECT i.seq FROM items i JOIN queues q ON q.id = i.queue_id WHERE {text}"
        ));
    }
    Ok(Where {
        sql: format!("i.seq IN ({})", sql.join(" UNION ")),
        params,
        counter_only: false,
        queue_id: None,
        now: ms(ctx.now),
    })
}

/// `:name` → `:new` where it is a whole parameter name.
fn replace_param(sql: &str, name: &str, new: &str) -> String {
    let pat = format!(":{name}");
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(&pat) {
        let after = &rest[at + pat.len()..];
        let whole = !after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        if whole {
            out.push(':');
            out.push_str(new);
        } else {
            out.push_str(&pat);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The total an unrefined filter matches, from the maintained counters.
pub async fn counted_total(ctx: &Ctx<'_>, w: &Where, statuses: &[Status]) -> Result<u64> {
    let statuses: Vec<Status> = if statuses.is_empty() {
        Status::ALL.to_vec()
    } else {
        statuses.to_vec()
    };
    let cols: Vec<&str> = statuses.iter().map(|s| status_column(*s)).collect();
    let sum = cols.join(" + ");
    // The base in `queues` plus the shards in `queue_counts`.
    let r = match w.queue_id {
        Some(id) => {
            ctx.row(
                &format!(
                    "SELECT (COALESCE((SELECT SUM({sum}) FROM queues WHERE id = :id), 0)
                     + COALESCE((SELECT SUM({sum}) FROM queue_counts WHERE queue_id = :id), 0)
                     )::bigint"
                ),
                super::p!["id" => id],
            )
            .await?
        }
        None => {
            ctx.row(
                &format!(
                    "SELECT (COALESCE((SELECT SUM({sum}) FROM queues), 0)
                     + COALESCE((SELECT SUM({sum}) FROM queue_counts), 0))::bigint"
                ),
                &[],
            )
            .await?
        }
    };
    Ok(r.get::<_, i64>(0).max(0) as u64)
}
