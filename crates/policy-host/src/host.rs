//! The policy host: every loaded policy by name, the load → check → swap
//! sequence, and decisions with their fallback chain
//! (pinned version → last good version → native fallback).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwapOption;
use tokio::sync::broadcast;

use crate::call::CallContext;
use crate::compile::{compile, sha256_hex};
use crate::decision::{AttemptOutcome, NextStep, RequestInfo, RouteDecision, Topology};
use crate::engine::PolicyEngine;
use crate::native::{self, NATIVE_LABEL};
use crate::state::HostShared;
use crate::version::{Limits, PolicyOrigin, PolicyVersion, VersionParts};
use crate::{HealthBook, PolicyError};

/// What happened to a policy; subscribe with [`PolicyHost::events`].
#[derive(Debug, Clone)]
pub enum PolicyEvent {
    /// A version passed every check and now serves.
    Loaded {
        /// Policy name.
        name: String,
        /// `name@sha12`.
        label: Arc<str>,
        /// Time from reading the file to serving, ms.
        load_ms: u64,
        /// The compiled artifact came from the disk cache.
        from_cache: bool,
    },
    /// A file failed a check; the previous version keeps serving.
    Rejected {
        /// Policy name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        error: PolicyError,
    },
    /// A file was removed; `now` is the label serving instead, if any.
    Removed {
        /// Policy name.
        name: String,
        /// What serves now (the embedded version), if anything.
        now: Option<Arc<str>>,
    },
}

/// Everything the host needs to know from the gateway's config.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Routes and targets, handed to every policy's `init`.
    pub topology: Topology,
    /// Settings JSON per policy name (`{}` when absent).
    pub settings: BTreeMap<String, String>,
    /// Deadline and memory limit of every call.
    pub limits: Limits,
    /// Compiled-artifact cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
}

#[derive(Default)]
struct Slot {
    current: ArcSwapOption<PolicyVersion>,
    last_good: ArcSwapOption<PolicyVersion>,
    embedded: ArcSwapOption<PolicyVersion>,
}

/// A decision and who made it.
#[derive(Debug, Clone)]
pub struct Decided<T> {
    /// The decision.
    pub value: T,
    /// Label of the version that answered (`native@builtin` for the fallback).
    pub answered_by: Arc<str>,
}

/// Runs policies: owns the engine, every version, health, and the fallbacks.
pub struct PolicyHost {
    engine: PolicyEngine,
    shared: Arc<HostShared>,
    topology: Arc<Topology>,
    settings: BTreeMap<String, String>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    events: broadcast::Sender<PolicyEvent>,
    generation: AtomicU64,
    failed_decisions: AtomicU64,
    load_lock: tokio::sync::Mutex<()>,
    native_label: Arc<str>,
}

impl std::fmt::Debug for PolicyHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHost").field("generation", &self.generation()).finish()
    }
}

/// A request's view of its policy: the version current when it started, kept
/// for the whole request even if a newer one is swapped in meanwhile.
#[derive(Clone)]
pub struct PinnedPolicy {
    host: Arc<PolicyHost>,
    slot: Option<Arc<Slot>>,
    version: Option<Arc<PolicyVersion>>,
    call: Arc<CallContext>,
}

impl PolicyHost {
    /// A host with no policies loaded yet; see [`PolicyHost::load_embedded`].
    pub fn new(options: HostOptions, health: Arc<HealthBook>) -> Result<Arc<Self>, PolicyError> {
        let engine = PolicyEngine::new()?;
        let (events, _) = broadcast::channel(256);
        Ok(Arc::new(PolicyHost {
            engine,
            shared: Arc::new(HostShared { health, kv: Default::default(), started: tokio::time::Instant::now() }),
            topology: Arc::new(options.topology),
            settings: options.settings,
            limits: options.limits,
            cache_dir: options.cache_dir,
            slots: RwLock::new(HashMap::new()),
            events,
            generation: AtomicU64::new(0),
            failed_decisions: AtomicU64::new(0),
            load_lock: tokio::sync::Mutex::new(()),
            native_label: NATIVE_LABEL.into(),
        }))
    }

    /// Policy events: loads, rejections, removals.
    pub fn events(&self) -> broadcast::Receiver<PolicyEvent> {
        self.events.subscribe()
    }

    /// Version swaps so far (loads and removals), for status and debugging.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Decisions a policy failed (trap, deadline, memory, invalid answer).
    pub fn failed_decisions(&self) -> u64 {
        self.failed_decisions.load(Ordering::Relaxed)
    }

    /// The health book policies read.
    /// The key-value state of policy `name` (what its `state-*` imports see).
    pub fn state(&self, name: &str) -> Arc<crate::kv::PolicyKv> {
        self.shared.kv.of(name)
    }

    /// The health book the policies read.
    pub fn health(&self) -> &Arc<HealthBook> {
        &self.shared.health
    }

    /// The topology every policy was given.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        if let Some(slot) = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return slot.clone();
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.entry(name.to_owned()).or_default().clone()
    }

    /// The version serving `name` now, if any.
    pub fn current(&self, name: &str) -> Option<Arc<PolicyVersion>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).get(name)?.current.load_full()
    }

    /// Pins the current version of `name` for one request.
    pub fn pin(self: &Arc<Self>, name: &str, call: CallContext) -> PinnedPolicy {
        let slot = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        let version = slot.as_ref().and_then(|s| s.current.load_full());
        PinnedPolicy { host: self.clone(), slot, version, call: Arc::new(call) }
    }

    /// Compiles and checks a component without installing it.
    pub async fn prepare(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        origin: PolicyOrigin,
    ) -> Result<(Arc<PolicyVersion>, bool), PolicyError> {
        let sha256 = sha256_hex(&bytes);
        let host = self.clone();
        let sha = sha256.clone();
        let compiled =
            tokio::task::spawn_blocking(move || compile(&host.engine, &bytes, &sha, host.cache_dir.as_deref()))
                .await
                .map_err(|e| PolicyError::Compile(format!("compile task: {e}")))??;
        let version = Arc::new(PolicyVersion::new(VersionParts {
            name: name.to_owned(),
            sha256,
            origin,
            pre: compiled.pre,
            settings: self.settings.get(name).cloned().unwrap_or_else(|| "{}".into()),
            topology: self.topology.clone(),
            shared: self.shared.clone(),
            limits: self.limits,
        }));
        version.self_check().await?;
        Ok((version, compiled.from_cache))
    }

    fn install(&self, slot: &Slot, version: Arc<PolicyVersion>) {
        let previous = slot.current.swap(Some(version));
        if previous.is_some() {
            slot.last_good.store(previous);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Loads the embedded policies among `names` (the defaults a file of the
    /// same name overrides); other names are left to the policy folder.
    pub async fn load_embedded<'a>(
        self: &Arc<Self>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), PolicyError> {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let wanted = crate::embedded::EMBEDDED.iter().filter(|(name, _)| names.contains(name));
        for (name, bytes) in wanted {
            let started = std::time::Instant::now();
            let (version, from_cache) = self.prepare(name, bytes.to_vec(), PolicyOrigin::Embedded).await?;
            let slot = self.slot(name);
            slot.embedded.store(Some(version.clone()));
            if slot.current.load().is_none() {
                self.install(&slot, version.clone());
                self.announce_loaded(&version, started, from_cache);
            }
        }
        Ok(())
    }

    fn announce_loaded(&self, version: &PolicyVersion, started: std::time::Instant, from_cache: bool) {
        let load_ms = started.elapsed().as_millis() as u64;
        tracing::info!(policy = %version.label(), origin = ?version.origin(), load_ms, from_cache, "policy loaded");
        let _ = self.events.send(PolicyEvent::Loaded {
            name: version.name().to_owned(),
            label: version.label().clone(),
            load_ms,
            from_cache,
        });
    }

    /// Loads `path` (a `NAME.wasm` file) and, if it passes every check, swaps
    /// it in as policy `NAME`. A file identical to what serves is skipped.
    pub async fn load_file(self: &Arc<Self>, path: &Path) -> Result<Option<Arc<PolicyVersion>>, PolicyError> {
        let Some(name) = policy_name(path) else { return Ok(None) };
        let _serial = self.load_lock.lock().await;
        let started = std::time::Instant::now();
        let result: Result<Option<Arc<PolicyVersion>>, PolicyError> = async {
            let bytes = tokio::fs::read(path).await.map_err(|e| PolicyError::Io(e.to_string()))?;
            let slot = self.slot(&name);
            if slot.current.load().as_ref().is_some_and(|v| v.sha256() == sha256_hex(&bytes)) {
                return Ok(None);
            }
            let (version, from_cache) = self.prepare(&name, bytes, PolicyOrigin::File(path.to_owned())).await?;
            // Swap first: whoever hears `Loaded` finds the new version serving.
            self.install(&slot, version.clone());
            self.announce_loaded(&version, started, from_cache);
            Ok(Some(version))
        }
        .await;
        if let Err(error) = &result {
            tracing::warn!(policy = %name, path = %path.display(), reason = error.reason(), "policy rejected, previous version keeps serving: {error}");
            let _ = self.events.send(PolicyEvent::Rejected { name, path: path.to_owned(), error: error.clone() });
        }
        result
    }

    /// The file behind policy `NAME` is gone: the embedded version (if any)
    /// serves again.
    pub async fn remove_file(self: &Arc<Self>, path: &Path) {
        let Some(name) = policy_name(path) else { return };
        let _serial = self.load_lock.lock().await;
        let slot = self.slot(&name);
        let serving_this =
            slot.current.load().as_ref().is_some_and(|v| v.origin() == &PolicyOrigin::File(path.to_owned()));
        if !serving_this {
            return;
        }
        let fallback = slot.embedded.load_full();
        let now = fallback.as_ref().map(|v| v.label().clone());
        let previous = slot.current.swap(fallback);
        slot.last_good.store(previous);
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(policy = %name, now = ?now, "policy file removed");
        let _ = self.events.send(PolicyEvent::Removed { name, now });
    }

    fn note_failure(&self, label: &str, what: &str, error: &PolicyError) {
        self.failed_decisions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(policy = %label, reason = error.reason(), "{what} failed, answered by the fallback: {error}");
    }
}

/// `NAME` of `.../NAME.wasm`; `None` for other files and hidden ones.
pub fn policy_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.is_empty() && !stem.starts_with('.')).then(|| stem.to_owned())
}

impl PinnedPolicy {
    /// Label of the version this request runs on (`native@builtin` if none).
    pub fn label(&self) -> Arc<str> {
        self.version.as_ref().map_or_else(|| self.host.native_label.clone(), |v| v.label().clone())
    }

    /// The versions to ask, in order: pinned, then last good.
    fn chain(&self) -> impl Iterator<Item = Arc<PolicyVersion>> + '_ {
        let last_good = self.slot.as_ref().and_then(|s| s.last_good.load_full());
        let last_good = last_good.filter(|lg| !self.version.as_ref().is_some_and(|v| Arc::ptr_eq(v, lg)));
        self.version.clone().into_iter().chain(last_good)
    }

    /// `route`, answered by the first version that can, else the native fallback.
    pub async fn route(&self, request: &RequestInfo) -> Decided<RouteDecision> {
        for version in self.chain() {
            match version.route(request, self.call.clone()).await {
                Ok(value) => return Decided { value, answered_by: version.label().clone() },
                Err(e) => self.host.note_failure(version.label(), "route", &e),
            }
        }
        let value = native::route(&self.host.topology, &self.host.shared.health, request);
        Decided { value, answered_by: self.host.native_label.clone() }
    }

    /// `on-attempt`, answered by the first version that can, else the native fallback.
    pub async fn on_attempt(&self, request: &RequestInfo, outcome: &AttemptOutcome) -> Decided<NextStep> {
        for version in self.chain() {
            match version.on_attempt(request, outcome, self.call.clone()).await {
                Ok(value) => return Decided { value, answered_by: version.label().clone() },
                Err(e) => self.host.note_failure(version.label(), "on-attempt", &e),
            }
        }
        let value = native::on_attempt(&self.host.topology, &self.host.shared.health, request, outcome);
        Decided { value, answered_by: self.host.native_label.clone() }
    }
}
