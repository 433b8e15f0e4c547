//! `GET /openapi.json`: the document, built from the route table, so every route is in it
//! with its parameters, bodies, answer and errors; the schemas come from the model's and
//! the API's own types (utoipa derives), so they say what serde writes.

use super::http::{ok, Call};
use super::routes::{Route, Verb, TABLE};
use crate::api::{self, Each, ErrorBody};
use crate::backend::Error;
use crate::model::*;
use crate::token::{NewToken, TokenInfo};
use axum::response::Response;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

pub async fn serve(_: Call) -> Result<Response, Error> {
    ok(&document())
}

type Schemas = Vec<(String, RefOr<Schema>)>;

fn add<T: ToSchema>(v: &mut Schemas) {
    v.push((T::name().to_string(), T::schema()));
    T::schemas(v);
}

/// Every schema a route names, and what they name in turn.
fn schemas() -> Schemas {
    let mut v = Schemas::new();
    add::<api::Health>(&mut v);
    add::<QueueSummary>(&mut v);
    add::<api::CreateQueue>(&mut v);
    add::<Queue>(&mut v);
    add::<QueueSettings>(&mut v);
    add::<api::QueueDeleted>(&mut v);
    add::<api::AddItems>(&mut v);
    add::<Item>(&mut v);
    add::<api::ImportDone>(&mut v);
    add::<Page>(&mut v);
    add::<ItemDetail>(&mut v);
    add::<ExceptionGroup>(&mut v);
    add::<WorkerInfo>(&mut v);
    add::<api::Register>(&mut v);
    add::<api::Registered>(&mut v);
    add::<api::Dequeue>(&mut v);
    add::<Dequeued>(&mut v);
    add::<api::Heartbeat>(&mut v);
    add::<api::Heartbeats>(&mut v);
    add::<api::LeaseUntil>(&mut v);
    add::<api::Complete>(&mut v);
    add::<api::Fail>(&mut v);
    add::<Finished>(&mut v);
    add::<api::Finish>(&mut v);
    add::<api::HandBackLeases>(&mut v);
    add::<api::PreviewRequest>(&mut v);
    add::<Preview>(&mut v);
    add::<api::Act>(&mut v);
    add::<ActionResult>(&mut v);
    add::<ActionInfo>(&mut v);
    add::<api::Undo>(&mut v);
    add::<UndoResult>(&mut v);
    add::<api::Swept>(&mut v);
    add::<TokenInfo>(&mut v);
    add::<NewToken>(&mut v);
    add::<api::CreateToken>(&mut v);
    add::<api::VerifyToken>(&mut v);
    add::<crate::alert::Alert>(&mut v);
    add::<crate::alert::NewAlert>(&mut v);
    add::<api::SetAlertState>(&mut v);
    add::<api::AlertMoved>(&mut v);
    add::<ErrorBody>(&mut v);
    add::<Error>(&mut v);
    v.push((
        "EachFinished".into(),
        <Each<Finished> as PartialSchema>::schema(),
    ));
    v.push((
        "EachLeaseUntil".into(),
        <Each<api::LeaseUntil> as PartialSchema>::schema(),
    ));
    // Later entries of the same name say the same; keep the first.
    let mut seen = std::collections::HashSet::new();
    v.retain(|(n, _)| seen.insert(n.clone()));
    v
}

/// The schema a route's `answer` or `body` names: a component, or a list of one.
fn named(name: &str) -> RefOr<Schema> {
    let list_of = match name {
        "QueueSummaryList" => Some("QueueSummary"),
        "ItemList" => Some("Item"),
        "GroupList" => Some("ExceptionGroup"),
        "WorkerList" => Some("WorkerInfo"),
        "FinishedList" => Some("EachFinished"),
        "LeaseUntilList" => Some("EachLeaseUntil"),
        "ActionList" => Some("ActionInfo"),
        "TokenList" => Some("TokenInfo"),
        "AlertList" => Some("Alert"),
        _ => None,
    };
    match list_of {
        Some(item) => ArrayBuilder::new()
            .items(Ref::from_schema_name(item))
            .build()
            .into(),
        None => Ref::from_schema_name(name).into(),
    }
}

fn query_params(name: &str) -> Vec<utoipa::openapi::path::Parameter> {
    let q = || Some(ParameterIn::Query);
    match name {
        "ItemsQuery" => api::ItemsQuery::into_params(q),
        "GroupsQuery" => api::GroupsQuery::into_params(q),
        "UpcomingQuery" => api::UpcomingQuery::into_params(q),
        "ActionsQuery" => api::ActionsQuery::into_params(q),
        "ImportQuery" => api::ImportQuery::into_params(q),
        "DeleteQueue" => api::DeleteQueue::into_params(q),
        "EventsQuery" => super::EventsQuery::into_params(q),
        other => panic!("routes.rs names query parameters '{other}' that openapi.rs lacks"),
    }
}

fn json(schema: RefOr<Schema>) -> Content {
    Content::new(Some(schema))
}

/// The statuses a route may answer besides 200, each with the error body.
fn errors(route: &Route) -> Vec<(&'static str, &'static str)> {
    let mut e = vec![("503", "The database is busy, read-only or stopped")];
    if route.role.is_some() {
        e.extend([
            ("400", "Bad input: the error's `field` names it"),
            ("401", "No token, or a wrong or revoked one"),
            ("403", "The token's role may not do this"),
            ("404", "An unknown queue, item, action or token"),
            ("405", "Not a method of this path"),
            (
                "409",
                "A clash with the current state (a stale lease, a duplicate key…)",
            ),
            ("410", "A listing's anchor item no longer exists"),
            ("413", "The body is over the server's limit"),
            ("429", "Too many requests with this token: see Retry-After"),
        ]);
    }
    e
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(route.summary))
        .operation_id(Some(format!(
            "{}_{}",
            route.verb.as_str().to_ascii_lowercase(),
            route
                .path
                .trim_start_matches('/')
                .replace(['/', '-', '.'], "_")
                .replace(['{', '}'], "")
        )));
    for seg in route.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
    }
    if let Some(q) = route.query {
        for p in query_params(q) {
            op = op.parameter(p);
        }
    }
    match route.body {
        Some("ImportFile") => {
            let file = || ObjectBuilder::new().schema_type(Type::String);
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some("The file, as is: CSV (with a header) or JSON Lines"))
                    .content("text/csv", Content::new(Some(file())))
                    .content("application/x-ndjson", Content::new(Some(file())))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        Some(name) => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(named(name)))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        None => {}
    }
    let answer = match (route.path, route.answer) {
        ("/metrics", _) => ResponseBuilder::new()
            .description("Prometheus text format")
            .content(
                "text/plain",
                Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
            ),
        ("/v1/events", _) => ResponseBuilder::new()
            .description("Server-Sent Events: items, queue, refetch, shutdown")
            .content(
                "text/event-stream",
                Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
            ),
        ("/openapi.json", _) => ResponseBuilder::new()
            .description("This document")
            .content("application/json", json(ObjectBuilder::new().into())),
        (_, Some(name)) => ResponseBuilder::new()
            .description("OK")
            .content("application/json", json(named(name))),
        (_, None) => ResponseBuilder::new().description("OK"),
    };
    op = op.response("200", answer.build());
    for (code, what) in errors(route) {
        op = op.response(
            code,
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    json(Ref::from_schema_name("ErrorBody").into()),
                )
                .build(),
        );
    }
    if route.role.is_some() {
        op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    op.build()
}

fn method(v: Verb) -> HttpMethod {
    match v {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for route in TABLE {
        paths.add_path_operation(route.path, vec![method(route.verb)], operation(route));
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("workq")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The workq engine over HTTP. Every error is {\"error\": {\"kind\", \
                     \"message\", …facts}}. Tokens: `workq token create NAME --role ROLE`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_every_schema_it_names_is_in_the_document() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for route in TABLE {
            let op = &doc["paths"][route.path][route.verb.as_str().to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is missing",
                route.verb.as_str(),
                route.path
            );
            assert_eq!(op["summary"], route.summary);
        }
        // Every $ref points at a schema that is there.
        let text = doc.to_string();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let name: String = text[i + 21..].chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "no schema {name}");
        }
    }
}
