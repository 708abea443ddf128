//! "Did you mean" suggestions: edit distance and case/underscore-insensitive matching.

use strsim::osa_distance;

/// The best candidate for a misspelled `word`: one equal to it ignoring case, `_` and `-`,
/// else the nearest within edit distance 2 (and not a complete rewrite of a short word).
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = normalize(word);
    if let Some(c) = candidates.iter().find(|c| normalize(c) == norm) {
        return Some(c);
    }
    let wlen = word.chars().count();
    let mut best: Option<(usize, &'c str)> = None;
    for &c in candidates {
        let clen = c.chars().count();
        if wlen.abs_diff(clen) > 2 {
            continue;
        }
        let d = osa_distance(word, c);
        if d <= 2 && d < wlen.max(clen) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `"; did you mean `x`?"` or an empty string.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// Lower case without `_` and `-`, so `BatchSize`, `batch-size` and `batch_size` compare equal.
fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(osa_distance("batchsize", "batch_size"), 1);
        assert_eq!(osa_distance("lr", "rl"), 1);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(osa_distance("é", "e"), 1);
    }

    #[test]
    fn suggestion_prefers_normalized_match_then_nearest() {
        let keys = ["train", "valid", "batch_size", "shuffle"];
        assert_eq!(suggest("batchsize", &keys), Some("batch_size"));
        assert_eq!(suggest("BatchSize", &keys), Some("batch_size"));
        assert_eq!(suggest("shufle", &keys), Some("shuffle"));
        assert_eq!(suggest("epochs", &keys), None);
        assert_eq!(suggest("x", &["lr"]), None);
    }
}
