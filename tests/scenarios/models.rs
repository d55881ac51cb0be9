//! What clients can ask for: `GET /v1/models` lists every route's name and
//! alias, and an alias is served by its route, the answer naming the model
//! that actually answered.

use crate::*;

#[tokio::test]
async fn models_lists_routes_and_aliases_and_an_alias_is_served_by_its_route() {
    init_tracing();
    let openai = MockProvider::start("openai").await;
    let local = MockProvider::start("local").await;
    let toml = ConfigBuilder::new()
        .provider("openai", &openai.url())
        .provider("local", &local.url())
        .route("gpt-4o-mini", None, 5000, &["openai"])
        .route("llama3.2", None, 5000, &["local"])
        .build(std::path::Path::new("policies"))
        .replace(
            "[[routes]]\nmodel = \"gpt-4o-mini\"\n",
            "[[routes]]\nmodel = \"gpt-4o-mini\"\naliases = [\"smart\"]\n",
        );
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start_in(&toml, dir.path(), |_| None).await;

    let listed = get(&gw.url(), "/v1/models").await;
    assert_eq!(listed.status, 200);
    let body = listed.json();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "llama3.2", "smart"]);
    assert!(body["data"].as_array().unwrap().iter().all(|m| m["object"] == "model"));

    let r = post_chat(&gw.url(), "smart").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "openai"), "{}", r.body);
    assert_eq!(r.json()["model"], "gpt-4o-mini", "the answer names the model that answered");
    assert_eq!(openai.seen()[0].model, "gpt-4o-mini", "the provider is asked for its own model name");
}
