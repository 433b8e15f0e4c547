//! Bearer tokens (name, role and SHA-256 of each, never the secret) and alerts (their
//! rule, target and the state the last check left them in), as the SQLite store keeps them.

use super::rows::queue_by_name;
use super::{p, Ctx};
use crate::alert::{self, Alert, AlertState, NewAlert, Target};
use crate::backend::{Conflict, Error, Result, Thing};
use crate::clock::from_ms;
use crate::token::{self, NewToken, Role, TokenInfo};
use tokio_postgres::Row;

fn token_info(r: &Row) -> TokenInfo {
    let role: String = r.get("role");
    TokenInfo {
        name: r.get("name"),
        role: role.parse().unwrap_or(Role::Viewer),
        created_at: from_ms(r.get("created_at")),
        revoked_at: r.get::<_, Option<i64>>("revoked_at").map(from_ms),
    }
}

pub async fn create_token(ctx: &mut Ctx<'_>, name: &str, role: Role) -> Result<NewToken> {
    token::check_name(name).map_err(|m| Error::invalid("name", m))?;
    let secret = token::generate();
    let taken = ctx
        .opt(
            "SELECT 1 FROM tokens WHERE name = :name AND revoked_at IS NULL",
            p!["name" => name],
        )
        .await?
        .is_some();
    if taken {
        return Err(Error::conflict(Conflict::TokenExists { name: name.into() }));
    }
    let hash: Vec<u8> = token::hash(&secret).to_vec();
    ctx.exec(
        "INSERT INTO tokens (name, role, hash, created_at) VALUES (:name, :role, :hash, :at)",
        p![
            "name" => name,
            "role" => role.as_str(),
            "hash" => hash,
            "at" => ctx.now.timestamp_millis(),
        ],
    )
    .await?;
    Ok(NewToken {
        token: secret,
        info: TokenInfo {
            name: name.into(),
            role,
            created_at: ctx.now,
            revoked_at: None,
        },
    })
}

pub async fn revoke_token(ctx: &mut Ctx<'_>, name: &str) -> Result<TokenInfo> {
    ctx.opt(
        "UPDATE tokens SET revoked_at = :at WHERE name = :name AND revoked_at IS NULL
         RETURNING name, role, created_at, revoked_at",
        p!["name" => name, "at" => ctx.now.timestamp_millis()],
    )
    .await?
    .map(|r| token_info(&r))
    .ok_or_else(|| Error::not_found(Thing::Token, name))
}

pub async fn tokens(ctx: &Ctx<'_>) -> Result<Vec<TokenInfo>> {
    Ok(ctx
        .rows(
            "SELECT name, role, created_at, revoked_at FROM tokens ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(token_info)
        .collect())
}

pub async fn verify_token(ctx: &Ctx<'_>, secret: &str) -> Result<Option<TokenInfo>> {
    let live: Vec<(TokenInfo, Vec<u8>)> = ctx
        .rows(
            "SELECT name, role, created_at, revoked_at, hash FROM tokens WHERE revoked_at IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| (token_info(r), r.get::<_, Vec<u8>>("hash")))
        .collect();
    Ok(token::find(secret, &live).cloned())
}

const COLS: &str = "a.name, q.name AS queue, a.rule, a.run, a.webhook, a.state, a.generation, \
                    a.changed_at, a.created_at";

fn alert_row(r: &Row) -> Alert {
    let run: Option<String> = r.get("run");
    let webhook: Option<String> = r.get("webhook");
    let state: String = r.get("state");
    Alert {
        name: r.get("name"),
        queue: r.get("queue"),
        rule: r.get("rule"),
        target: match run {
            Some(c) => Target::Run(c),
            None => Target::Webhook(webhook.unwrap_or_default()),
        },
        state: if state == "fired" {
            AlertState::Fired
        } else {
            AlertState::Cleared
        },
        generation: r.get::<_, i64>("generation") as u64,
        changed_at: r.get::<_, Option<i64>>("changed_at").map(from_ms),
        created_at: from_ms(r.get("created_at")),
    }
}

async fn alert_by_name(ctx: &Ctx<'_>, name: &str) -> Result<Option<Alert>> {
    Ok(ctx
        .opt(
            &format!(
                "SELECT {COLS} FROM alerts a JOIN queues q ON q.id = a.queue_id WHERE a.name = :name"
            ),
            p!["name" => name],
        )
        .await?
        .map(|r| alert_row(&r)))
}

pub async fn add_alert(ctx: &mut Ctx<'_>, a: &NewAlert) -> Result<Alert> {
    let rule = alert::check_new(a).map_err(|(field, m)| Error::invalid(field, m))?;
    let queue = queue_by_name(ctx, &a.queue, false).await?;
    if alert_by_name(ctx, &a.name).await?.is_some() {
        return Err(Error::conflict(Conflict::AlertExists {
            name: a.name.clone(),
        }));
    }
    let (run, webhook) = match &a.target {
        Target::Run(c) => (Some(c.as_str()), None),
        Target::Webhook(u) => (None, Some(u.as_str())),
    };
    ctx.exec(
        "INSERT INTO alerts (name, queue_id, rule, run, webhook, created_at)
         VALUES (:name, :q, :rule, :run, :webhook, :at)",
        p![
            "name" => a.name,
            "q" => queue.id,
            "rule" => rule,
            "run" => run,
            "webhook" => webhook,
            "at" => ctx.now.timestamp_millis(),
        ],
    )
    .await?;
    alert_by_name(ctx, &a.name)
        .await?
        .ok_or_else(|| Error::not_found(Thing::Alert, &a.name))
}

pub async fn alerts(ctx: &Ctx<'_>) -> Result<Vec<Alert>> {
    Ok(ctx
        .rows(
            &format!(
                "SELECT {COLS} FROM alerts a JOIN queues q ON q.id = a.queue_id
                 ORDER BY a.name COLLATE \"C\""
            ),
            &[],
        )
        .await?
        .iter()
        .map(alert_row)
        .collect())
}

pub async fn remove_alert(ctx: &mut Ctx<'_>, name: &str) -> Result<Alert> {
    let found = alert_by_name(ctx, name)
        .await?
        .ok_or_else(|| Error::not_found(Thing::Alert, name))?;
    ctx.exec("DELETE FROM alerts WHERE name = :name", p!["name" => name])
        .await?;
    Ok(found)
}

/// The compare-and-set: only the checker that saw the current generation moves it.
pub async fn set_alert_state(
    ctx: &mut Ctx<'_>,
    name: &str,
    seen: u64,
    to: AlertState,
) -> Result<Option<Alert>> {
    let moved = ctx
        .exec(
            "UPDATE alerts SET state = :to, generation = generation + 1, changed_at = :at
             WHERE name = :name AND generation = :seen AND state <> :to",
            p![
                "name" => name,
                "seen" => seen as i64,
                "to" => to.as_str(),
                "at" => ctx.now.timestamp_millis(),
            ],
        )
        .await?;
    if moved == 0 {
        return match alert_by_name(ctx, name).await? {
            None => Err(Error::not_found(Thing::Alert, name)),
            Some(_) => Ok(None),
        };
    }
    alert_by_name(ctx, name).await
}
