//! Failures are classified from the provider's status and error body, and
//! the policy acts on the class: a prompt too long for one model goes to
//! another, a filtered one goes back to the client with the reason.

use crate::*;

#[tokio::test]
async fn a_context_length_400_is_served_by_the_next_target_without_retrying_the_primary() {
    init_tracing();
    let primary = MockProvider::start_cycling(
        "primary",
        vec![Reply::bad_request("context_length_exceeded", "This model's maximum context length is 8192 tokens.")],
    )
    .await;
    let large = MockProvider::start("large-context").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &large.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
    assert_eq!(primary.received(), 1, "the primary is not asked again");
    assert_eq!(r.header("x-switchyard-attempts"), "2");
}

#[tokio::test]
async fn a_content_filter_400_reaches_the_client_with_the_providers_reason_and_no_retry() {
    init_tracing();
    let primary = MockProvider::start_cycling(
        "primary",
        vec![Reply::bad_request("content_filter", "The response was filtered due to the prompt triggering a policy.")],
    )
    .await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "content_filter");
    assert!(r.body.contains("triggering a policy"), "{}", r.body);
    assert_eq!((primary.received(), backup.received()), (1, 0));
    assert_eq!(r.header("x-switchyard-attempts"), "1");
}

#[tokio::test]
async fn an_exhausted_quota_429_is_an_account_problem_and_fails_over_without_waiting() {
    init_tracing();
    let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let quota = Reply::Status { status: 429, headers: vec![("retry-after".into(), "30".into())], body: body.into() };
    let primary = MockProvider::start_cycling("primary", vec![quota]).await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
}
