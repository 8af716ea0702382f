//! The OpenAPI document, generated from the handlers and DTOs.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::{
    auth, conversations, discovery, health, keys, meta, presets, sessions, users, workspaces,
};

/// The API description. Regenerate the checked-in copy with
/// `UPDATE_OPENAPI=1 cargo test -p netherbrain-http --test openapi`.
#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "Netherbrain API",
        description = "RPC-style API of the Netherbrain agent service: GET for reads, POST for every write. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        health::health,
        meta::openapi_json,
        auth::login,
        auth::me,
        auth::change_password,
        auth::logout,
        users::create,
        users::list,
        users::get_user,
        users::update,
        users::deactivate,
        users::activate,
        users::reset_password,
        keys::create,
        keys::list,
        keys::revoke,
        presets::create,
        presets::list,
        presets::get_preset,
        presets::update,
        presets::delete,
        presets::import,
        presets::export,
        workspaces::create,
        workspaces::list,
        workspaces::get_workspace,
        workspaces::update,
        workspaces::delete,
        conversations::create,
        conversations::run,
        conversations::list,
        conversations::search,
        conversations::get_conversation,
        conversations::update,
        conversations::fork,
        conversations::interrupt,
        conversations::steer,
        conversations::events,
        conversations::turns,
        conversations::summarize_conversation,
        sessions::get_session,
        sessions::status,
        sessions::events,
        sessions::interrupt,
        sessions::steer,
        sessions::resume,
        discovery::toolsets,
        discovery::models,
    ),
    components(schemas(crate::dto::ErrorBody, crate::dto::ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Liveness"),
        (name = "meta", description = "API description"),
        (name = "auth", description = "Login, tokens, password"),
        (name = "users", description = "User administration (admins)"),
        (name = "keys", description = "API keys"),
        (name = "presets", description = "Agent configurations"),
        (name = "workspaces", description = "Workspaces and project directories"),
        (name = "conversations", description = "Conversations, runs and their event streams (SSE). \
            The WebSocket `GET /api/ws` (bearer header or `?token=`) multiplexes conversations: \
            client frames `subscribe`, `chat`, `interrupt`, `steer`, `unsubscribe`; server frames \
            `event`, `started`, `error`."),
        (name = "sessions", description = "Single runs: status, events, interrupt, steer, resume after approval"),
        (name = "discovery", description = "Tool sets and provider profiles presets can use"),
    )
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`nb_<prefix>_<secret>`), a login token, or the operator token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as pretty JSON with a trailing newline (the form
/// checked in as `docs/openapi.json`).
#[must_use]
pub fn openapi_json() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
