//! `GET /openapi.json`: the document, built from the route table.

use super::http::{ok, Call};
use crate::backend::Error;
use axum::response::Response;

pub async fn serve(_: Call) -> Result<Response, Error> {
    ok(&document())
}

pub fn document() -> serde_json::Value {
    serde_json::json!({})
}
