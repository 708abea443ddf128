//! How a list from the user's input (a shape, a file's dimensions, milestones) is echoed in a
//! message: whole when short, else its first items and its length, so that a shape of 100,000
//! axes makes a line of a hundred bytes, not of 300 KB. Every crate's messages use this one
//! function (graphc-spec is the crate every user-facing crate depends on).

use std::fmt::Display;

/// Items of a list shown before the rest is summarized.
const SHOWN_ITEMS: usize = 8;

/// `items` as `[3, 4]` (what `{:?}` prints for a short list of numbers), or, beyond
/// [`SHOWN_ITEMS`], the first ones and the count: `[1, 1, 1, 1, 1, 1, 1, 1, … (100000 in all)]`.
pub fn shown_list<T: Display>(items: &[T]) -> String {
    format!("[{}]", shown_items(items))
}

/// [`shown_list`] without the brackets: `0.weight, 0.bias`, for names and tuples.
pub fn shown_items<T: Display>(items: &[T]) -> String {
    let mut text = String::new();
    for (i, item) in items.iter().take(SHOWN_ITEMS).enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&item.to_string());
    }
    if items.len() > SHOWN_ITEMS {
        text.push_str(&format!(", … ({} in all)", items.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lists_are_shown_whole_and_long_ones_capped_with_their_length() {
        assert_eq!(shown_list::<usize>(&[]), "[]");
        assert_eq!(shown_list(&[3usize, 4]), format!("{:?}", [3usize, 4]));
        let axes = vec![1usize; 100_000];
        assert_eq!(
            shown_list(&axes),
            "[1, 1, 1, 1, 1, 1, 1, 1, … (100000 in all)]"
        );
        assert_eq!(shown_items(&["0.weight", "0.bias"]), "0.weight, 0.bias");
    }
}
