//! One request as a handler sees it (`Call`) and how answers and errors go out: every error
//! is `{"error": {...}}` with the status its kind says, and a body that does not parse is a
//! 400 naming the field.

use super::State;
use crate::api::ErrorBody;
use crate::backend::{Conflict, Error, StorageCause};
use crate::token::TokenInfo;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A request on its way to a handler: who sent it (already checked against the route's
/// role), its path parameters, its query and its body, unread.
pub struct Call {
    pub state: Arc<State>,
    /// `None` on the routes anyone may call.
    pub who: Option<TokenInfo>,
    pub params: HashMap<String, String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Call {
    /// A call with nothing left to read: who made it, for `actor` and `worker`.
    pub fn bare(state: Arc<State>, who: Option<TokenInfo>) -> Call {
        Call {
            state,
            who,
            params: HashMap::new(),
            query: None,
            headers: HeaderMap::new(),
            body: Body::empty(),
        }
    }

    /// Who history names for this request: `token:NAME`.
    pub fn actor(&self) -> String {
        match &self.who {
            Some(t) => format!("token:{}", t.name),
            None => "token:-".into(),
        }
    }

    /// The worker history names: `token:NAME/WORKER`, or `token:NAME` without one.
    pub fn worker(&self, named: Option<&str>) -> Result<String, Error> {
        match named {
            None => Ok(self.actor()),
            Some(w)
                if w.is_empty() || w.chars().count() > 100 || w.chars().any(char::is_control) =>
            {
                Err(Error::invalid(
                    "worker",
                    "a worker name is 1 to 100 characters, none of them control characters",
                ))
            }
            Some(w) => Ok(format!("{}/{w}", self.actor())),
        }
    }

    pub fn param(&self, name: &str) -> String {
        self.params.get(name).cloned().unwrap_or_default()
    }

    /// The query string as `T`; a bad or unknown parameter is an error naming it.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let q = self.query.as_deref().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| bad_input(e, "query"))
    }

    /// The body, at most `--max-body` bytes.
    pub async fn bytes(self) -> Result<axum::body::Bytes, Error> {
        let limit = self.state.opts.max_body;
        read_limited(self.body, limit).await
    }

    /// The JSON body as `T`: malformed JSON, a wrong type or an unknown field is an error
    /// naming where.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let bytes = self.bytes().await?;
        parse_json(&bytes)
    }
}

/// Reads a body of at most `limit` bytes: more is `too_large`.
pub async fn read_limited(body: Body, limit: u64) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, limit as usize)
        .await
        .map_err(|e| {
            if is_too_large(&e) {
                Error::too_large(limit)
            } else {
                Error::invalid("body", format!("the request body could not be read: {e}"))
            }
        })
}

fn is_too_large(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// JSON as `T`, an error naming the field that is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::invalid("body", "the request needs a JSON body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Broken JSON is the body's fault, wherever the parser was; the rest names a field.
        if matches!(
            e.inner().classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            Error::invalid("body", format!("malformed JSON: {}", e.inner()))
        } else {
            bad_input(e, "body")
        }
    })?;
    de.end()
        .map_err(|e| Error::invalid("body", format!("malformed JSON: {e}")))?;
    Ok(v)
}

/// A serde error as `invalid`, its field the path to what was wrong (an unknown field's
/// own name appended), or `whole` when it is the input as a whole.
fn bad_input<E: std::fmt::Display>(e: serde_path_to_error::Error<E>, whole: &str) -> Error {
    let mut path = e.path().to_string();
    let inner = e.inner().to_string();
    // An unknown field's own name ends the path already (`items[1].valu`); added where not.
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        if let Some(name) = rest.split('`').next() {
            if path == "." || path.is_empty() {
                path = name.to_string();
            } else if !path.ends_with(name) {
                path = format!("{path}.{name}");
            }
        }
    }
    let field = if path == "." || path.is_empty() {
        whole.to_string()
    } else {
        path
    };
    let what = if whole == "body" {
        "the body"
    } else {
        "the query"
    };
    Error::invalid(field.clone(), format!("{what}: {field}: {inner}"))
}

/// The status an error goes out with.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Transition { .. } => StatusCode::CONFLICT,
        Error::Conflict { conflict, .. } => match conflict {
            Conflict::ListingGone { .. } => StatusCode::GONE,
            _ => StatusCode::CONFLICT,
        },
        Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Storage { cause, .. } => match cause {
            StorageCause::ReadOnly | StorageCause::DiskFull | StorageCause::Stopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// An error as it goes out: its status, `{"error": …}`, and the headers its kind asks for.
pub fn error_response(e: Error) -> Response {
    let status = status_of(&e);
    let mut headers = HeaderMap::new();
    match &e {
        Error::RateLimited {
            retry_after_secs, ..
        } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        Error::Busy { .. } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        Error::Unauthorized { .. } => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    (status, headers, json_body(&ErrorBody { error: e })).into_response()
}

/// A 200 with `v` as JSON.
pub fn ok<T: Serialize>(v: &T) -> Result<Response, Error> {
    Ok(json_body(v).into_response())
}

fn json_body<T: Serialize + ?Sized>(v: &T) -> Response {
    let bytes = serde_json::to_vec(v).expect("the API's bodies serialize");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}
