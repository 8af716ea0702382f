//! The OpenAPI document, generated from the handlers and DTOs.
//!
//! Two generators meet here. utoipa derives the paths and the DTO schemas;
//! the wire types of `netherbrain-core` (messages, events, presets, usage,
//! tool decisions) derive `schemars::JsonSchema` instead, because core must
//! not depend on a server crate and because schemars reads their serde
//! attributes (internal tags, renames, defaults, skipped fields; a custom
//! serializer gets a `#[schemars(with = …)]` next to it). utoipa's
//! typed schema model cannot hold every keyword schemars emits (`const`,
//! `$ref` siblings, boolean schemas), so the two meet in the serialized
//! document ([`Document`]):
//!
//! 1. DTO fields that carry a core type name it with
//!    `#[schema(value_type = wire::Message)]` and friends: [`wire`] holds one
//!    marker type per schemars-described type, whose utoipa schema is a
//!    placeholder under the schemars name, so utoipa writes
//!    `{"$ref": "#/components/schemas/Message"}` where the field is.
//! 2. The schemars schemas, generated with their references pointing at
//!    `#/components/schemas/…`, take the placeholders' places in
//!    `components.schemas`.
//! 3. Every `text/event-stream` response names the [`SSE_EVENT`] schema: one
//!    SSE event whose `data` is an `AgentEvent` and whose `id` its `seq`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use netherbrain_core::schemars::generate::{SchemaGenerator, SchemaSettings};
use netherbrain_core::schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};

use crate::routes::{
    auth, conversations, discovery, gateway, health, keys, memories, meta, presets, providers,
    sessions, tasks, usage, users, workspaces,
};

/// The part of the API description utoipa derives from the handlers and
/// DTOs. Its core-type schemas are placeholders; [`openapi`] is the whole
/// document. Regenerate the checked-in copy with
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
        memories::list,
        memories::export,
        memories::create,
        memories::update,
        memories::delete,
        tasks::list,
        tasks::create,
        tasks::show,
        tasks::update,
        tasks::delete,
        tasks::run,
        usage::daily,
        presets::create,
        presets::list,
        presets::get_preset,
        presets::update,
        presets::delete,
        presets::import,
        presets::export,
        providers::list,
        providers::create,
        providers::update,
        providers::delete,
        providers::test,
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
        gateway::approve_pairing,
    ),
    components(schemas(crate::dto::ErrorBody, crate::dto::ErrorDetail)),
    modifiers(
        &BearerAuth,
        &TypedEventStreams,
        &CommonResponses,
        &FormatPatterns,
        &JsonQueryParameters
    ),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Liveness"),
        (name = "meta", description = "API description"),
        (name = "auth", description = "Login, tokens, password"),
        (name = "users", description = "User administration (admins)"),
        (name = "keys", description = "API keys"),
        (name = "memories", description = "The caller's long-term memories: listed, edited, deleted, exported"),
        (name = "usage", description = "Tokens spent per day, per preset, and the daily token budget"),
        (name = "tasks", description = "The caller's scheduled tasks: a preset and a prompt run on a cron schedule or an interval"),
        (name = "presets", description = "Agent configurations"),
        (name = "providers", description = "Provider profiles managed from Settings (admins); config file profiles are read-only"),
        (name = "workspaces", description = "Workspaces and project directories"),
        (name = "conversations", description = "Conversations, runs and their event streams (SSE). \
            The WebSocket `GET /api/ws` (bearer header or `?token=`) multiplexes conversations: \
            client frames `subscribe`, `chat`, `interrupt`, `steer`, `unsubscribe`; server frames \
            `event`, `started`, `error`."),
        (name = "sessions", description = "Single runs: status, events, interrupt, steer, resume after approval"),
        (name = "discovery", description = "Tool sets and provider profiles presets can use"),
        (name = "gateway", description = "Chat gateway administration (admins): pairing codes"),
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

/// Declares the schemars-described types: those DTO fields reference get a
/// marker in [`wire`] for `#[schema(value_type = …)]`; the others are only
/// published. [`wire_schemas`] generates them all.
macro_rules! wire_types {
    (
        referenced { $($name:ident => $ty:ty),* $(,)? }
        published { $($other:ty),* $(,)? }
    ) => {
        /// Marker types naming the schemars-generated component schemas, for
        /// `#[schema(value_type = …)]` on DTO fields. Each one's utoipa schema
        /// is a placeholder that the schemars schema replaces.
        pub(crate) mod wire {
            use super::*;
            $(
                #[doc = concat!("The `", stringify!($name), "` component schema.")]
                #[derive(Debug)]
                pub(crate) struct $name;

                impl utoipa::PartialSchema for $name {
                    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                        utoipa::openapi::schema::ObjectBuilder::new()
                            .description(Some(PLACEHOLDER))
                            .into()
                    }
                }

                impl utoipa::ToSchema for $name {
                    fn name() -> Cow<'static, str> {
                        <$ty as JsonSchema>::schema_name()
                    }
                }
            )*
        }

        /// The schemars schemas of the wire types and of everything they
        /// reference, by component name, with references pointing at
        /// `#/components/schemas/…`.
        fn wire_schemas() -> Map<String, Value> {
            let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            }));
            // `json_schema`, not `subschema_for`: types schemars inlines
            // (transparent ones like `UsageByModel`) get a component too.
            let named: Vec<(Cow<'static, str>, Schema)> = vec![
                $((<$ty as JsonSchema>::schema_name(), <$ty as JsonSchema>::json_schema(&mut generator)),)*
                $((<$other as JsonSchema>::schema_name(), <$other as JsonSchema>::json_schema(&mut generator)),)*
            ];
            let mut schemas = generator.take_definitions(false);
            for (name, schema) in named {
                schemas.insert(name.into_owned(), schema.to_value());
            }
            schemas.values_mut().for_each(no_nul_strings);
            if let Some(input) = schemas.get_mut("RunInput") {
                run_input_says_something(input);
            }
            schemas.extend(json_schemas());
            schemas
        }
    };
}

wire_types! {
    referenced {
        Message => netherbrain_core::Message,
        PresetConfig => netherbrain_core::PresetConfig,
        RunInput => crate::dto::RunInput,
        SessionStatus => netherbrain_core::SessionStatus,
        ToolCall => netherbrain_core::ToolCall,
        ToolDecision => netherbrain_core::agent::ToolDecision,
        UsageByModel => netherbrain_core::UsageByModel,
    }
    // What the event streams carry (`AgentEvent` through `ServerSentEvent`;
    // `EventEnvelope` is the stored form the typed client yields).
    // The values of the `subagent_started`, `subagent_completed` and
    // `memories_recalled` CUSTOM events.
    published {
        netherbrain_core::AgentEvent,
        netherbrain_core::EventEnvelope,
        netherbrain_core::SubagentStarted,
        netherbrain_core::SubagentCompleted,
        netherbrain_core::memory::MemoriesRecalled,
    }
}

/// Gives every unconstrained string of a schemars schema (no `pattern`,
/// `format`, `enum` or `const`) [`NO_NUL_PATTERN`], as [`FormatPatterns`]
/// does for utoipa's; map keys get it too, and an arbitrary JSON value
/// (`true`, from `serde_json::Value`) becomes `MetadataValue`, a JSON value
/// without NUL — what the stores keep.
fn no_nul_strings(value: &mut Value) {
    let any_value = || json!({ "$ref": "#/components/schemas/MetadataValue" });
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for property in properties.values_mut() {
                    if *property == Value::Bool(true) {
                        *property = any_value();
                    }
                }
            }
            for key in ["items", "additionalProperties"] {
                if map.get(key) == Some(&Value::Bool(true)) {
                    map.insert(key.to_owned(), any_value());
                }
            }
            if map.contains_key("additionalProperties") && !map.contains_key("propertyNames") {
                map.insert("propertyNames".to_owned(), json!({ "pattern": NO_NUL_PATTERN }));
            }
            let is_string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            let constrained = ["pattern", "format", "enum", "const"]
                .iter()
                .any(|k| map.contains_key(*k));
            if is_string && !constrained {
                map.insert("pattern".to_owned(), Value::from(NO_NUL_PATTERN));
            }
            // The range of a Rust integer type, which schemars only names.
            let range = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((Value::from(0), Value::from(u8::MAX))),
                Some("uint16") => Some((Value::from(0), Value::from(u16::MAX))),
                Some("uint32") => Some((Value::from(0), Value::from(u32::MAX))),
                Some("uint64" | "uint") => Some((Value::from(0), Value::from(u64::MAX))),
                Some("int32") => Some((Value::from(i32::MIN), Value::from(i32::MAX))),
                Some("int64" | "int") => Some((Value::from(i64::MIN), Value::from(i64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(no_nul_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(no_nul_strings),
        _ => {}
    }
}

/// Hand-written component schemas that neither generator can express:
/// JSON objects whose keys and strings, at any depth, hold no NUL (what
/// the metadata fields accept). Each marker's utoipa schema is a
/// placeholder that [`json_schemas`] fills, like the `wire` markers.
pub(crate) mod json {
    use super::*;

    macro_rules! placeholder {
        ($name:ident) => {
            #[doc = concat!("The `", stringify!($name), "` component schema.")]
            #[derive(Debug)]
            pub(crate) struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .description(Some(PLACEHOLDER))
                        .into()
                }
            }

            impl utoipa::ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        };
    }

    placeholder!(Metadata);
    placeholder!(ConversationMetadata);
}

/// The schemas of the [`json`] markers and what they reference.
fn json_schemas() -> Map<String, Value> {
    let no_nul = json!({ "pattern": NO_NUL_PATTERN });
    let value = json!({ "$ref": "#/components/schemas/MetadataValue" });
    let mut schemas = Map::new();
    schemas.insert(
        "Metadata".to_owned(),
        json!({
            "type": "object",
            "description": "Free-form metadata: a JSON object of at most 64 KiB (as JSON text) \
                whose keys and strings, at any depth, hold no NUL character.",
            "propertyNames": no_nul,
            "additionalProperties": value,
        }),
    );
    schemas.insert(
        "MetadataValue".to_owned(),
        json!({
            "description": "A JSON value without NUL characters in its strings and keys.",
            "anyOf": [
                { "type": "string", "pattern": NO_NUL_PATTERN },
                { "type": "number" },
                { "type": "boolean" },
                { "type": "null" },
                { "type": "array", "items": value },
                { "type": "object", "propertyNames": no_nul, "additionalProperties": value },
            ]
        }),
    );
    schemas.insert(
        "ConversationMetadata".to_owned(),
        json!({
            "description": "Conversation metadata: `Metadata` in which the keys the server owns \
                (`forked_from`) may only be `null` (which removes nothing the server keeps).",
            "allOf": [
                { "$ref": "#/components/schemas/Metadata" },
                { "properties": { "forked_from": { "type": "null" } } }
            ]
        }),
    );
    schemas
}

/// A run's input must say something (as the conversation service checks):
/// text that is not blank, or messages of which one has a non-text part
/// or non-blank text.
fn run_input_says_something(schema: &mut Value) {
    let Some(alternatives) = schema.get_mut("anyOf").and_then(Value::as_array_mut) else {
        return;
    };
    for alternative in alternatives {
        match alternative.get("type").and_then(Value::as_str) {
            Some("string") => {
                alternative["pattern"] = Value::from(NOT_BLANK_PATTERN);
                alternative["description"] = Value::from("One user message (not blank).");
            }
            Some("array") => {
                alternative["contains"] = json!({
                    "type": "object",
                    "required": ["content"],
                    "properties": { "content": { "contains": { "anyOf": [
                        { "properties": { "type": { "not": { "const": "text" } } } },
                        { "properties": { "text": { "pattern": "\\S" } } }
                    ] } } }
                });
                alternative["description"] = Value::from(
                    "Messages, in order; at least one has a non-text part or non-blank text.",
                );
            }
            _ => {}
        }
    }
}

/// The pattern of a text that is not blank and holds no NUL.
pub(crate) const NOT_BLANK_PATTERN: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";

/// The description of a `wire` marker's utoipa schema, which the schemars
/// schema of the same name replaces.
const PLACEHOLDER: &str = "placeholder for a schemars schema";

/// The component name of one server-sent event of a run.
const SSE_EVENT: &str = "ServerSentEvent";

/// The schema of one event on a `text/event-stream` response: the fields
/// of an SSE event as `crate::sse` writes them.
fn sse_event_schema() -> Value {
    json!({
        "type": "object",
        "description": "One server-sent event of a run. The stream is `text/event-stream`; \
            each event has these fields, and `data` is the JSON text of an `AgentEvent`. \
            Resume after an event by sending its `id` as `Last-Event-ID`.",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The event's `seq` within its session (decimal), as in `EventEnvelope.seq`."
            },
            "event": {
                "type": "string",
                "description": "The AG-UI type name, the same as `data.type`."
            },
            "data": {
                "$ref": "#/components/schemas/AgentEvent",
                "description": "The event."
            }
        }
    })
}

/// Rustdoc markup in a doc comment that reads badly in a schema
/// description: fenced code blocks (the doc examples) are dropped and
/// intra-doc links (``[`Role::Tool`]``, ``[`x`](crate::y)``) become code spans.
fn plain_description(doc: &str) -> String {
    let mut kept = Vec::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            kept.push(line);
        }
    }
    let text = kept.join("\n");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("[`") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find("`]") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        out.push_str(&after[..=end]);
        rest = &after[end + 2..];
        if rest.starts_with('(')
            && let Some(close) = rest.find(')')
        {
            rest = &rest[close + 1..];
        }
    }
    out.push_str(rest);
    out.trim_end().to_owned()
}

/// Applies [`plain_description`] to every `description` in a schema.
fn clean_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if key == "description"
                    && let Value::String(text) = item
                {
                    *text = plain_description(text);
                } else {
                    clean_descriptions(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_descriptions),
        _ => {}
    }
}

/// Points every `text/event-stream` response at the [`SSE_EVENT`] schema
/// (the handlers declare them as `body = String`).
#[derive(Debug)]
struct TypedEventStreams;

impl Modify for TypedEventStreams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response
                        && let Some(content) = response.content.get_mut("text/event-stream")
                    {
                        content.schema = Some(Ref::from_schema_name(SSE_EVENT).into());
                    }
                }
            }
        }
    }
}

/// The error responses every operation can give for what the extractors
/// and the auth layer refuse before a handler runs, so each operation lists
/// every status it can return:
///
/// - `400` for a malformed path, query, header or JSON body,
/// - `401` for a missing or bad token (operations that need one),
/// - `404` for an id in the path that names nothing the caller can see,
/// - `413` for a body over the limit, `415` for a body without
///   `Content-Type: application/json` (or TOML, where that is the body),
///   `422` for a well-formed body that fails validation.
///
/// Each is a shared `components.responses` entry with the `ErrorBody`
/// schema; an operation that already documents a status keeps its own.
#[derive(Debug)]
struct CommonResponses;

impl CommonResponses {
    const RESPONSES: [(&'static str, &'static str, &'static str); 6] = [
        ("400", "BadRequest", "Malformed path, query, header or body"),
        ("401", "Unauthorized", "Missing, unknown, expired or revoked token"),
        ("404", "NotFound", "No such resource visible to the caller"),
        ("413", "PayloadTooLarge", "The body is over the size limit"),
        ("415", "UnsupportedMediaType", "The body's `Content-Type` is not the one required"),
        ("422", "Unprocessable", "The body is well-formed but fails validation"),
    ];

    fn statuses(operation: &utoipa::openapi::path::Operation) -> Vec<&'static str> {
        use utoipa::openapi::path::ParameterIn;
        let params = operation.parameters.as_deref().unwrap_or_default();
        let has_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
        let has_body = operation.request_body.is_some();
        let public = operation.security.as_ref().is_some_and(|requirements| {
            requirements
                .iter()
                .any(|r| serde_json::to_value(r).is_ok_and(|v| v == json!({})))
        });
        let mut statuses = Vec::new();
        if has_path || has_body || !params.is_empty() {
            statuses.push("400");
        }
        if !public {
            statuses.push("401");
        }
        if has_path {
            statuses.push("404");
        }
        if has_body {
            statuses.extend(["413", "415", "422"]);
        }
        statuses
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description) in Self::RESPONSES {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for status in Self::statuses(operation) {
                    let Some((_, name, _)) = Self::RESPONSES.iter().find(|(s, _, _)| *s == status)
                    else {
                        continue;
                    };
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            }
        }
    }
}

/// The pattern of a UUID as the server parses one (hyphenated).
pub(crate) const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// The pattern of an RFC 3339 timestamp as the server parses one (days up
/// to 28 so that every string the pattern admits is a real date).
pub(crate) const DATE_TIME_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$";

/// The pattern of a string without NUL characters, which the API refuses
/// in every request body (neither store can keep one).
pub(crate) const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// Gives every `format: uuid` and `format: date-time` string a `pattern`
/// (formats are annotations in OpenAPI 3.1, so a client or a test generator
/// may ignore them, but a pattern is a constraint everyone checks), and
/// every other unconstrained string [`NO_NUL_PATTERN`].
#[derive(Debug)]
struct FormatPatterns;

impl FormatPatterns {
    fn schema(schema: &mut RefOr<utoipa::openapi::schema::Schema>) {
        use utoipa::openapi::schema::{
            ArrayItems, KnownFormat, Schema, SchemaFormat, SchemaType, Type,
        };
        let RefOr::T(schema) = schema else {
            return;
        };
        match schema {
            Schema::Object(object) => {
                let is_string = match &object.schema_type {
                    SchemaType::Type(Type::String) => true,
                    SchemaType::Array(types) => types.contains(&Type::String),
                    _ => false,
                };
                let pattern = match &object.format {
                    Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)) => Some(UUID_PATTERN),
                    Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)) => {
                        Some(DATE_TIME_PATTERN)
                    }
                    None if is_string && object.enum_values.is_none() => Some(NO_NUL_PATTERN),
                    _ => None,
                };
                if let Some(pattern) = pattern
                    && object.pattern.is_none()
                {
                    object.pattern = Some(pattern.to_owned());
                }
                object.properties.values_mut().for_each(Self::schema);
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::schema(items);
                }
            }
            Schema::OneOf(one) => one.items.iter_mut().for_each(Self::schema),
            Schema::AllOf(all) => all.items.iter_mut().for_each(Self::schema),
            Schema::AnyOf(any) => any.items.iter_mut().for_each(Self::schema),
            _ => {}
        }
    }
}

impl FormatPatterns {
    /// A parameter is absent or a string, never `null`: utoipa writes an
    /// optional one as `["string", "null"]`, which invites a client (or a
    /// test generator) to send the text `null`.
    fn not_null(schema: &mut RefOr<utoipa::openapi::schema::Schema>) {
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        if let RefOr::T(Schema::Object(object)) = schema
            && let SchemaType::Array(types) = &mut object.schema_type
        {
            types.retain(|t| *t != Type::Null);
            if let [only] = types.as_slice() {
                object.schema_type = SchemaType::Type(only.clone());
            }
        }
    }
}

impl Modify for FormatPatterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.schemas.values_mut().for_each(Self::schema);
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter.schema.as_mut() {
                        Self::schema(schema);
                        Self::not_null(schema);
                    }
                }
            }
        }
    }
}

/// Query parameters whose value is JSON text: described with `content`
/// (`application/json` and the value's schema) in place of a string
/// schema, which utoipa's parameters cannot express.
#[derive(Debug)]
struct JsonQueryParameters;

impl JsonQueryParameters {
    /// `(path, parameter, component schema of its value)`.
    const PARAMETERS: [(&'static str, &'static str, &'static str); 1] =
        [("/api/conversations/list", "metadata", "Metadata")];
}

impl Modify for JsonQueryParameters {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, name, schema) in Self::PARAMETERS {
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                continue;
            };
            for parameter in item.get.iter_mut().flat_map(|o| o.parameters.iter_mut().flatten()) {
                if parameter.name != name {
                    continue;
                }
                parameter.schema = None;
                parameter
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert(
                        "content".to_owned(),
                        json!({ "application/json": {
                            "schema": { "$ref": format!("#/components/schemas/{schema}") }
                        }}),
                    );
            }
        }
    }
}

/// The whole OpenAPI document: utoipa's [`ApiDoc`] with the schemars
/// schemas in `components.schemas`.
///
/// It serializes like utoipa's `OpenApi` (same keys, same order, so the
/// checked-in file reads as before) except that a component schema named
/// after a wire type is the schemars one. A `serde_json::Value` would sort
/// every object's keys, hence this type.
struct Document {
    api: utoipa::openapi::OpenApi,
    wire: Map<String, Value>,
}

impl Document {
    fn new() -> Self {
        let mut wire = wire_schemas();
        wire.values_mut().for_each(clean_descriptions);
        wire.insert(SSE_EVENT.to_owned(), sse_event_schema());
        let api = ApiDoc::openapi();
        for name in CLOSED_VARIANTS {
            if let Some(mut schema) = api
                .components
                .as_ref()
                .and_then(|c| c.schemas.get(*name))
                .and_then(|s| serde_json::to_value(s).ok())
            {
                close_variants(&mut schema);
                wire.insert((*name).to_owned(), schema);
            }
        }
        Self { api, wire }
    }
}

/// Tagged request enums whose variants refuse unknown fields
/// (`#[serde(deny_unknown_fields)]`), which utoipa does not state for enum
/// variants.
const CLOSED_VARIANTS: &[&str] = &["TaskScheduleView"];

/// Adds `additionalProperties: false` to every object variant of a `oneOf`.
fn close_variants(schema: &mut Value) {
    if let Some(Value::Array(variants)) = schema.get_mut("oneOf") {
        for variant in variants {
            if let Value::Object(map) = variant
                && map.get("type") == Some(&Value::String("object".into()))
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    }
}

/// A component schema from either generator.
#[derive(Serialize)]
#[serde(untagged)]
enum ComponentSchema<'a> {
    Utoipa(&'a RefOr<utoipa::openapi::schema::Schema>),
    Wire(&'a Value),
}

/// utoipa 5's `OpenApi` field by field, with `components` replaced.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DocumentOut<'a> {
    openapi: &'a utoipa::openapi::OpenApiVersion,
    info: &'a utoipa::openapi::Info,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers: Option<&'a Vec<utoipa::openapi::Server>>,
    paths: &'a utoipa::openapi::Paths,
    components: ComponentsOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security: Option<&'a Vec<utoipa::openapi::SecurityRequirement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a Vec<utoipa::openapi::Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_docs: Option<&'a utoipa::openapi::ExternalDocs>,
    #[serde(rename = "$schema", skip_serializing_if = "str::is_empty")]
    schema: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    extensions: Option<&'a utoipa::openapi::extensions::Extensions>,
}

/// utoipa 5's `Components` field by field, with the merged schemas.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentsOut<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    schemas: BTreeMap<&'a str, ComponentSchema<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses: Option<&'a BTreeMap<String, RefOr<utoipa::openapi::Response>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_schemes: Option<&'a BTreeMap<String, SecurityScheme>>,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    extensions: Option<&'a utoipa::openapi::extensions::Extensions>,
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let api = &self.api;
        let components = api.components.as_ref();
        let mut schemas: BTreeMap<&str, ComponentSchema<'_>> = components
            .into_iter()
            .flat_map(|c| &c.schemas)
            .map(|(name, schema)| (name.as_str(), ComponentSchema::Utoipa(schema)))
            .collect();
        schemas.extend(
            self.wire
                .iter()
                .map(|(name, schema)| (name.as_str(), ComponentSchema::Wire(schema))),
        );
        DocumentOut {
            openapi: &api.openapi,
            info: &api.info,
            servers: api.servers.as_ref(),
            paths: &api.paths,
            components: ComponentsOut {
                schemas,
                responses: components.map(|c| &c.responses).filter(|r| !r.is_empty()),
                security_schemes: components
                    .map(|c| &c.security_schemes)
                    .filter(|s| !s.is_empty()),
                extensions: components.and_then(|c| c.extensions.as_ref()),
            },
            security: api.security.as_ref(),
            tags: api.tags.as_ref(),
            external_docs: api.external_docs.as_ref(),
            schema: &api.schema,
            extensions: api.extensions.as_ref(),
        }
        .serialize(serializer)
    }
}

/// The OpenAPI document (see the module docs for how it is assembled).
#[must_use]
pub fn openapi() -> Value {
    // Serializing into a `Value` cannot fail: every map key is a string.
    serde_json::to_value(Document::new()).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

/// The OpenAPI document as pretty JSON with a trailing newline (the form
/// checked in as `docs/openapi.json`), keys in utoipa's order.
#[must_use]
pub fn openapi_json() -> String {
    let mut text = serde_json::to_string_pretty(&Document::new())
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Document` mirrors utoipa's serialization: without wire schemas it
    /// writes exactly what utoipa writes, in the same key order.
    #[test]
    fn document_serializes_like_utoipa() {
        let document = Document {
            api: ApiDoc::openapi(),
            wire: Map::new(),
        };
        let ours = serde_json::to_string_pretty(&document).unwrap();
        let utoipa = ApiDoc::openapi().to_pretty_json().unwrap();
        assert!(
            ours == utoipa,
            "Document no longer mirrors utoipa's OpenApi"
        );
    }

    /// A schemars schema only replaces a utoipa component that is one of
    /// the `wire` placeholders, never a DTO of the same name.
    #[test]
    fn wire_schemas_replace_only_placeholders() {
        let api = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let utoipa = api["components"]["schemas"].as_object().unwrap();
        for name in wire_schemas().keys() {
            if let Some(existing) = utoipa.get(name) {
                assert_eq!(
                    existing,
                    &json!({"type": "object", "description": PLACEHOLDER}),
                    "the schemars schema `{name}` collides with a DTO schema"
                );
            }
        }
        for (name, schema) in utoipa {
            if schema["description"] == PLACEHOLDER {
                assert!(
                    wire_schemas().contains_key(name),
                    "placeholder `{name}` is never filled"
                );
            }
        }
    }

    #[test]
    fn descriptions_lose_rustdoc_markup() {
        let check = |doc: &str, expect: &str| assert_eq!(plain_description(doc), expect);
        check("One event.\n\n```\nlet x = 1;\n```", "One event.");
        check("Always [`Role::Tool`].", "Always `Role::Tool`.");
        check(
            "Before the last [`Summary`](crate::ContentPart::Summary) on.",
            "Before the last `Summary` on.",
        );
        check("A [`broken link", "A [`broken link");
        check("An array `[1]` stays.", "An array `[1]` stays.");
    }
}
