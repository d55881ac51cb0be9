//! Hot reload: watch the policy folder, and on any change to a `*.wasm` file
//! (create, write in place, replace by rename, delete) rescan it, wait for
//! changed files to stop growing, and load them. A periodic rescan catches
//! events the OS dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::Watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::host::policy_name;
use crate::{PolicyError, PolicyHost};

/// Quiet time after an event before the folder is rescanned.
const DEBOUNCE: Duration = Duration::from_millis(25);
/// A changed file is read once two looks this far apart agree on its size and time.
const STABLE_AFTER: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Its signature file's (`NAME.wasm.sig`): a signature dropped in after
    /// the policy, or replaced, loads the policy again.
    sig: Option<(u64, Option<SystemTime>)>,
}

// (A `stat` and a listing of one small folder are done in place: handing
// them to the blocking pool would wake more threads than they cost.)
async fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let sig = std::fs::metadata(crate::signature::signature_path(path)).ok().map(|m| (m.len(), m.modified().ok()));
    meta.is_file().then(|| Stamp { len: meta.len(), modified: meta.modified().ok(), sig })
}

/// Watches a policy folder until dropped.
pub struct PolicyWatcher {
    task: JoinHandle<()>,
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyWatcher")
    }
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The files of a folder as last loaded.
struct Folder {
    host: Arc<PolicyHost>,
    dir: PathBuf,
    known: HashMap<PathBuf, Stamp>,
}

impl Folder {
    async fn policy_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if policy_name(&path).is_some() {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// Waits until `path` looks the same twice in a row; `None` if it vanished.
    async fn settled(path: &Path) -> Option<Stamp> {
        let mut last = stamp(path).await?;
        for _ in 0..100 {
            tokio::time::sleep(STABLE_AFTER).await;
            let now = stamp(path).await?;
            if now == last && now.len > 0 {
                return Some(now);
            }
            last = now;
        }
        Some(last)
    }

    async fn rescan(&mut self) {
        let files = self.policy_files().await;
        for path in &files {
            let Some(seen) = stamp(path).await else { continue };
            if self.known.get(path) == Some(&seen) {
                continue;
            }
            let Some(settled) = Self::settled(path).await else { continue };
            // Errors are logged and announced by the host; the old version serves on.
            let _ = self.host.load_file(path).await;
            self.known.insert(path.clone(), settled);
        }
        let gone: Vec<PathBuf> = self.known.keys().filter(|p| !files.contains(p)).cloned().collect();
        for path in gone {
            self.known.remove(&path);
            self.host.remove_file(&path).await;
        }
    }
}

impl PolicyHost {
    /// Loads every `*.wasm` in `dir` now, then keeps watching it.
    pub async fn watch(self: &Arc<Self>, dir: &Path, rescan_every: Duration) -> Result<PolicyWatcher, PolicyError> {
        tokio::fs::create_dir_all(dir).await.map_err(|e| PolicyError::Io(format!("{}: {e}", dir.display())))?;
        let mut folder = Folder { host: self.clone(), dir: dir.to_owned(), known: HashMap::new() };
        folder.rescan().await;

        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading a file is an event too (open, access, close): only a
            // change counts, or the gateway's own reads would wake it.
            if let Ok(event) = event
                && !matches!(event.kind, notify::EventKind::Access(_))
                && event
                    .paths
                    .iter()
                    .any(|p| policy_name(p).is_some() || p.to_str().is_some_and(|p| p.ends_with(".wasm.sig")))
            {
                let _ = tx.send(());
            }
        })
        .map_err(|e| PolicyError::Io(format!("watching {}: {e}", dir.display())))?;
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| PolicyError::Io(format!("watching {}: {e}", dir.display())))?;

        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(rescan_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    event = rx.recv() => {
                        if event.is_none() { return; }
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = tick.tick() => {}
                }
                folder.rescan().await;
            }
        });
        Ok(PolicyWatcher { task, _watcher: watcher })
    }
}
