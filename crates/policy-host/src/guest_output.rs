//! What a policy writes to its stdout and stderr: kept, the last
//! [`KEPT_BYTES`] of it, so that when a call traps the error carries the
//! guest's own account — a Python traceback, a JavaScript exception and its
//! stack, a Rust panic message with its file and line, a C `assert`. Never
//! written anywhere else (a policy's log lines go through its `log`
//! import, rate-limited), never blocks, never fails the guest's write.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the latest output is kept.
pub const KEPT_BYTES: usize = 8 * 1024;

/// A guest's stdout and stderr, one instance's, as one tail.
#[derive(Debug, Clone, Default)]
pub struct GuestOutput(Arc<Mutex<VecDeque<u8>>>);

impl GuestOutput {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(KEPT_BYTES)..];
        let over = (tail.len() + bytes.len()).saturating_sub(KEPT_BYTES);
        tail.drain(..over);
        tail.extend(bytes);
    }

    /// What was written since the last take, as text (lossy), trimmed.
    pub fn take(&self) -> String {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if tail.is_empty() {
            return String::new();
        }
        let bytes: Vec<u8> = tail.drain(..).collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }

    /// Forgets what was written (before a call: only its own output counts).
    pub fn clear(&self) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !tail.is_empty() {
            tail.clear();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: old output makes way for new.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Lines of the guest's output a trap's account keeps (the end of a
/// traceback is where the exception is).
const TOLD_LINES: usize = 24;
/// Named frames of the wasm backtrace a trap's account keeps.
const TOLD_FRAMES: usize = 12;

/// Frames of language runtimes and bindings, not of the policy: the Rust
/// standard library's panic and abort path, allocators, the generated glue,
/// the interpreters' entry points.
const RUNTIME_FRAMES: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "__rustc::",
    "__rust_",
    "rust_",
    "abort",
    "dlmalloc",
    "wit_bindgen",
    "<wit_bindgen",
    "wit_dylib_",
    "_start",
    "__wasm_",
    "__original_main",
    "cabi_",
];

/// A trap in words: what trapped (`what`), the named wasm frames it trapped
/// in, innermost first, runtime frames left out (components that keep their
/// name section: a Rust or C policy's own functions), and the end of what
/// the guest wrote since its call began (a Python traceback, a JavaScript
/// exception and stack, a Rust panic message, a C `assert`).
pub fn trap_account(what: &str, err: &wasmtime::Error, output: &GuestOutput) -> String {
    let mut account = what.to_owned();
    if let Some(backtrace) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        let mut frames: Vec<String> = Vec::new();
        let named = backtrace.frames().iter().filter_map(|f| f.func_name());
        for name in named.filter(|n| !RUNTIME_FRAMES.iter().any(|r| n.starts_with(r))) {
            let name = name.to_owned();
            if frames.last() != Some(&name) {
                frames.push(name);
            }
        }
        if !frames.is_empty() {
            let shown = frames.len().min(TOLD_FRAMES);
            account.push_str("\n  in: ");
            account.push_str(&frames[..shown].join(" <- "));
            if frames.len() > shown {
                account.push_str(&format!(" <- ... ({} more)", frames.len() - shown));
            }
        }
    }
    let written = output.take();
    if !written.is_empty() {
        // (The guest cannot be given environment variables: no hint to set one.)
        let lines: Vec<&str> = written
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let from = lines.len().saturating_sub(TOLD_LINES);
        account.push_str("\n  the policy wrote:");
        if from > 0 {
            account.push_str(&format!("\n    ... ({from} lines before)"));
        }
        for line in &lines[from..] {
            account.push_str("\n    ");
            account.push_str(line);
        }
    }
    account
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_output_and_forgets_it_once_taken() {
        let out = GuestOutput::default();
        out.push(b"old ");
        out.push(&vec![b'x'; KEPT_BYTES - 3]);
        out.push(b"Traceback: the end\n");
        let text = out.take();
        assert!(text.ends_with("Traceback: the end") && !text.starts_with("old"), "{}", &text[..20]);
        assert_eq!(text.len() + 1, KEPT_BYTES);
        assert_eq!(out.take(), "");
    }
}
