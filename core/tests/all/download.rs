//! Model download over real HTTP (feature `download`), against a local server that serves
//! the model files of the installed pip package in the Hugging Face URL layout.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agent_mem::embed::download::download_model;
use agent_mem::embed::{locate_model, Embedder, LocalEmbedder, DEFAULT_MODEL_NAME};
use agent_mem::ErrorCode;

/// Serves `GET /{repo}/resolve/main/{file}` from `dir` on 127.0.0.1 for a bounded number of
/// requests; anything else is a 404. Returns the endpoint and the request counter.
fn serve(dir: PathBuf, repo: &'static str, max_requests: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok() && line.trim() != "" {
                line.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let prefix = format!("/{repo}/resolve/main/");
            let body = path
                .strip_prefix(&prefix)
                .filter(|f| !f.contains('/'))
                .and_then(|f| std::fs::read(dir.join(f)).ok());
            let _ = match body {
                Some(bytes) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            bytes.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(&bytes)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    (endpoint, served)
}

/// Tests that read or set environment variables hold this (they are process-wide; the lock
/// is shared with the other modules of the test binary).
use crate::support::env_lock;

fn package_model_dir() -> PathBuf {
    let _env = env_lock();
    locate_model(None)
        .expect("the test machine has the model package installed")
        .dir
}

#[test]
fn downloads_the_model_and_it_embeds_like_the_original() {
    let source = package_model_dir();
    let (endpoint, served) = serve(source.clone(), DEFAULT_MODEL_NAME, 8);
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("models").join("all-MiniLM-L6-v2");
    let location = download_model(DEFAULT_MODEL_NAME, "main", &endpoint, &dest).unwrap();
    assert_eq!(location.dir, dest);
    assert!(served.load(Ordering::SeqCst) >= 3);
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dest.join(file)).unwrap(),
            std::fs::read(source.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let downloaded = LocalEmbedder::from_dir(&dest).unwrap();
    let original = LocalEmbedder::from_dir(&source).unwrap();
    assert_eq!(downloaded.model_id(), DEFAULT_MODEL_NAME);
    let text = ["The cat sits on the mat."];
    assert_eq!(
        downloaded.embed(&text).unwrap(),
        original.embed(&text).unwrap()
    );
    // No partial directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
}

fn tampered_copy(source: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(source.join(file), into.join(file)).unwrap();
    }
    let weights = into.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(weights, bytes).unwrap();
}

#[test]
fn a_missing_file_or_wrong_weights_fail_cleanly() {
    let empty = tempfile::tempdir().unwrap();
    let (endpoint, _) = serve(empty.path().to_path_buf(), DEFAULT_MODEL_NAME, 4);
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("model");
    let err = download_model(DEFAULT_MODEL_NAME, "main", &endpoint, &dest).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains("404"), "{err}");
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "partial files left"
    );

    let tampered = tempfile::tempdir().unwrap();
    tampered_copy(&package_model_dir(), tampered.path());
    let (endpoint, _) = serve(tampered.path().to_path_buf(), DEFAULT_MODEL_NAME, 8);
    let err = download_model(DEFAULT_MODEL_NAME, "main", &endpoint, &dest).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains("sha256"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn bad_repository_names_are_refused_before_any_request() {
    let cache = tempfile::tempdir().unwrap();
    for (repo, rev) in [("", "main"), ("../etc", "main"), ("a/b", "x/y")] {
        let err =
            download_model(repo, rev, "http://127.0.0.1:9", &cache.path().join("m")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{repo} {rev}");
    }
}

#[test]
fn locate_downloads_only_when_allowed_and_nothing_local_exists() {
    let source = package_model_dir();
    let _env = env_lock();
    let cache = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    let saved: Vec<(&str, Option<String>)> = [
        "AGENTMEM_CACHE_DIR",
        "AGENTMEM_PYTHON",
        "AGENTMEM_MODEL_DIR",
        "AGENTMEM_ALLOW_DOWNLOAD",
        "HF_HUB_CACHE",
        "HF_ENDPOINT",
    ]
    .into_iter()
    .map(|k| (k, std::env::var(k).ok()))
    .collect();
    let (endpoint, served) = serve(source, DEFAULT_MODEL_NAME, 8);
    // Nothing local: no cache, no HF snapshot, no Python package.
    std::env::set_var("AGENTMEM_CACHE_DIR", cache.path());
    std::env::set_var("AGENTMEM_PYTHON", "/nonexistent/python");
    std::env::remove_var("AGENTMEM_MODEL_DIR");
    std::env::set_var("HF_HUB_CACHE", hub.path());
    std::env::set_var("HF_ENDPOINT", &endpoint);

    std::env::remove_var("AGENTMEM_ALLOW_DOWNLOAD");
    let refused = locate_model(None);
    std::env::set_var("AGENTMEM_ALLOW_DOWNLOAD", "1");
    let fetched = locate_model(None);
    let again = locate_model(None);

    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    let err = refused.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains("AGENTMEM_ALLOW_DOWNLOAD"), "{err}");
    let fetched = fetched.unwrap();
    assert!(fetched.dir.starts_with(cache.path()), "{fetched:?}");
    assert!(fetched.source.contains("downloaded"));
    let requests = served.load(Ordering::SeqCst);
    // The second lookup finds the cache and downloads nothing.
    let again = again.unwrap();
    assert_eq!(again.dir, fetched.dir);
    assert_eq!(again.source, "agent_mem cache");
    assert_eq!(served.load(Ordering::SeqCst), requests);
}
