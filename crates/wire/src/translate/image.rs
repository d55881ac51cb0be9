//! Images between the two APIs: OpenAI's `image_url` content part (an
//! `http(s)` URL, or a `data:` URL carrying base64) ⇄ Anthropic's `image`
//! block (a `url` source, or a `base64` source with its media type).

use serde_json::{Value, json};

/// An OpenAI `image_url` part as an Anthropic `image` block; `None` when the
/// part is not one or its URL is neither `http(s)` nor base64 `data:`.
pub(super) fn to_anthropic(part: &Value) -> Option<Value> {
    if part["type"] != "image_url" {
        return None;
    }
    let url = part["image_url"]["url"].as_str().or_else(|| part["image_url"].as_str())?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,")?;
        return Some(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    (url.starts_with("https://") || url.starts_with("http://"))
        .then(|| json!({"type": "image", "source": {"type": "url", "url": url}}))
}

/// An Anthropic `image` block as an OpenAI `image_url` part; `None` when the
/// block is not one or its source is of another kind (e.g. a file id).
pub(super) fn to_openai(block: &Value) -> Option<Value> {
    if block["type"] != "image" {
        return None;
    }
    let source = &block["source"];
    let url = match source["type"].as_str()? {
        "base64" => format!("data:{};base64,{}", source["media_type"].as_str()?, source["data"].as_str()?),
        "url" => source["url"].as_str()?.to_owned(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_base64_sources_carry_the_same_bytes_both_ways() {
        let part =
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}});
        let block = to_anthropic(&part).unwrap();
        assert_eq!(
            block,
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(to_openai(&block).unwrap()["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    }

    #[test]
    fn web_urls_stay_urls_and_the_rest_is_refused() {
        let part = json!({"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}});
        let block = to_anthropic(&part).unwrap();
        assert_eq!(block["source"], json!({"type": "url", "url": "https://example.com/a.jpg"}));
        assert_eq!(to_openai(&block).unwrap()["image_url"]["url"], "https://example.com/a.jpg");
        assert_eq!(to_anthropic(&json!({"type": "image_url", "image_url": {"url": "ftp://x/y"}})), None);
        assert_eq!(to_anthropic(&json!({"type": "input_audio"})), None);
        assert_eq!(to_openai(&json!({"type": "image", "source": {"type": "file", "file_id": "f"}})), None);
    }
}
