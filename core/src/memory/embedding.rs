//! The embedder of a [`Memory`] and its cache: the same text is never embedded twice.

use std::collections::HashSet;
use std::sync::Arc;

use super::{check_vector, Memory};
use crate::embed::Embedder;
use crate::error::{Error, ErrorCode, Result};
use crate::store::StoreTx;
use crate::types::{content_hash, NewMemory};

/// Texts embedded per embedder call.
const EMBED_CHUNK: usize = 64;

/// The embedder as resolved at open. A default model that cannot be found does not stop the
/// store from opening: calls that need it fail with [`ErrorCode::ModelUnavailable`].
pub(crate) enum EmbedderSlot {
    Ready(Arc<dyn Embedder>),
    Missing { model_id: String, error: String },
    Disabled,
}

impl EmbedderSlot {
    pub(crate) fn model_id(&self) -> Option<&str> {
        match self {
            EmbedderSlot::Ready(e) => Some(e.model_id()),
            EmbedderSlot::Missing { model_id, .. } => Some(model_id),
            EmbedderSlot::Disabled => None,
        }
    }

    pub(crate) fn get(&self) -> Result<&Arc<dyn Embedder>> {
        match self {
            EmbedderSlot::Ready(e) => Ok(e),
            EmbedderSlot::Missing { error, .. } => {
                Err(Error::new(ErrorCode::ModelUnavailable, error.clone()))
            }
            EmbedderSlot::Disabled => Err(Error::new(
                ErrorCode::Unsupported,
                "this memory has no embedder: pass vectors (add_with_vector, \
                 search_with_vector) or configure one in the builder",
            )),
        }
    }
}

/// A vector for one memory and, when it was freshly embedded, its cache key.
#[derive(Clone)]
pub(crate) struct Embedded {
    pub(crate) vector: Vec<f32>,
    pub(crate) cache_as: Option<(String, String)>,
}

/// Inside a write transaction: the vector has the store's dimension `dims`, and a freshly
/// computed embedding is cached.
pub(crate) fn fit_vector(tx: &mut dyn StoreTx, e: &Embedded, dims: usize) -> Result<()> {
    if e.vector.len() != dims {
        return Err(Error::invalid(format!(
            "vector has {} dimensions; the store holds {dims}",
            e.vector.len()
        )));
    }
    if let Some((model, hash)) = &e.cache_as {
        tx.cache_embedding(model, hash, &e.vector)?;
    }
    Ok(())
}

/// Inside a write transaction, once: records the embedding model on the store's first write
/// of a vector it embedded (caller vectors carry no model).
pub(crate) fn record_embedding_model<'a>(
    tx: &mut dyn StoreTx,
    vectors: impl IntoIterator<Item = &'a Embedded>,
) -> Result<()> {
    match vectors.into_iter().find_map(|e| e.cache_as.as_ref()) {
        Some((model, _)) => tx.record_embedding_model(model),
        None => Ok(()),
    }
}

impl Memory {
    /// Embeds each content, using the store's embedding cache so that the same text is never
    /// embedded twice. Runs outside the write lock.
    pub(crate) fn embed_contents(&self, memories: &[NewMemory]) -> Result<Vec<Embedded>> {
        let texts: Vec<&str> = memories.iter().map(|m| m.content.as_str()).collect();
        self.embed_texts(&texts)
    }

    /// Embeds texts through the embedding cache (see [`Memory::embed_contents`]).
    pub(crate) fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Embedded>> {
        let embedder = self.shared.embedder.get()?;
        let model = embedder.model_id().to_string();
        let hashes: Vec<String> = texts.iter().map(|t| content_hash(t)).collect();
        let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
        let mut known = self.shared.store.cached_embeddings(&model, &hash_refs)?;
        let mut missing: Vec<(&str, &str)> = Vec::new();
        let mut queued = HashSet::new();
        for (text, h) in texts.iter().zip(&hashes) {
            if !known.contains_key(h) && queued.insert(h.as_str()) {
                missing.push((h.as_str(), text));
            }
        }
        let mut fresh = HashSet::new();
        for chunk in missing.chunks(EMBED_CHUNK) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| *t).collect();
            let vectors = embedder.embed(&texts)?;
            if vectors.len() != texts.len() {
                return Err(Error::new(
                    ErrorCode::Embedding,
                    format!(
                        "embedder returned {} vectors for {} texts",
                        vectors.len(),
                        texts.len()
                    ),
                ));
            }
            for ((hash, _), v) in chunk.iter().zip(vectors) {
                if v.len() != embedder.dimensions() {
                    return Err(Error::new(
                        ErrorCode::Embedding,
                        format!(
                            "embedder returned a {}-dimensional vector, expected {}",
                            v.len(),
                            embedder.dimensions()
                        ),
                    ));
                }
                check_vector(&v).map_err(|e| {
                    Error::new(
                        ErrorCode::Embedding,
                        format!("embedder output: {}", e.message()),
                    )
                })?;
                fresh.insert(hash.to_string());
                known.insert(hash.to_string(), v);
            }
        }
        Ok(hashes
            .iter()
            .map(|h| Embedded {
                vector: known[h].clone(),
                cache_as: fresh.contains(h).then(|| (model.clone(), h.clone())),
            })
            .collect())
    }

    pub(crate) fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let embedder = self.shared.embedder.get()?;
        let mut v = embedder.embed(&[query])?;
        v.pop()
            .ok_or_else(|| Error::new(ErrorCode::Embedding, "embedder returned no vector"))
    }
}
