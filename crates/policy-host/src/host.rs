//! The policy host: every loaded policy by name (a slot per name: current,
//! proven, embedded, on trial), the load → check → swap sequence, canary
//! trials, demotion; requests pin a version here and decide through
//! [`crate::pinned`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwapOption;
use tokio::sync::broadcast;

use crate::call::CallContext;
pub use crate::canary::Canary;
use crate::canary::{Side, Trial};
use crate::compile::{compile, sha256_hex};
use crate::decision::Topology;
use crate::engine::PolicyEngine;
use crate::native::NATIVE_LABEL;
pub use crate::pinned::PinnedPolicy;
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
    /// A file failed a check; `serving` says what decides instead.
    Rejected {
        /// Policy name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        error: PolicyError,
        /// What keeps deciding for this name, in words.
        serving: String,
    },
    /// A version failed decision after decision and is no longer called
    /// (until its file changes); the fallback chain decides instead.
    Demoted {
        /// Policy name.
        name: String,
        /// The demoted version.
        label: Arc<str>,
        /// Why, with the last failure.
        reason: String,
    },
    /// A new version serves a share of requests for a while (`[policy]
    /// canary_share`) before it serves all.
    CanaryStarted {
        /// Policy name.
        name: String,
        /// The new version.
        label: Arc<str>,
        /// The version serving the rest meanwhile.
        serving: Arc<str>,
        /// Its share of requests.
        share: f64,
        /// For how long, ms.
        window_ms: u64,
    },
    /// The canary's window passed: it serves every request now.
    CanaryPromoted {
        /// Policy name.
        name: String,
        /// The version now serving all.
        label: Arc<str>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct HostOptions {
    /// Routes and targets, handed to every policy's `init`.
    pub topology: Topology,
    /// Settings JSON per policy name (`{}` when absent).
    pub settings: BTreeMap<String, String>,
    /// Deadline and memory limit of every call.
    pub limits: Limits,
    /// Compiled-artifact cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// The policy that decides for a route whose own policy is not loaded
    /// (`[policy].default`).
    pub default_policy: Option<String>,
    /// Seeds the policies' `random` import (`switchyard simulate`: the same
    /// seed, the same draws); `None`: random from the OS.
    pub random_seed: Option<u64>,
    /// `[policy] trusted_keys`: when any, a policy file loads only with a
    /// valid `NAME.wasm.sig` by one of them (see [`crate::signature`]).
    pub trusted_keys: Vec<crate::signature::TrustedKey>,
    /// `[policy] shadows`: policy name → the candidate asked the same
    /// decisions off the request path (see [`crate::shadow`]).
    pub shadows: BTreeMap<String, String>,
    /// `[policy] rollback_failure_rate` / `rollback_min_decisions`: a version
    /// whose failed-decision rate exceeds the version before's by more than
    /// this is demoted (`None`: only failures in a row demote).
    pub rollback: Option<crate::standing::RollbackRule>,
    /// `[policy] canary_share` / `canary_window_ms`: a new file version of a
    /// policy that already serves first decides for this share of requests,
    /// for this long, then for all (`None`: at once for all).
    pub canary: Option<Canary>,
}

impl HostOptions {
    /// A host for `topology` under `limits`, with nothing else set: no
    /// settings, no compile cache, no default policy, random from the OS, no
    /// signatures, canary, rollback rate or shadows.
    pub fn new(topology: Topology, limits: Limits) -> HostOptions {
        HostOptions {
            topology,
            settings: BTreeMap::new(),
            limits,
            cache_dir: None,
            default_policy: None,
            random_seed: None,
            trusted_keys: Vec::new(),
            canary: None,
            rollback: None,
            shadows: BTreeMap::new(),
        }
    }
}

/// Proven versions kept per name, newest first.
const PROVEN_KEPT: usize = 3;

#[derive(Default)]
pub(crate) struct Slot {
    current: ArcSwapOption<PolicyVersion>,
    /// Versions that proved themselves (answered enough decisions), newest
    /// first: the first not demoted answers when a newer version fails.
    proven: std::sync::Mutex<Vec<Arc<PolicyVersion>>>,
    pub(crate) embedded: ArcSwapOption<PolicyVersion>,
    /// A new version serving a share of requests before all of them.
    trial: ArcSwapOption<Trial>,
}

impl Slot {
    fn proven(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PolicyVersion>>> {
        self.proven.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The versions that answer when `failed` could not, in order: the
    /// newest proven version, then the embedded one; never a demoted one.
    pub(crate) fn fallbacks(&self, failed: Option<&Arc<PolicyVersion>>) -> Vec<Arc<PolicyVersion>> {
        let usable =
            |v: &Arc<PolicyVersion>| v.standing().demoted().is_none() && !failed.is_some_and(|f| Arc::ptr_eq(f, v));
        let proven = self.proven().iter().find(|v| usable(v)).cloned();
        let embedded =
            self.embedded.load_full().filter(|e| usable(e) && !proven.as_ref().is_some_and(|p| Arc::ptr_eq(p, e)));
        proven.into_iter().chain(embedded).collect()
    }
}

/// What serves one policy name (see [`PolicyHost::slots`]).
#[derive(Debug, Clone)]
pub struct SlotView {
    /// The policy name.
    pub name: String,
    /// The version new requests pin.
    pub current: Option<Arc<PolicyVersion>>,
    /// The newest version that proved itself (answers if a newer one fails).
    pub last_good: Option<Arc<PolicyVersion>>,
    /// The version built into the gateway, if any.
    pub embedded: Option<Arc<PolicyVersion>>,
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
    pub(crate) shared: Arc<HostShared>,
    pub(crate) topology: Arc<Topology>,
    settings: BTreeMap<String, String>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    events: broadcast::Sender<PolicyEvent>,
    generation: AtomicU64,
    failed_decisions: AtomicU64,
    load_lock: tokio::sync::Mutex<()>,
    pub(crate) native_label: Arc<str>,
    default_policy: Option<String>,
    /// Keys a policy file must be signed by (none: signatures are not checked).
    trusted_keys: Vec<crate::signature::TrustedKey>,
    /// How a new version is tried first (none: at once).
    canary: Option<Canary>,
    /// When a failure rate rolls a version back.
    pub(crate) rollback: Option<crate::standing::RollbackRule>,
    /// Candidates asked the same decisions (none: no shadows).
    pub(crate) shadows: Option<Arc<crate::shadow::Shadows>>,
    pub(crate) observer: std::sync::OnceLock<Arc<dyn crate::DecisionObserver>>,
}

impl std::fmt::Debug for PolicyHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHost").field("generation", &self.generation()).finish()
    }
}

impl PolicyHost {
    /// A host with no policies loaded yet; see [`PolicyHost::load_embedded`].
    pub fn new(options: HostOptions, health: Arc<HealthBook>) -> Result<Arc<Self>, PolicyError> {
        let engine = PolicyEngine::new()?;
        let (events, _) = broadcast::channel(256);
        let shadows = (!options.shadows.is_empty()).then(|| crate::shadow::Shadows::new(&options.shadows));
        let host = Arc::new(PolicyHost {
            engine,
            shared: Arc::new(HostShared::new(health, options.random_seed)),
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
            default_policy: options.default_policy,
            trusted_keys: options.trusted_keys,
            canary: options.canary,
            rollback: options.rollback,
            shadows: shadows.clone(),
            observer: std::sync::OnceLock::new(),
        });
        // The candidates are asked on the runtime building the host, not on
        // a serving thread.
        if let (Some(shadows), Ok(runtime)) = (shadows, tokio::runtime::Handle::try_current()) {
            runtime.spawn(shadows.run(Arc::downgrade(&host)));
        }
        Ok(host)
    }

    /// How each shadow candidate compares with the policy it shadows.
    pub fn shadow_reports(&self) -> Vec<crate::shadow::ShadowReport> {
        self.shadows.as_ref().map(|s| s.reports()).unwrap_or_default()
    }

    /// Tells `observer` of every decision from now on (once; a second call is ignored).
    pub fn observe(&self, observer: Arc<dyn crate::DecisionObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Every policy name with a slot, and what serves it: current, the
    /// newest proven (last good) and the embedded version.
    pub fn slots(&self) -> Vec<SlotView> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut views: Vec<SlotView> = slots
            .iter()
            .map(|(name, slot)| SlotView {
                name: name.clone(),
                current: slot.current.load_full(),
                last_good: slot.proven().first().cloned(),
                embedded: slot.embedded.load_full(),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Policy events: loads, rejections, removals, demotions.
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

    /// The key-value state of policy `name` (what its `state-*` imports see).
    pub fn state(&self, name: &str) -> Arc<crate::kv::PolicyKv> {
        self.shared.kv.of(name)
    }

    /// From now on the `state-*` imports of every policy use `kv`, shared
    /// by the gateways of one cluster, falling back to this instance's
    /// state when it does not answer. Set it before policies load: a
    /// version loaded earlier keeps its instance-only state.
    pub fn share_state(&self, kv: Arc<dyn crate::shared_kv::SharedKv>) {
        let _ = self.shared.shared_kv.set(kv);
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

    /// Lines policy `name` wrote past its log allowance and were dropped.
    pub fn dropped_log_lines(&self, name: &str) -> u64 {
        self.shared.logs.of(name).dropped()
    }

    /// Pins the version serving `name` for one request: its current
    /// version, or, when no version of that name is loaded, the default
    /// policy's (and with neither, the native fallback).
    pub fn pin(self: &Arc<Self>, name: &str, call: CallContext) -> PinnedPolicy {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let serving = |name: &str| {
            let slot = slots.get(name)?;
            Some((slot.clone(), slot.current.load_full()?))
        };
        let default = self.default_policy.as_deref().filter(|d| *d != name);
        let (slot, version, trial) = match serving(name).or_else(|| default.and_then(serving)) {
            Some((slot, version)) => {
                let (version, trial) = self.on_trial(&slot, version);
                (Some(slot), Some(version), trial)
            }
            None => (slots.get(name).cloned(), None, None),
        };
        PinnedPolicy { host: self.clone(), slot, version, call: Arc::new(call), trial }
    }

    /// The version a request pins while `slot` has one on trial, and the
    /// side it is on: the new one for its share of requests, all of them
    /// once its window passed (it is promoted), none once it was demoted
    /// (the trial ends).
    fn on_trial(
        &self,
        slot: &Arc<Slot>,
        current: Arc<PolicyVersion>,
    ) -> (Arc<PolicyVersion>, Option<(Arc<Trial>, Side)>) {
        let trial = slot.trial.load_full();
        let Some(trial) = trial else { return (current, None) };
        if trial.version.standing().demoted().is_some() {
            slot.trial.store(None);
            return (current, None);
        }
        if tokio::time::Instant::now() >= trial.until {
            let version = trial.version.clone();
            let promoted = slot.trial.compare_and_swap(&trial, None);
            if promoted.as_ref().is_some_and(|t| Arc::ptr_eq(t, &trial)) {
                self.install(slot, version.clone());
                tracing::info!(policy = %version.name(), label = %version.label(), "canary window passed: it serves every request");
                let _ = self.events.send(PolicyEvent::CanaryPromoted {
                    name: version.name().to_owned(),
                    label: version.label().clone(),
                });
            }
            return (version, None);
        }
        match trial.draw() {
            Side::Canary => (trial.version.clone(), Some((trial, Side::Canary))),
            Side::Serving => (current, Some((trial, Side::Serving))),
        }
    }

    /// What decides for `name` now, in words (for log lines and events).
    pub fn serving_description(&self, name: &str) -> String {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let current = |n: &str| slots.get(n).and_then(|s| s.current.load_full());
        if let Some(v) = current(name) {
            return match v.origin() {
                PolicyOrigin::Embedded => format!("the embedded version {} keeps serving", v.label()),
                PolicyOrigin::File(_) => format!("the version before, {}, keeps serving", v.label()),
            };
        }
        match self.default_policy.as_deref().filter(|d| *d != name).and_then(|d| current(d).map(|v| (d, v))) {
            Some((default, v)) => {
                format!("routes naming it are decided by the default policy {default} ({})", v.label())
            }
            None => format!("routes naming it are decided by the built-in native policy ({NATIVE_LABEL})"),
        }
    }

    /// Runs the conformance kit (what `switchyard policy check` reports) on
    /// an isolated twin of `version`: nothing that serves is touched.
    pub async fn conformance(&self, version: &PolicyVersion) -> crate::conformance::Report {
        crate::conformance::run(&version.isolated()).await
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
            ticker: self.engine.ticker.clone(),
        }));
        version.self_check().await?;
        Ok((version, compiled.from_cache))
    }

    fn install(&self, slot: &Slot, version: Arc<PolicyVersion>) {
        slot.current.store(Some(version));
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
        if !conventional_name(&name) {
            tracing::warn!(policy = %name, path = %path.display(), "{}", name_hint(&name));
        }
        let result: Result<Option<Arc<PolicyVersion>>, PolicyError> = async {
            let bytes = tokio::fs::read(path).await.map_err(|e| PolicyError::Io(e.to_string()))?;
            if !self.trusted_keys.is_empty() {
                crate::signature::check_file(&self.trusted_keys, path, &bytes).await.map_err(PolicyError::Signature)?;
            }
            let slot = self.slot(&name);
            if slot.current.load().as_ref().is_some_and(|v| v.sha256() == sha256_hex(&bytes)) {
                return Ok(None);
            }
            let (version, from_cache) = self.prepare(&name, bytes, PolicyOrigin::File(path.to_owned())).await?;
            // One verdict: the gateway refuses what `policy check` fails.
            let report = self.conformance(&version).await;
            if !report.passed() {
                return Err(PolicyError::Conformance(report.failures()));
            }
            // A policy already serving tries the new version on a share first.
            if let (Some(canary), Some(serving)) = (self.canary, slot.current.load_full())
                && canary.share < 1.0
            {
                slot.trial.store(Some(Arc::new(Trial::new(version.clone(), canary))));
                self.announce_loaded(&version, started, from_cache);
                tracing::info!(policy = %name, label = %version.label(), serving = %serving.label(), share = canary.share,
                    "canary: the new version decides for a share of requests until its window passes");
                let _ = self.events.send(PolicyEvent::CanaryStarted {
                    name: name.clone(),
                    label: version.label().clone(),
                    serving: serving.label().clone(),
                    share: canary.share,
                    window_ms: canary.window.as_millis() as u64,
                });
                return Ok(Some(version));
            }
            // Swap first: whoever hears `Loaded` finds the new version serving.
            slot.trial.store(None);
            self.install(&slot, version.clone());
            self.announce_loaded(&version, started, from_cache);
            Ok(Some(version))
        }
        .await;
        if let Err(error) = &result {
            let serving = self.serving_description(&name);
            tracing::warn!(policy = %name, path = %path.display(), reason = error.reason(), "policy rejected ({serving}): {error}");
            let _ =
                self.events.send(PolicyEvent::Rejected { name, path: path.to_owned(), error: error.clone(), serving });
        }
        result
    }

    /// The file behind policy `NAME` is gone, and every version it brought
    /// with it: the embedded version of that name serves again, or, with
    /// none, the default policy decides for routes naming it.
    pub async fn remove_file(self: &Arc<Self>, path: &Path) {
        let Some(name) = policy_name(path) else { return };
        let _serial = self.load_lock.lock().await;
        let slot = self.slot(&name);
        slot.trial.store(None);
        let from_file = |v: &PolicyVersion| matches!(v.origin(), PolicyOrigin::File(_));
        slot.proven().retain(|v| !from_file(v));
        if !slot.current.load().as_ref().is_some_and(|v| from_file(v)) {
            return;
        }
        let fallback = slot.embedded.load_full();
        let now = fallback.as_ref().map(|v| v.label().clone());
        slot.current.store(fallback);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let serving = self.serving_description(&name);
        tracing::warn!(policy = %name, path = %path.display(), "policy file removed: {serving}");
        let _ = self.events.send(PolicyEvent::Removed { name, now });
    }

    fn note_failure(&self, label: &str, what: &str, error: &PolicyError) {
        self.failed_decisions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(policy = %label, reason = error.reason(), "{what} failed, answered by the fallback: {error}");
    }

    /// `version` answered a decision; the one that proves it makes it the
    /// version that answers for newer ones that fail.
    pub(crate) fn answered(&self, slot: Option<&Arc<Slot>>, version: &Arc<PolicyVersion>) {
        if !version.standing().answered() {
            return;
        }
        let Some(slot) = slot else { return };
        let mut proven = slot.proven();
        if !proven.iter().any(|v| Arc::ptr_eq(v, version)) {
            proven.insert(0, version.clone());
            proven.truncate(PROVEN_KEPT);
            tracing::info!(policy = %version.label(), "policy proved itself: it answers if a newer version fails");
        }
    }

    /// `version` failed a decision; enough in a row demote it.
    pub(crate) fn failed(&self, slot: Option<&Arc<Slot>>, version: &PolicyVersion, what: &str, error: &PolicyError) {
        self.note_failure(version.label(), what, error);
        // The rate is judged against the version that would answer instead.
        let rule = self.rollback.map(|rule| {
            let before = slot.and_then(|s| s.fallbacks(None).into_iter().find(|v| !std::ptr::eq(&**v, version)));
            (rule, before.map_or(0.0, |v| v.standing().failure_rate()))
        });
        if version.standing().failed(error, rule) {
            self.announce_demoted(slot, version);
        }
    }

    /// `version` was just demoted: it leaves the fallbacks, and the log and
    /// an event say why and what decides instead.
    pub(crate) fn announce_demoted(&self, slot: Option<&Arc<Slot>>, version: &PolicyVersion) {
        let reason = version.standing().demoted().unwrap_or_default().to_owned();
        if let Some(slot) = slot {
            slot.proven().retain(|v| !std::ptr::eq(&**v, version));
        }
        let instead = slot.map(|s| s.fallbacks(None)).and_then(|f| f.first().map(|v| v.label().to_string()));
        let instead = instead.unwrap_or_else(|| NATIVE_LABEL.to_owned());
        tracing::error!(
            policy = %version.label(),
            %instead,
            "policy demoted: {reason}; {instead} decides until its file changes"
        );
        let _ = self.events.send(PolicyEvent::Demoted {
            name: version.name().to_owned(),
            label: version.label().clone(),
            reason,
        });
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

/// Whether `name` follows the naming rule `switchyard new` keeps:
/// lower-case letters, digits and dashes, starting with a letter. Another
/// file stem still loads (as that exact name), with a hint.
pub fn conventional_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The hint for a policy file whose name breaks the naming rule.
pub fn name_hint(name: &str) -> String {
    format!(
        "policy names are lower-case letters, digits and dashes (like {:?}); this file loads as the policy {name:?}, which a route must name exactly",
        name.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
}
