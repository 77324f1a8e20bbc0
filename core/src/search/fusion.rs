//! Reciprocal Rank Fusion: each engine contributes `weight / (k + rank)` per hit.

use std::collections::HashMap;

/// Fuses ranked lists (best first) into one, best first, with the fused score scaled so that
/// a hit ranked first by every weighted engine scores 1.
pub(crate) fn rrf(lists: &[(&[i64], f32)], k: f32) -> Vec<(i64, f32)> {
    let mut scores: HashMap<i64, f32> = HashMap::new();
    for (list, weight) in lists {
        if *weight <= 0.0 {
            continue;
        }
        for (i, key) in list.iter().enumerate() {
            *scores.entry(*key).or_default() += weight / (k + i as f32 + 1.0);
        }
    }
    let best: f32 = lists
        .iter()
        .filter(|(_, w)| *w > 0.0)
        .map(|(_, w)| w / (k + 1.0))
        .sum();
    let mut fused: Vec<(i64, f32)> = scores
        .into_iter()
        .map(|(key, s)| (key, if best > 0.0 { s / best } else { 0.0 }))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        let vector = [1i64, 2, 3];
        let keyword = [2i64, 4, 1];
        let fused = rrf(&[(&vector, 1.0), (&keyword, 1.0)], 60.0);
        assert_eq!(fused[0].0, 2, "{fused:?}");
        assert_eq!(fused[1].0, 1);
        assert!(fused[0].1 <= 1.0);
        let both_first = rrf(&[(&[9i64], 1.0), (&[9i64], 2.0)], 60.0);
        assert!((both_first[0].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn zero_weight_engines_are_ignored() {
        let fused = rrf(&[(&[1i64], 1.0), (&[2i64], 0.0)], 60.0);
        assert_eq!(fused.len(), 1);
    }
}
