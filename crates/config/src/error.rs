use std::path::PathBuf;

/// Why a config could not be used. Display gives `file:line: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or name.
    #[error("{origin}:{line}: {message}")]
    Parse {
        /// File name (or `<inline>`).
        origin: String,
        /// 1-based line of the mistake.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parses but does not make sense (unknown provider, duplicate name, ...).
    #[error("{origin}:{line}: {message}")]
    Invalid {
        /// File name (or `<inline>`).
        origin: String,
        /// 1-based line of the mistake (0 when it is about the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
}
