//! Why a policy could not be loaded or could not decide.

/// A policy failure. None of these ever fails a client request: the decision
/// is answered by the last good version or the native fallback instead.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading the policy file: {0}")]
    Io(String),
    /// Not a valid component (not wasm at all, a core module, corrupt).
    #[error("not a valid component: {0}")]
    Compile(String),
    /// The component imports something the gateway does not provide.
    #[error("imports {0}, which a policy may not use (only WASI and switchyard:policy/host)")]
    ForbiddenImport(String),
    /// The component does not export the policy world's functions, or with other types.
    #[error("does not satisfy the switchyard:policy world: {0}")]
    WrongWorld(String),
    /// Instantiation failed.
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// `init` refused the settings.
    #[error("init refused its settings: {0}")]
    ConfigRejected(String),
    /// The call ran past its deadline (the decision's wall-clock backstop, or the init allowance).
    #[error("ran past its {0} ms deadline")]
    DeadlineExceeded(u64),
    /// The decision burned its whole fuel budget (this many wasm
    /// instructions): the same work is cut at the same point however busy
    /// the machine is.
    #[error("used up its budget of {0} instructions (decision_fuel)")]
    BudgetExceeded(u64),
    /// The call ran past its deadline, but only because the machine was too
    /// busy to run it (the policy was preempted, not looping): the request
    /// is answered by the fallback, the policy is not blamed for it.
    #[error(
        "ran past its {0} ms deadline while the machine was busy (the policy itself was not seen running that long)"
    )]
    Preempted(u64),
    /// The instance tried to grow memory past the limit.
    #[error("grew memory past the {0} MiB limit")]
    OutOfMemory(u64),
    /// The guest trapped (unreachable, out-of-bounds, stack overflow, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The component was built for another version of the policy world.
    #[error(
        "built for switchyard:policy@{found}, this gateway speaks switchyard:policy@{expected}: rebuild it against this gateway's wit/"
    )]
    WorldVersion {
        /// The version the component imports.
        found: String,
        /// The version this gateway provides.
        expected: String,
    },
    /// The component loads, but failed scenarios of the conformance kit (the
    /// same ones `switchyard policy check` runs).
    #[error("failed the conformance kit (`switchyard policy check` shows the full report): {0}")]
    Conformance(String),
    /// The decision names an unknown target, has no targets, or is not sane.
    #[error("invalid decision: {0}")]
    InvalidDecision(String),
    /// `[policy] trusted_keys` is set and the file is unsigned or wrongly signed.
    #[error("refused: {0}")]
    Signature(String),
}

impl PolicyError {
    /// The failure is the policy's own doing and counts towards demoting
    /// its version; a busy machine's overrun does not.
    pub fn is_the_policys_fault(&self) -> bool {
        !matches!(self, PolicyError::Preempted(_) | PolicyError::Io(_))
    }

    /// A short stable name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::Io(_) => "io",
            PolicyError::Compile(_) => "compile",
            PolicyError::ForbiddenImport(_) => "forbidden_import",
            PolicyError::WrongWorld(_) => "wrong_world",
            PolicyError::WorldVersion { .. } => "world_version",
            PolicyError::Conformance(_) => "conformance",
            PolicyError::Instantiate(_) => "instantiate",
            PolicyError::ConfigRejected(_) => "config_rejected",
            PolicyError::DeadlineExceeded(_) => "deadline_exceeded",
            PolicyError::BudgetExceeded(_) => "budget_exceeded",
            PolicyError::Preempted(_) => "preempted",
            PolicyError::OutOfMemory(_) => "out_of_memory",
            PolicyError::Trap(_) => "trap",
            PolicyError::InvalidDecision(_) => "invalid_decision",
            PolicyError::Signature(_) => "signature",
        }
    }
}
