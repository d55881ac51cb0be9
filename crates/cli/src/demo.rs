//! `switchyard demo`: the gateway in front of three in-process mock
//! providers — a flaky OpenAI-wire primary, a flaky Anthropic-wire "claude",
//! a healthy backup — so failover, within and across the two APIs, can be
//! seen with no keys and no network.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use switchyard_core::Gateway;
use switchyard_mock::{MockProvider, Reply, StreamEnd};

use crate::shutdown_signal;

pub(crate) async fn demo(listen: &str, policy_dir: &Path) -> anyhow::Result<ExitCode> {
    // The primary answers, then fails twice (503: retried once on the same
    // target, then the backup), answers (a stream breaks after two words:
    // continued on the backup), blips once (a 500 the retry on the same
    // target rides out), then rate-limits for 10 s (longer than the policy
    // waits on one target: the backup) — round and round. The backup is
    // healthy.
    let breaks_midway = Reply::tell("Hello from primary", Duration::from_millis(50), Some(2), StreamEnd::Cut);
    let primary = MockProvider::start_cycling(
        "primary",
        vec![
            Reply::Ok,
            Reply::status(503),
            Reply::status(503),
            breaks_midway,
            Reply::status(500),
            Reply::Ok,
            Reply::rate_limited(10),
        ],
    )
    .await;
    // Claude answers, then is overloaded (529) twice, round and round.
    let claude = MockProvider::start_anthropic(
        "claude",
        vec![Reply::Ok, Reply::anthropic_overloaded(), Reply::anthropic_overloaded()],
    )
    .await;
    let backup = MockProvider::start("backup").await;
    std::fs::create_dir_all(policy_dir).with_context(|| format!("creating {}", policy_dir.display()))?;
    let policy_dir = policy_dir.canonicalize()?;
    let toml = switchyard_config::demo::demo_config(
        listen,
        &primary.url(),
        &claude.url(),
        &backup.url(),
        &policy_dir.display().to_string(),
    );
    let config = switchyard_config::from_str(&toml, "<demo>")?;
    let gateway = Gateway::new(&config, |_| None).await?;
    let listener = switchyard_core::listen(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "\nSwitchyard demo on http://{addr}\n\
         providers: primary {} (OpenAI wire, flaky: 503s and 429s), claude {} (Anthropic wire, flaky: 529s),\n\
         \x20          backup {} (OpenAI wire, healthy)\n\
         policy folder: {} (drop a .wasm here to hot-swap a policy)\n\n\
         Try (OpenAI API):\n  curl -si http://{addr}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n\n\
         Try (Anthropic API; Claude first, GPT when it is overloaded):\n  curl -si http://{addr}/v1/messages -H 'content-type: application/json' \\\n    \
         -H 'anthropic-version: 2023-06-01' \\\n    \
         -d '{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":256,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n\n\
         Run them a few times: x-switchyard-provider and x-switchyard-attempts show the failover.\n\
         Add \"stream\":true for SSE: now and then a stream breaks midway and is continued on the\n\
         backup (a `: switchyard:` comment line says so). Ctrl-C stops.\n",
        primary.url(),
        claude.url(),
        backup.url(),
        policy_dir.display()
    );
    gateway.serve(listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}
