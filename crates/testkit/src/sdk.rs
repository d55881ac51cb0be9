//! The official Python SDKs (`openai`, `anthropic`) as clients of the
//! gateway: `tests/sdk/sdk_client.py` makes one call with an unmodified SDK
//! and reports, as JSON lines, each streamed text piece as it arrives and
//! then what the SDK returned or raised. The SDKs live in a virtualenv made
//! once by `scripts/sdk-venv.sh` (pinned in `tests/sdk/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, made (or found) by `scripts/sdk-venv.sh`; panics
/// with the script's output when the SDKs cannot be installed.
pub async fn sdk_python() -> PathBuf {
    static PYTHON: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    PYTHON
        .get_or_init(|| async {
            let out =
                Command::new(repo_root().join("scripts/sdk-venv.sh")).output().await.expect("run scripts/sdk-venv.sh");
            assert!(out.status.success(), "scripts/sdk-venv.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
            PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
        })
        .await
        .clone()
}

/// One SDK call in progress.
pub struct SdkCall {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl SdkCall {
    /// Starts `tests/sdk/sdk_client.py` with `args` (`sdk`, `base_url`,
    /// `model`, `stream`, `tools`).
    pub async fn start(args: &Value) -> SdkCall {
        let python = sdk_python().await;
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/sdk/sdk_client.py"))
            .arg(args.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SDK client");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        SdkCall { child, lines }
    }

    async fn next_line(&mut self, patience: Duration) -> Option<Value> {
        let line = tokio::time::timeout(patience, self.lines.next_line())
            .await
            .expect("the SDK client said something within patience")
            .expect("read the SDK client's output")?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// The next streamed text piece; panics if the call ended instead.
    pub async fn next_piece(&mut self, patience: Duration) -> String {
        let line = self.next_line(patience).await.expect("a streamed piece");
        line["piece"].as_str().unwrap_or_else(|| panic!("expected a streamed piece, got {line}")).to_owned()
    }

    /// What the SDK returned (`ok: true`) or raised (`ok: false`), after
    /// any streamed pieces (skipped).
    pub async fn result(mut self, patience: Duration) -> Value {
        let mut last = None;
        while let Some(line) = self.next_line(patience).await {
            last = Some(line);
        }
        let status = self.child.wait().await.expect("the SDK client ends");
        let last = last.expect("the SDK client printed a result");
        assert!(status.success(), "the SDK client failed ({status}); last line: {last}");
        last
    }
}

/// One SDK call, run to its end.
pub async fn sdk_call(args: Value) -> Value {
    SdkCall::start(&args).await.result(Duration::from_secs(60)).await
}
