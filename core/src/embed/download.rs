//! Fetching a model over HTTP from a Hugging Face–style endpoint (cargo feature `download`).
//!
//! agent_mem is offline by default: nothing is downloaded unless the program calls
//! [`download_model`] or the user sets `AGENTMEM_ALLOW_DOWNLOAD=1`, which lets
//! [`super::locate_model`] fetch the default model into agent_mem's cache as its last resort.
//! The endpoint is `HF_ENDPOINT` or `https://huggingface.co`; files come from
//! `{endpoint}/{repo}/resolve/{revision}/{file}`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::model::{ModelLocation, DEFAULT_MODEL_NAME};
use crate::error::{Error, ErrorCode, Result};

/// Environment variable that allows [`super::locate_model`] to download the default model.
pub const ENV_ALLOW_DOWNLOAD: &str = "AGENTMEM_ALLOW_DOWNLOAD";

/// The endpoint used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// SHA-256 of the official all-MiniLM-L6-v2 `model.safetensors`: a download of the default
/// model that does not match is refused.
const DEFAULT_MODEL_SHA256: &str =
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Files fetched, and whether the model works without them.
const FILES: [(&str, bool); 4] = [
    ("config.json", true),
    ("tokenizer.json", true),
    ("model.safetensors", true),
    ("sentence_bert_config.json", false),
];

/// No model file of ours is larger than this; a server sending more is refused.
const MAX_FILE_BYTES: u64 = 2 << 30;

fn unavailable(message: String) -> Error {
    Error::new(ErrorCode::ModelUnavailable, message)
}

/// Downloads `repo` at `revision` from `endpoint` into `dest` (created; replaced only once
/// every file arrived). Returns where the model now is.
pub fn download_model(
    repo: &str,
    revision: &str,
    endpoint: &str,
    dest: &Path,
) -> Result<ModelLocation> {
    if repo.is_empty() || repo.contains("..") || revision.is_empty() || revision.contains('/') {
        return Err(Error::invalid(format!(
            "invalid model repository {repo:?} or revision {revision:?}"
        )));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(30 * 60)))
        .build()
        .into();
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let partial = parent.join(format!(
        ".{}.partial-{}",
        dest.file_name()
            .map_or("model".into(), |n| n.to_string_lossy()),
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir_all(&partial)?;
    let result = fetch_all(
        &agent,
        repo,
        revision,
        endpoint.trim_end_matches('/'),
        &partial,
    )
    .and_then(|()| {
        if dest.exists() {
            fs::remove_dir_all(dest)?;
        }
        fs::rename(&partial, dest)?;
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    result?;
    Ok(ModelLocation {
        dir: dest.to_path_buf(),
        source: format!("downloaded from {endpoint}"),
    })
}

fn fetch_all(
    agent: &ureq::Agent,
    repo: &str,
    revision: &str,
    endpoint: &str,
    dir: &Path,
) -> Result<()> {
    for (file, required) in FILES {
        let url = format!("{endpoint}/{repo}/resolve/{revision}/{file}");
        let response = match agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) if !required => continue,
            Err(e) => return Err(unavailable(format!("downloading {url}: {e}")).with_source(e)),
        };
        let target: PathBuf = dir.join(file);
        let mut out = fs::File::create(&target)?;
        let mut reader = response
            .into_body()
            .into_with_config()
            .limit(MAX_FILE_BYTES)
            .reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| unavailable(format!("downloading {url}: {e}")).with_source(e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        if repo == DEFAULT_MODEL_NAME && file == "model.safetensors" {
            let digest: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if digest != DEFAULT_MODEL_SHA256 {
                return Err(unavailable(format!(
                    "{url} is not the expected model (sha256 {digest}, expected \
                     {DEFAULT_MODEL_SHA256})"
                )));
            }
        }
    }
    Ok(())
}

/// The endpoint to download from: `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`].
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// True when the user allowed downloading (`AGENTMEM_ALLOW_DOWNLOAD=1` or `true`).
pub fn allowed() -> bool {
    std::env::var(ENV_ALLOW_DOWNLOAD)
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}
