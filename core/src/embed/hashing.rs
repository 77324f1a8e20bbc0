//! A deterministic, non-semantic embedder for fast tests.

use super::Embedder;
use crate::error::Result;

/// A deterministic bag-of-words embedder for tests: no model, no files, microseconds per text.
///
/// Each text is lowercased and split into words on every non-alphanumeric character (each
/// CJK ideograph or kana is a word of its own); every word is hashed with 64-bit FNV-1a (stable
/// across runs, platforms and versions) into one of `dimensions` buckets with a sign, the
/// buckets are summed and the vector is L2-normalised. Texts that share words therefore have
/// a higher cosine than unrelated ones, but synonyms mean nothing to it. A text without any
/// word gets the fixed unit vector `e_0`.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimensions: usize,
    model_id: String,
}

impl HashingEmbedder {
    /// A hashing embedder producing vectors of `dimensions` components.
    ///
    /// # Panics
    ///
    /// If `dimensions` is 0.
    pub fn new(dimensions: usize) -> Self {
        assert!(
            dimensions > 0,
            "HashingEmbedder needs at least one dimension"
        );
        HashingEmbedder {
            dimensions,
            model_id: format!("hashing-{dimensions}"),
        }
    }

    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0f32; self.dimensions];
        for_each_token(text, |token| {
            let hash = fnv1a(token.as_bytes());
            let bucket = usize::try_from(hash % self.dimensions as u64).unwrap_or(0);
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign;
        });
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        } else {
            // No words, or words that cancelled out: a fixed unit vector, never NaN.
            vector.iter_mut().for_each(|x| *x = 0.0);
            vector[0] = 1.0;
        }
        vector
    }
}

impl Embedder for HashingEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Calls `f` with every lowercased token of `text`.
fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                f(&word);
                word.clear();
            }
            let mut buf = [0u8; 4];
            f(c.encode_utf8(&mut buf));
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            f(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// Whether `c` is a CJK ideograph or a Japanese kana (scripts written without spaces).
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'     // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'   // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK Unified Ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK Compatibility Ideographs
        | '\u{20000}'..='\u{3134F}' // CJK Extensions B–G and compatibility supplement
    )
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn tokenization() {
        assert_eq!(tokens("Hello, World! x2"), ["hello", "world", "x2"]);
        assert_eq!(tokens("我爱Rust语言"), ["我", "爱", "rust", "语", "言"]);
        assert!(tokens(" ,.;!? ").is_empty());
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn empty_text_is_unit_e0() {
        let v = HashingEmbedder::new(8).embed_one("  ...  ");
        assert_eq!(v, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
