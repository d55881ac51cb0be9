//! `GET /v1/models` and `GET /v1/models/{id}`: the client-facing model names
//! (routes and aliases) in the asking client's API format. A request
//! carrying `anthropic-version` gets Anthropic's shapes, any other OpenAI's.

use bytes::Bytes;
use serde_json::json;

/// Both renderings of the list, built once when the gateway starts.
pub(crate) struct ModelsList {
    names: Vec<String>,
    openai: Bytes,
    anthropic: Bytes,
}

fn openai_model(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"})
}

fn anthropic_model(id: &str) -> serde_json::Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
}

impl ModelsList {
    /// The list of `names` (sorted here; `*` left out).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        let mut names: Vec<&String> = names.into_iter().filter(|m| *m != "*").collect();
        names.sort();
        names.dedup();
        let openai = json!({
            "object": "list",
            "data": names.iter().map(|id| openai_model(id)).collect::<Vec<_>>(),
        });
        let anthropic = json!({
            "data": names.iter().map(|id| anthropic_model(id)).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        });
        ModelsList {
            names: names.into_iter().cloned().collect(),
            openai: Bytes::from(openai.to_string()),
            anthropic: Bytes::from(anthropic.to_string()),
        }
    }

    /// One model for a client of `api`; `None` when no route has that name.
    pub fn one(&self, api: switchyard_wire::Api, id: &str) -> Option<Bytes> {
        let id = self.names.iter().find(|n| *n == id)?;
        let model = match api {
            switchyard_wire::Api::OpenAi => openai_model(id),
            switchyard_wire::Api::Anthropic => anthropic_model(id),
        };
        Some(Bytes::from(model.to_string()))
    }

    /// The body for a client of `api`.
    pub fn body(&self, api: switchyard_wire::Api) -> Bytes {
        match api {
            switchyard_wire::Api::OpenAi => self.openai.clone(),
            switchyard_wire::Api::Anthropic => self.anthropic.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_list_the_same_sorted_names() {
        let names = ["smart".to_owned(), "*".to_owned(), "claude-x".to_owned()];
        let list = ModelsList::new(&names);
        let openai: serde_json::Value = serde_json::from_slice(&list.body(switchyard_wire::Api::OpenAi)).unwrap();
        assert_eq!(openai["data"][0]["id"], "claude-x");
        assert_eq!(openai["data"].as_array().unwrap().len(), 2);
        let anthropic: serde_json::Value = serde_json::from_slice(&list.body(switchyard_wire::Api::Anthropic)).unwrap();
        assert_eq!(anthropic["data"][1]["id"], "smart");
        assert_eq!(anthropic["data"][1]["type"], "model");
        assert_eq!((anthropic["first_id"].as_str(), anthropic["has_more"].as_bool()), (Some("claude-x"), Some(false)));
        let one: serde_json::Value =
            serde_json::from_slice(&list.one(switchyard_wire::Api::Anthropic, "smart").unwrap()).unwrap();
        assert_eq!((one["type"].as_str(), one["id"].as_str()), (Some("model"), Some("smart")));
        assert_eq!(list.one(switchyard_wire::Api::OpenAi, "*"), None);
        assert_eq!(list.one(switchyard_wire::Api::OpenAi, "nope"), None);
    }
}
