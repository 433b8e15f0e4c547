//! Who may call a route: the bearer token, checked against the live tokens of the database
//! on every request (a token revoked by `workq token revoke` on the same file is refused
//! at once), its role against the route's; then the token's request rate.

use super::routes::Route;
use super::State;
use crate::backend::Error;
use crate::token::TokenInfo;
use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The token a request carries, checked for this route: `Ok(None)` on a public route.
pub async fn check(
    state: &State,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<TokenInfo>, Error> {
    let Some(needed) = route.role else {
        return Ok(None);
    };
    let Some(secret) = bearer(headers)? else {
        return Err(Error::unauthorized(
            "this needs a token: send `Authorization: Bearer TOKEN` (make one with \
             `workq token create NAME --role ROLE`); nothing was changed",
        ));
    };
    let Some(who) = state.backend.verify_token(secret).await? else {
        return Err(Error::unauthorized(
            "the token is not known to this server (wrong, or revoked); nothing was changed",
        ));
    };
    if !who.role.allows(needed) {
        return Err(Error::forbidden(
            who.role.as_str(),
            needed.as_str(),
            &format!("call {} {}", route.verb.as_str(), route.path),
        ));
    }
    state.limiter.take(&who.name)?;
    Ok(Some(who))
}

/// The token of `Authorization: Bearer …`, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| Error::unauthorized("the Authorization header is not text"))?;
    match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(Some(t.trim()))
        }
        _ => Err(Error::unauthorized(
            "the Authorization header must be `Bearer TOKEN`; nothing was changed",
        )),
    }
}

/// Requests per second per token: a bucket of `burst` that refills at `rate` a second.
/// A rate of 0 is no limit.
pub struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: f64, burst: u32) -> Limiter {
        Limiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `name`'s bucket, or says when the next one is allowed.
    pub fn take(&self, name: &str) -> Result<(), Error> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate buckets");
        let (left, at) = buckets.entry(name.to_string()).or_insert((self.burst, now));
        *left = (*left + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - *left) / self.rate);
        Err(Error::rate_limited(
            wait.as_secs_f64().ceil().max(1.0) as u64
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_says_when_to_come_back() {
        let l = Limiter::new(0.5, 3);
        for _ in 0..3 {
            l.take("a").unwrap();
        }
        match l.take("a").unwrap_err() {
            Error::RateLimited {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, 2),
            e => panic!("{e:?}"),
        }
        l.take("b").expect("each token has its own bucket");
        Limiter::new(0.0, 1).take("a").unwrap();
    }
}
