//! The one error type of the engine and its stable numeric codes.

use std::fmt;

/// Stable numeric error codes shared by every surface (Rust, C, Python, Node).
///
/// The numbers are part of the public contract: they are never reused or renumbered.
/// `tests/error_codes.json` holds the same table and every language checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorCode {
    /// The caller passed something the engine refuses (empty text, bad filter, NaN vector…).
    InvalidInput = 1,
    /// No memory (or other object) with the given id exists.
    NotFound = 2,
    /// The object exists already (for example an update that would duplicate another memory).
    AlreadyExists = 3,
    /// SQLite (or another store) failed.
    Storage = 4,
    /// The vector index failed.
    Index = 5,
    /// The embedder failed to embed text.
    Embedding = 6,
    /// The embedding model could not be found or loaded.
    ModelUnavailable = 7,
    /// An LLM call failed.
    Llm = 8,
    /// A plugin failed.
    Plugin = 9,
    /// A capability was not granted.
    PermissionDenied = 10,
    /// A file-system operation failed.
    Io = 11,
    /// A file is damaged, or is not an agent_mem store.
    Corrupted = 12,
    /// The memory was closed.
    Closed = 13,
    /// The operation or option is not supported (for example a store from a newer version).
    Unsupported = 14,
    /// A bug in agent_mem.
    Internal = 15,
    /// The caller stopped the operation (a streamed chat cancelled mid-answer); nothing was
    /// stored.
    Cancelled = 16,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidInput,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Storage,
        ErrorCode::Index,
        ErrorCode::Embedding,
        ErrorCode::ModelUnavailable,
        ErrorCode::Llm,
        ErrorCode::Plugin,
        ErrorCode::PermissionDenied,
        ErrorCode::Io,
        ErrorCode::Corrupted,
        ErrorCode::Closed,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
        ErrorCode::Cancelled,
    ];

    /// The stable number of this code.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The stable name of this code, as used in the conformance cases (`"InvalidInput"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "InvalidInput",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::AlreadyExists => "AlreadyExists",
            ErrorCode::Storage => "Storage",
            ErrorCode::Index => "Index",
            ErrorCode::Embedding => "Embedding",
            ErrorCode::ModelUnavailable => "ModelUnavailable",
            ErrorCode::Llm => "Llm",
            ErrorCode::Plugin => "Plugin",
            ErrorCode::PermissionDenied => "PermissionDenied",
            ErrorCode::Io => "Io",
            ErrorCode::Corrupted => "Corrupted",
            ErrorCode::Closed => "Closed",
            ErrorCode::Unsupported => "Unsupported",
            ErrorCode::Internal => "Internal",
            ErrorCode::Cancelled => "Cancelled",
        }
    }

    /// The name in upper snake case, as the C (`AM_ERR_NOT_FOUND`) and Node (`AM_NOT_FOUND`)
    /// codes spell it: `"NOT_FOUND"`.
    pub fn upper_name(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Storage => "STORAGE",
            ErrorCode::Index => "INDEX",
            ErrorCode::Embedding => "EMBEDDING",
            ErrorCode::ModelUnavailable => "MODEL_UNAVAILABLE",
            ErrorCode::Llm => "LLM",
            ErrorCode::Plugin => "PLUGIN",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Io => "IO",
            ErrorCode::Corrupted => "CORRUPTED",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Cancelled => "CANCELLED",
        }
    }

    /// The code with the given number, if there is one.
    pub fn from_u32(value: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u32() == value)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from agent_mem: a stable [`ErrorCode`], a message for people and, where there
/// was one, the underlying cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    #[source]
    source: Option<Cause>,
}

impl Error {
    /// A new error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, remembering what caused it.
    pub fn with_source(mut self, source: impl Into<Cause>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for an [`ErrorCode::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidInput, message)
    }

    /// Shorthand for an [`ErrorCode::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotFound, message)
    }

    /// Shorthand for an [`ErrorCode::Cancelled`] error.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Cancelled, message)
    }

    /// Shorthand for an [`ErrorCode::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    /// An [`ErrorCode::Internal`] error describing a caught panic (with its message when it
    /// has one), for callers that must not let a panic unwind into foreign code.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::internal(format!("agent_mem panicked: {what}"))
    }
}

/// The result type of agent_mem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The code for a SQLite failure: a damaged or foreign file is `Corrupted`, the rest
/// `Storage`.
pub(crate) fn sqlite_code(err: &rusqlite::Error) -> ErrorCode {
    match err {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            ErrorCode::Corrupted
        }
        _ => ErrorCode::Storage,
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::new(sqlite_code(&err), format!("SQLite: {err}")).with_source(err)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::new(ErrorCode::Io, err.to_string()).with_source(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::new(ErrorCode::InvalidInput, format!("invalid JSON: {err}")).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_names_spell_the_names_in_upper_snake_case() {
        for code in ErrorCode::ALL {
            let mut upper = String::new();
            for (i, ch) in code.name().chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    upper.push('_');
                }
                upper.push(ch.to_ascii_uppercase());
            }
            assert_eq!(code.upper_name(), upper, "{code:?}");
        }
    }

    #[test]
    fn a_panic_payload_becomes_an_internal_error_with_its_message() {
        let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        let e = Error::from_panic(&*payload);
        assert_eq!(e.code(), ErrorCode::Internal);
        assert_eq!(e.message(), "agent_mem panicked: boom 1");
    }
}
