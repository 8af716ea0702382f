//! Request bodies checked against their schemas in the OpenAPI document,
//! so the server accepts exactly what the document describes: one
//! validator per request type, compiled on first use from the document's
//! component schemas.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use serde_json::{Value, json};

/// The longest part of a validation message that names the offending
/// value (a long text is cut, the message stays readable).
const MAX_MESSAGE_CHARS: usize = 300;

/// The document's component schemas, as the root every `$ref` resolves in.
static COMPONENTS: LazyLock<Value> = LazyLock::new(|| {
    let document = crate::openapi::openapi();
    json!({ "components": { "schemas": document["components"]["schemas"].clone() } })
});

type Validators = HashMap<String, Arc<jsonschema::Validator>>;

static VALIDATORS: LazyLock<RwLock<Validators>> = LazyLock::new(RwLock::default);

/// The validator of the component schema `name`.
///
/// # Errors
///
/// The component is missing or does not compile: a defect of the
/// document, which `tests::every_request_body_has_a_validator` catches.
fn validator(name: &str) -> Result<Arc<jsonschema::Validator>, String> {
    if let Ok(validators) = VALIDATORS.read()
        && let Some(validator) = validators.get(name)
    {
        return Ok(Arc::clone(validator));
    }
    if COMPONENTS["components"]["schemas"].get(name).is_none() {
        return Err(format!("no component schema `{name}`"));
    }
    let mut root = COMPONENTS.clone();
    root["$ref"] = Value::from(format!("#/components/schemas/{name}"));
    let validator = Arc::new(
        jsonschema::draft202012::new(&root).map_err(|e| format!("schema `{name}`: {e}"))?,
    );
    if let Ok(mut validators) = VALIDATORS.write() {
        validators.insert(name.to_owned(), Arc::clone(&validator));
    }
    Ok(validator)
}

/// Checks a request body against the component schema `name`.
///
/// A type without a component schema passes (serde still reads it).
///
/// # Errors
///
/// The first violation, as a message naming where it is
/// (`` `config.limits`: … ``).
pub(crate) fn check(name: &str, body: &Value) -> Result<(), String> {
    let validator = match validator(name) {
        Ok(validator) => validator,
        // A body type the document does not describe (a route not in the
        // document yet) is read by serde alone, as before; the test below
        // keeps every documented body checked.
        Err(defect) => {
            tracing::debug!(%defect, "request body read without a schema");
            return Ok(());
        }
    };
    let Some(error) = validator.iter_errors(body).next() else {
        return Ok(());
    };
    let path = error.instance_path().as_str().trim_start_matches('/').replace('/', ".");
    let mut message = error.to_string();
    if message.chars().count() > MAX_MESSAGE_CHARS {
        message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    let text = if path.is_empty() {
        format!("the body: {message}")
    } else {
        format!("`{path}`: {message}")
    };
    // The offending value may hold control characters (a NUL in a key):
    // the message shows them escaped, never raw.
    Err(text
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation's JSON request body names a component whose
    /// validator compiles.
    #[test]
    fn every_request_body_has_a_validator() {
        let document = crate::openapi::openapi();
        let mut names = Vec::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(reference) =
                    operation.pointer("/requestBody/content/application~1json/schema/$ref")
                {
                    let name = reference.as_str().unwrap().rsplit('/').next().unwrap();
                    names.push(name.to_owned());
                }
            }
        }
        assert!(names.len() > 10, "found only {names:?}");
        for name in names {
            validator(&name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn violations_name_their_place() {
        let err = check("SteerRequest", &json!({"text": ["x"]})).unwrap_err();
        assert!(err.starts_with("`text`:"), "{err}");
        let err = check("SteerRequest", &json!([1])).unwrap_err();
        assert!(err.starts_with("the body:"), "{err}");
        let err = check("SteerRequest", &json!({"text": "a\u{0}b"})).unwrap_err();
        assert!(err.starts_with("`text`:"), "{err}");
        assert!(!err.contains('\u{0}'), "{err}");
        // A NUL in a key (the path) is shown escaped too.
        let err = check("CreatePresetRequest", &json!({"name": "p", "config": {"profile": "x", "model": "m", "tool_policy": {"a\u{0}": "bad"}}})).unwrap_err();
        assert!(!err.contains('\u{0}'), "{err}");
        assert!(check("SteerRequest", &json!({"text": "go on", "extra": 1})).is_ok());
        let long = "x".repeat(20_000);
        let err = check("SteerRequest", &json!({"text": long})).unwrap_err();
        assert!(err.chars().count() < MAX_MESSAGE_CHARS + 20, "{err}");
    }
}
