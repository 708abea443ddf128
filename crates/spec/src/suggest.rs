//! "Did you mean" suggestions: edit distance and case/underscore-insensitive matching.

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

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), over chars.
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
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
