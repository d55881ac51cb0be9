//! Provider keys reach the provider and nothing else.

use crate::*;

#[tokio::test]
async fn provider_key_is_sent_upstream_and_never_echoed_to_the_client() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let config = ConfigBuilder::new()
        .provider_with_key("primary", &primary.url(), "PRIMARY_KEY")
        .provider_with_key("backup", &backup.url(), "BACKUP_KEY")
        .route("m", None, 5000, &["primary", "backup"]);
    let env = |var: &str| match var {
        "PRIMARY_KEY" => Some("sk-primary-secret".to_string()),
        "BACKUP_KEY" => Some("sk-backup-secret".to_string()),
        _ => None,
    };
    let gw = TestGateway::start_with_env(&config, env).await;
    // A client header that looks like a credential is not forwarded either.
    let r =
        post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("authorization", "Bearer client-token")])
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(primary.seen()[0].authorization.as_deref(), Some("Bearer sk-primary-secret"));
    assert_eq!(backup.seen()[0].authorization.as_deref(), Some("Bearer sk-backup-secret"));
    let everything = format!("{:?}{}", r.headers, r.body);
    assert!(!everything.contains("sk-"), "a key leaked to the client: {everything}");
}

#[tokio::test]
async fn an_anthropic_clients_key_goes_nowhere_and_each_provider_gets_its_own_credential() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::anthropic_overloaded()]).await;
    let local = MockProvider::start("local").await;
    let config = ConfigBuilder::new()
        .anthropic_provider_with_key("claude", &claude.url(), "ANTHROPIC_KEY")
        .provider("local", &local.url())
        .route("m", None, 5000, &["claude", "local"]);
    let env = |var: &str| (var == "ANTHROPIC_KEY").then(|| "sk-ant-provider-secret".to_string());
    let gw = TestGateway::start_with_env(&config, env).await;
    let r = post_messages(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "local"), "{}", r.body);
    // Claude gets the configured key as x-api-key, not the client's.
    let seen = &claude.seen()[0];
    assert_eq!(seen.headers["x-api-key"], "sk-ant-provider-secret");
    assert!(seen.authorization.is_none());
    // The keyless local model gets no credential at all.
    let seen = &local.seen()[0];
    assert!(seen.authorization.is_none() && !seen.headers.contains_key("x-api-key"), "{:?}", seen.headers);
    let everything = format!("{:?}{}{}{}", r.headers, r.body, claude.seen()[0].body, local.seen()[0].body);
    assert!(!everything.contains("sk-ant-client-secret"), "the client's key travelled: {everything}");
    assert!(!format!("{:?}{}", r.headers, r.body).contains("provider-secret"), "a key leaked to the client");
}

#[tokio::test]
async fn missing_key_variable_refuses_to_start_with_a_clear_error() {
    let provider = MockProvider::start("p").await;
    let config =
        ConfigBuilder::new().provider_with_key("p", &provider.url(), "NOT_SET_ANYWHERE").route("m", None, 5000, &["p"]);
    let dir = tempfile::tempdir().unwrap();
    let mut parsed = switchyard_config::from_str(&config.build(&dir.path().join("policies")), "t.toml").unwrap();
    parsed.base_dir = dir.path().to_owned();
    let err = switchyard_core::Gateway::new(&parsed, |_| None).await.unwrap_err().to_string();
    assert_eq!(err, "provider \"p\": environment variable NOT_SET_ANYWHERE (api_key_env) is not set");
}

#[tokio::test]
async fn a_provider_that_echoes_its_key_in_an_error_has_the_key_scrubbed_before_the_client_sees_it() {
    init_tracing();
    let echo = r#"{"error":{"message":"Incorrect API key provided: sk-primary-secret. You can find your API key at your dashboard.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let primary = MockProvider::start_cycling(
        "primary",
        vec![Reply::Status { status: 401, headers: Vec::new(), body: echo.into() }],
    )
    .await;
    let config = ConfigBuilder::new().provider_with_key("primary", &primary.url(), "PRIMARY_KEY").route(
        "m",
        None,
        5000,
        &["primary"],
    );
    let env = |var: &str| (var == "PRIMARY_KEY").then(|| "sk-primary-secret".to_string());
    let gw = TestGateway::start_with_env(&config, env).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("sk-primary-secret"), "the key leaked: {}", r.body);
    assert!(r.body.contains("Incorrect API key provided: [redacted]."), "{}", r.body);
    // The same through translation, for an Anthropic client.
    let r = post_messages(&gw.url(), "m").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("sk-primary-secret") && r.body.contains("[redacted]"), "{}", r.body);
}

#[tokio::test]
async fn no_key_or_webhook_url_reaches_metrics_the_access_log_traces_admin_answers_the_status_page_or_webhooks() {
    init_tracing();
    const KEY: &str = "sk-primary-secret-7f3a9c";
    const HOOK_SECRET: &str = "T0KEN-hook-secret-41d2";
    let hook = Receiver::start(0).await;
    let collector = Receiver::start(0).await;
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(500)]).await;
    let backup = MockProvider::start("backup").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = ConfigBuilder::new()
        .top("[[webhooks]]\nurl_env = \"HOOK_URL\"\nevents = [\"breaker_opened\", \"policy_loaded\"]")
        .top(&format!("[traces]\notlp_endpoint = \"{}/v1/traces\"\nexport_every_ms = 100", collector.url()))
        .top("[breaker]\nfailures = 2")
        .access_log(log.to_str().unwrap())
        .provider_with_key("primary", &primary.url(), "PRIMARY_KEY")
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["primary", "backup"]);
    let hook_url = format!("{}/hooks/{HOOK_SECRET}", hook.url());
    let env = move |var: &str| match var {
        "PRIMARY_KEY" => Some(KEY.to_owned()),
        "HOOK_URL" => Some(hook_url.clone()),
        _ => None,
    };
    let gw = TestGateway::start_with_env(&config, env).await;
    for _ in 0..4 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    assert_eq!(primary.seen()[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    let hooks = hook.wait_for(PATIENCE, |got| got.iter().any(|r| r.json()["kind"] == "breaker_opened")).await;
    assert!(hooks.iter().all(|r| r.path == format!("/hooks/{HOOK_SECRET}")), "the webhook got its events");
    let traces = collector.wait_for(PATIENCE, |got| !got.is_empty()).await;
    assert!(!traces.is_empty(), "traces were exported");

    let mut surfaces: Vec<(String, String)> = Vec::new();
    for path in
        ["/metrics", "/admin/targets", "/admin/routes", "/admin/policies", "/admin/events", "/status.json", "/status"]
    {
        surfaces.push((path.to_owned(), get(&gw.admin_url(), path).await.body));
    }
    let open_metrics = get_with(&gw.admin_url(), "/metrics", &[("accept", "application/openmetrics-text")]).await;
    surfaces.push(("/metrics (OpenMetrics)".into(), open_metrics.body));
    let reload = post_raw(&gw.admin_url(), "/admin/reload", "", &[]).await;
    surfaces.push(("/admin/reload".into(), reload.body));
    tokio::time::sleep(Duration::from_millis(200)).await; // the access log's writer
    surfaces.push(("access log".into(), std::fs::read_to_string(&log).unwrap()));
    for r in hooks {
        surfaces.push(("webhook body".into(), String::from_utf8_lossy(&r.body).into_owned()));
    }
    for r in traces {
        surfaces.push(("exported traces".into(), String::from_utf8_lossy(&r.body).into_owned()));
    }
    for (surface, text) in &surfaces {
        assert!(!text.is_empty(), "{surface} said something");
        assert!(!text.contains(KEY) && !text.contains("sk-primary"), "the provider key leaked into {surface}:\n{text}");
        assert!(!text.contains(HOOK_SECRET), "the webhook URL leaked into {surface}:\n{text}");
    }
}
