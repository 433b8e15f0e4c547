//! Bearer tokens in the SQLite file: name, role and SHA-256 of each (never the secret).

use super::rows::sql;
use super::writer::Ctx;
use crate::backend::{Conflict, Error, Result, Thing};
use crate::clock::from_ms;
use crate::token::{self, NewToken, Role, TokenInfo};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn info(r: &Row) -> rusqlite::Result<TokenInfo> {
    let role: String = r.get("role")?;
    Ok(TokenInfo {
        name: r.get("name")?,
        // Written by `create` from a `Role`; anything else reads as the least role.
        role: role.parse().unwrap_or(Role::Viewer),
        created_at: from_ms(r.get("created_at")?),
        revoked_at: r.get::<_, Option<i64>>("revoked_at")?.map(from_ms),
    })
}

pub fn create(ctx: &mut Ctx, name: &str, role: Role) -> Result<NewToken> {
    token::check_name(name).map_err(|m| Error::invalid("name", m))?;
    let secret = token::generate();
    let conn = ctx.conn;
    let taken: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM tokens WHERE name = ?1 AND revoked_at IS NULL)",
        )
        .and_then(|mut s| s.query_row([name], |r| r.get(0)))
        .map_err(sql)?;
    if taken {
        return Err(Error::conflict(Conflict::TokenExists { name: name.into() }));
    }
    conn.prepare_cached(
        "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            name,
            role.as_str(),
            token::hash(&secret),
            ctx.now.timestamp_millis()
        ])
    })
    .map_err(sql)?;
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

pub fn revoke(ctx: &mut Ctx, name: &str) -> Result<TokenInfo> {
    let at = ctx.now.timestamp_millis();
    ctx.conn
        .prepare_cached(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL
             RETURNING name, role, created_at, revoked_at",
        )
        .and_then(|mut s| s.query_row(params![name, at], info).optional())
        .map_err(sql)?
        .ok_or_else(|| Error::not_found(Thing::Token, name))
}

pub fn list(conn: &Connection) -> Result<Vec<TokenInfo>> {
    let mut s = conn
        .prepare_cached("SELECT name, role, created_at, revoked_at FROM tokens ORDER BY id")
        .map_err(sql)?;
    let rows = s.query_map([], info).map_err(sql)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql)
}

pub fn verify(conn: &Connection, secret: &str) -> Result<Option<TokenInfo>> {
    let mut s = conn
        .prepare_cached(
            "SELECT name, role, created_at, revoked_at, hash FROM tokens WHERE revoked_at IS NULL",
        )
        .map_err(sql)?;
    let live = s
        .query_map([], |r| Ok((info(r)?, r.get::<_, Vec<u8>>("hash")?)))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(token::find(secret, &live).cloned())
}
