//! Per-epoch sample order (a seeded shuffle) and the batches of an epoch.

use std::ops::Range;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixed into the shuffle seed so the shuffle's stream differs from other uses of `seed`.
const SHUFFLE_DOMAIN: u64 = 0x5348_5546_464C_4531; // "SHUFFLE1"

/// The order in which epoch `epoch` visits the `n` samples.
///
/// The identity when `shuffle` is false; otherwise a Fisher–Yates permutation drawn from a
/// `ChaCha8Rng` keyed by `seed` (mixed with a constant) on stream `epoch`, with unbiased bounded
/// integers by Lemire's method on `next_u64`. It depends on `(seed, epoch)` only, so any epoch's
/// order can be recomputed on resume, and on no `rand` sampling algorithm that could change.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    if shuffle {
        permutation(n, seed ^ SHUFFLE_DOMAIN, epoch)
    } else {
        (0..n).collect()
    }
}

/// A Fisher–Yates permutation of `0..n` drawn from a `ChaCha8Rng` seeded with `key` on stream
/// `stream` (see [`epoch_order`]).
pub(crate) fn permutation(n: usize, key: u64, stream: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if n > 1 {
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        rng.set_stream(stream);
        for i in (1..n).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// A uniform integer in `0..bound` (`bound > 0`), by Lemire's multiply-and-reject method.
fn below(rng: &mut impl RngCore, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// The batches of an epoch as ranges of positions in its order (see [`epoch_order`]).
///
/// Batches hold `batch_size` samples; the last holds the remainder, or is left out when
/// `drop_last`. A `batch_size` of 0 yields no batches (the spec rejects it).
pub fn batch_ranges(
    n: usize,
    batch_size: usize,
    drop_last: bool,
) -> impl ExactSizeIterator<Item = Range<usize>> + Clone {
    let count = match (batch_size, drop_last) {
        (0, _) => 0,
        (b, true) => n / b,
        (b, false) => n.div_ceil(b),
    };
    (0..count).map(move |i| i * batch_size..((i + 1) * batch_size).min(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn epoch_order_is_identity_without_shuffle() {
        assert_eq!(epoch_order(5, false, 7, 3), vec![0, 1, 2, 3, 4]);
        assert_eq!(epoch_order(0, true, 7, 3), Vec::<usize>::new());
    }

    #[test]
    fn epoch_order_is_a_deterministic_permutation_per_seed_and_epoch() {
        let a = epoch_order(100, true, 42, 3);
        assert_eq!(a, epoch_order(100, true, 42, 3));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        assert_ne!(a, epoch_order(100, true, 42, 4), "differs across epochs");
        assert_ne!(a, epoch_order(100, true, 43, 3), "differs across seeds");
    }

    #[test]
    fn epoch_order_is_roughly_uniform() {
        let mut counts = HashMap::new();
        for epoch in 0..6000 {
            *counts
                .entry(epoch_order(3, true, 1, epoch))
                .or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 6);
        for (order, &c) in &counts {
            assert!(
                (800..1200).contains(&c),
                "{order:?} drawn {c} times of 6000"
            );
        }
    }

    #[test]
    fn batch_ranges_keep_a_partial_last_batch_unless_drop_last() {
        let all: Vec<_> = batch_ranges(10, 4, false).collect();
        assert_eq!(all, vec![0..4, 4..8, 8..10]);
        let dropped: Vec<_> = batch_ranges(10, 4, true).collect();
        assert_eq!(dropped, vec![0..4, 4..8]);
        assert_eq!(batch_ranges(8, 4, false).len(), 2);
        assert_eq!(batch_ranges(8, 4, true).len(), 2);
        assert_eq!(batch_ranges(3, 4, true).len(), 0);
        assert_eq!(batch_ranges(3, 4, false).collect::<Vec<_>>(), vec![0..3]);
        assert_eq!(batch_ranges(0, 4, false).len(), 0);
        assert_eq!(batch_ranges(5, 0, false).len(), 0);
    }
}
