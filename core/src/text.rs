//! Text analysis shared by indexing and querying: normalisation, word and CJK segmentation,
//! English stemming, stop words, and the edit distance used by fuzzy search.
//!
//! FTS5's own tokenizers cannot serve CJK well (`unicode61` keeps a run of ideographs as one
//! token; `trigram` cannot match two-character words such as 咖啡), so the index holds a
//! pre-tokenised column: stemmed words for alphabetic scripts, unigrams and bigrams for CJK.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, OnceLock};

use rust_stemmers::{Algorithm, Stemmer};

/// A piece of analysed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A word of an alphabetic script (lowercased, apostrophes dropped).
    Word(String),
    /// A run of CJK characters (Han, kana, Hangul).
    Cjk(Vec<char>),
}

/// True for characters written without spaces between words.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0xFF66..=0xFF9D    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK Extensions B–F, compatibility supplement
}

/// Folds full-width ASCII (common in CJK text) to ASCII and lowercases.
fn fold(c: char) -> impl Iterator<Item = char> {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_lowercase()
}

/// Splits text into words and CJK runs, in order.
pub(crate) fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<Piece>| {
        if !word.is_empty() {
            out.push(Piece::Word(std::mem::take(word)));
        }
    };
    let flush_cjk = |cjk: &mut Vec<char>, out: &mut Vec<Piece>| {
        if !cjk.is_empty() {
            out.push(Piece::Cjk(std::mem::take(cjk)));
        }
    };
    let mut chars = text.chars().flat_map(fold).peekable();
    while let Some(c) = chars.next() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            word.push(c);
        } else if (c == '\'' || c == '\u{2019}')
            && !word.is_empty()
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() && !is_cjk(*n))
        {
            // "user's" → "users", "don't" → "dont": one word, as people search it.
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The stem of an (already lowercased) word.
pub(crate) fn stem(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphabetic()) {
        cached_stem(word)
    } else {
        word.to_string()
    }
}

/// Words stemmed per thread before the cache starts afresh (a few MB at most).
const STEM_CACHE_WORDS: usize = 50_000;

/// Snowball stemming dominated keyword scoring, which stems every candidate's words; the
/// words of a store repeat, so each thread remembers the stems it computed.
fn cached_stem(word: &str) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, String>> =
            std::cell::RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        if let Some(stem) = cache.borrow().get(word) {
            return stem.clone();
        }
        let stem = stemmer().stem(word).into_owned();
        let mut cache = cache.borrow_mut();
        if cache.len() >= STEM_CACHE_WORDS {
            cache.clear();
        }
        cache.insert(word.to_string(), stem.clone());
        stem
    })
}

/// A text's indexed terms ([`index_terms`]), counted: what BM25 needs of a memory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TermCounts {
    length: usize,
    /// Each distinct term and how often it occurs, sorted by term.
    counts: Vec<(Box<str>, u32)>,
}

impl TermCounts {
    fn of(text: &str) -> TermCounts {
        let mut terms = index_terms(text);
        let length = terms.len();
        terms.sort_unstable();
        let mut counts: Vec<(Box<str>, u32)> = Vec::new();
        for term in terms {
            match counts.last_mut() {
                Some((last, n)) if **last == *term => *n += 1,
                _ => counts.push((term.into_boxed_str(), 1)),
            }
        }
        TermCounts { length, counts }
    }

    /// How many indexed terms the text has.
    pub(crate) fn length(&self) -> usize {
        self.length
    }

    /// How often `term` occurs among them.
    pub(crate) fn frequency(&self, term: &str) -> u32 {
        self.counts
            .binary_search_by(|(t, _)| (**t).cmp(term))
            .map_or(0, |i| self.counts[i].1)
    }
}

/// Distinct terms (summed over texts) whose [`TermCounts`] are kept per generation: about
/// 50 bytes each, so two generations hold at most some 50 MB, ~30,000 conversational turns
/// each.
const TERM_COUNTS_KEPT: usize = 500_000;

/// The [`TermCounts`] of `text`. Keyword search scores every memory of a small scope (or
/// hundreds of candidates) per query, and tokenising them again each time cost more than the
/// rest of the search: the counts are kept in a bounded cache shared by the process, keyed by
/// the text itself (a keyed hash, checked against the text's length), so a memory's counts
/// are reused by every later search, whatever its store, until it is evicted (the least
/// recently used generation goes first).
pub(crate) fn term_counts(text: &str) -> Arc<TermCounts> {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    static CACHE: OnceLock<Mutex<TermCountsCache>> = OnceLock::new();
    let key = (
        HASHER.get_or_init(RandomState::new).hash_one(text),
        text.len(),
    );
    let cache = CACHE.get_or_init(Mutex::default);
    let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = lock().get(&key) {
        return found;
    }
    // Tokenised outside the lock: other threads' searches go on meanwhile.
    let counts = Arc::new(TermCounts::of(text));
    lock().insert(key, counts.clone());
    counts
}

/// Two generations of [`TermCounts`] by (hash, length) of their text, bounded by the terms
/// they hold: a hit in the previous one moves to the current one, and a full current one
/// becomes the previous one.
#[derive(Default)]
struct TermCountsCache {
    current: HashMap<(u64, usize), Arc<TermCounts>>,
    /// Distinct terms held by `current`.
    current_terms: usize,
    previous: HashMap<(u64, usize), Arc<TermCounts>>,
}

impl TermCountsCache {
    fn get(&mut self, key: &(u64, usize)) -> Option<Arc<TermCounts>> {
        if let Some(found) = self.current.get(key) {
            return Some(found.clone());
        }
        let found = self.previous.remove(key)?;
        self.insert(*key, found.clone());
        Some(found)
    }

    fn insert(&mut self, key: (u64, usize), counts: Arc<TermCounts>) {
        if self.current_terms + counts.counts.len() > TERM_COUNTS_KEPT {
            self.previous = std::mem::take(&mut self.current);
            self.current_terms = 0;
        }
        self.current_terms += counts.counts.len();
        self.current.insert(key, counts);
    }
}

const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "are", "as", "at", "be", "been", "being", "but", "by", "can",
    "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he",
    "her", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my",
    "of", "on", "or", "our", "she", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "whom", "why", "will", "with", "would", "you", "your",
];

/// True for English function words that carry no meaning for search.
pub(crate) fn is_stop_word(word: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| STOP_WORDS.iter().copied().collect())
        .contains(word)
}

/// The terms stored in the keyword index for a text: stems of non-stop words, and for CJK
/// every unigram and bigram.
pub(crate) fn index_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Word(w) => {
                if !is_stop_word(&w) {
                    terms.push(stem(&w));
                }
            }
            Piece::Cjk(run) => {
                terms.extend(run.iter().map(|c| c.to_string()));
                terms.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
            }
        }
    }
    terms
}

/// The terms a keyword query looks for: stems of non-stop words, and for CJK the bigrams of
/// each run (a single character stands for itself). Distinct, in first-seen order.
pub(crate) fn query_terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    for piece in pieces(text) {
        let new: Vec<String> = match piece {
            Piece::Word(w) if is_stop_word(&w) => continue,
            Piece::Word(w) => vec![stem(&w)],
            Piece::Cjk(run) if run.len() == 1 => vec![run[0].to_string()],
            Piece::Cjk(run) => run.windows(2).map(|w| w.iter().collect()).collect(),
        };
        for t in new {
            if seen.insert(t.clone()) {
                terms.push(t);
            }
        }
    }
    terms
}

/// The words of a text that fuzzy search can match: lowercased, non-stop, at least three
/// characters, not CJK. Distinct.
pub(crate) fn fuzzy_vocabulary(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    pieces(text)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Word(w) if w.chars().count() >= 3 && !is_stop_word(&w) => Some(w),
            _ => None,
        })
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// An FTS5 query string matching any of the terms (each quoted, so no term is read as syntax).
pub(crate) fn fts_any(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// An FTS5 query string matching all of the terms.
pub(crate) fn fts_all(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Lowercased text with runs of white space folded to one space, for exact-phrase checks.
pub(crate) fn normalise_phrase(text: &str) -> String {
    let lowered: String = text.chars().flat_map(fold).collect();
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the normalised `haystack` holds the normalised `needle` on word boundaries: a
/// match may not begin or end inside a word of an alphabetic script ("to be" is not in
/// "to berlin"); CJK, written without spaces, needs no boundary.
pub(crate) fn contains_phrase(haystack: &str, needle: &str) -> bool {
    let wordish = |c: char| c.is_alphanumeric() && !is_cjk(c);
    let starts_word = needle.chars().next().is_some_and(wordish);
    let ends_word = needle.chars().next_back().is_some_and(wordish);
    let mut from = 0;
    while let Some(pos) = haystack[from..].find(needle) {
        let at = from + pos;
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        let clean_start = !starts_word || before.is_none_or(|c| !wordish(c));
        let clean_end = !ends_word || after.is_none_or(|c| !wordish(c));
        if clean_start && clean_end {
            return true;
        }
        from = at + haystack[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The largest edit distance at which a query word of this length still matches.
pub(crate) fn allowed_typos(word_len: usize) -> usize {
    match word_len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), or `None`
/// once it must exceed `max`.
pub(crate) fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// The trigrams of a word, for fuzzy candidate lookup.
pub(crate) fn trigrams(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut seen = HashSet::new();
    chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_counts_count_what_index_terms_hold() {
        let text = "Alice's running club: she runs and RUNS, 我喜欢喝咖啡，咖啡很好 the end";
        let indexed = index_terms(text);
        let counts = term_counts(text);
        assert_eq!(counts.length(), indexed.len());
        for t in ["run", "alic", "咖啡", "咖", "end", "absent"] {
            let expected = indexed.iter().filter(|x| *x == t).count() as u32;
            assert_eq!(counts.frequency(t), expected, "{t}");
        }
        assert_eq!(counts.frequency("run"), 3, "running, runs, RUNS");
        // Cached by the text: the same counts again, another text's for another text.
        assert!(Arc::ptr_eq(&counts, &term_counts(text)));
        assert_eq!(term_counts("runs home").frequency("run"), 1);
        assert_eq!(term_counts("runs home!").length(), 2);
    }

    #[test]
    fn cjk_runs_become_unigrams_and_bigrams() {
        let terms = index_terms("我喜欢喝咖啡，特别是拿铁");
        for t in ["咖啡", "拿铁", "喜欢", "咖"] {
            assert!(terms.contains(&t.to_string()), "{t} missing from {terms:?}");
        }
        assert_eq!(query_terms("咖啡"), vec!["咖啡"]);
        assert_eq!(query_terms("猫"), vec!["猫"]);
    }

    #[test]
    fn english_is_stemmed_and_stop_words_dropped() {
        assert_eq!(query_terms("She loves the pizzas"), vec!["love", "pizza"]);
        assert_eq!(index_terms("Alice's cats"), vec!["alic", "cat"]);
        assert_eq!(query_terms("ＡＢＣ corp"), vec!["abc", "corp"]);
    }

    #[test]
    fn mixed_scripts_split_cleanly() {
        let p = pieces("用Rust写代码 fast!");
        assert_eq!(
            p,
            vec![
                Piece::Cjk(vec!['用']),
                Piece::Word("rust".into()),
                Piece::Cjk("写代码".chars().collect()),
                Piece::Word("fast".into()),
            ]
        );
    }

    #[test]
    fn edit_distance_handles_typos() {
        assert_eq!(edit_distance("piza", "pizza", 1), Some(1));
        assert_eq!(edit_distance("fransisco", "francisco", 2), Some(1));
        assert_eq!(edit_distance("teh", "the", 1), Some(1));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance("", "ab", 2), Some(2));
    }

    #[test]
    fn phrases_normalise() {
        assert_eq!(normalise_phrase("  Hello\n  World "), "hello world");
        assert_eq!(fts_any(&["a\"b".into()]), "\"a\"\"b\"");
        assert!(contains_phrase("i want to be free", "to be"));
        assert!(!contains_phrase("i went to berlin", "to be"));
        assert!(!contains_phrase("we renew york deals", "new york"));
        assert!(contains_phrase("renew york, new york!", "new york"));
        assert!(contains_phrase("我喜欢喝咖啡", "咖啡"));
        assert!(contains_phrase("alice's bike", "alice"));
    }
}
