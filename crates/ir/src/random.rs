//! The counter-based generator behind [`Op::RandomUniform`](crate::Op::RandomUniform):
//! Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as
//! easy as 1, 2, 3", SC'11, section 4), written from the paper's definition,
//! and the layout that turns (seed, stream, step, element) into its counter
//! and key. Every backend computes these bits; this is the definition they
//! are checked against.
//!
//! Layout: element `i` of a `RandomUniform { seed, stream, .. }` at step `t`
//! is output word `i % 4` of one Philox4x32-10 call with
//! `key = [seed as u32, (seed >> 32) as u32]` and
//! `counter = [i / 4, stream, t as u32, (t >> 32) as u32]`
//! (element blocks below 2^32, enforced by the type rule). For a fixed key
//! Philox is a bijection of the 128-bit counter, so every (stream, step,
//! element block) of one seed draws distinct bits, and one call yields four
//! elements. The f32 is the word's top 24 bits times 2^-24: exact, in [0, 1).
//!
//! With a first row `r` (the step operand `[t, r]`), element `i` is global
//! element `g = r·row + i` of the same layout (`row` the elements per index
//! of axis 0, [`row_elements`]; `r·row` mod 2^64, plus `i` without
//! wrapping, and the block `g / 4` mod 2^32 — a global draw past 2^34
//! elements wraps, as no one process could have drawn it), so a share of
//! rows draws what the whole batch draws there.

/// The first round multiplier (the paper's `M_{4x32,0}`).
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// The second round multiplier (`M_{4x32,1}`).
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// The Weyl increment of key word 0 per round (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// The Weyl increment of key word 1 per round (sqrt(3) - 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;
/// Rounds of Philox4x32-10.
pub const PHILOX_ROUNDS: u32 = 10;
/// Elements drawn from one Philox call.
pub const ELEMENTS_PER_BLOCK: usize = 4;
/// A `RandomUniform` has at most this many elements, so that its element
/// block index fits counter word 0.
pub const RANDOM_MAX_ELEMENTS: u64 = (u32::MAX as u64 + 1) * ELEMENTS_PER_BLOCK as u64;

/// The high and low halves of the 64-bit product `a · b`.
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let product = u64::from(a) * u64::from(b);
    ((product >> 32) as u32, product as u32)
}

/// The key of round `r` (0-based): the Weyl sequence `key + r·W`, mod 2^32.
pub fn philox_round_key(key: [u32; 2], round: u32) -> [u32; 2] {
    [
        key[0].wrapping_add(PHILOX_W0.wrapping_mul(round)),
        key[1].wrapping_add(PHILOX_W1.wrapping_mul(round)),
    ]
}

/// Philox4x32-10 of `counter` under `key`. One round, with the paper's
/// S-box `(hi, lo) = mulhilo(M, x)`:
/// `[hi(M1·x2) ^ x1 ^ k0, lo(M1·x2), hi(M0·x0) ^ x3 ^ k1, lo(M0·x0)]`,
/// the key bumped by `(W0, W1)` between rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut x = counter;
    for round in 0..PHILOX_ROUNDS {
        let k = philox_round_key(key, round);
        let (hi0, lo0) = mulhilo(PHILOX_M0, x[0]);
        let (hi1, lo1) = mulhilo(PHILOX_M1, x[2]);
        x = [hi1 ^ x[1] ^ k[0], lo1, hi0 ^ x[3] ^ k[1], lo0];
    }
    x
}

/// The Philox key of a seed: its low and high 32-bit halves.
pub fn random_key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The Philox counter of element block `block` (elements `4·block .. 4·block + 4`)
/// of stream `stream` at step `step`.
pub fn random_counter(block: u32, stream: u32, step: u64) -> [u32; 4] {
    [block, stream, step as u32, (step >> 32) as u32]
}

/// A random word as an f32 in [0, 1): its top 24 bits times 2^-24, exactly.
pub fn uniform_from_bits(bits: u32) -> f32 {
    (bits >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The elements of one index of axis 0 of a draw of `shape` (all of them for a
/// scalar), by which a first row offsets the draw's elements.
pub fn row_elements(shape: &[usize]) -> usize {
    shape.iter().skip(1).product()
}

/// The global index of the first element of a draw of `shape` that starts at row
/// `row` (two's complement, mod 2^64: see the module header).
pub fn first_element(row: i64, shape: &[usize]) -> u64 {
    (row as u64).wrapping_mul(row_elements(shape) as u64)
}

/// The four uniform values of element block `block` (see the module header).
pub fn random_uniform_block(seed: u64, stream: u32, step: u64, block: u32) -> [f32; 4] {
    philox4x32_10(random_counter(block, stream, step), random_key(seed)).map(uniform_from_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers of Philox4x32-10 from Random123's `tests/kat_vectors`
    /// (github.com/DEShawResearch/random123, v1.14.0 / commit 9545ff64, the
    /// three `philox4x32 10` lines; columns: counter ×4, key ×2, result ×4).
    /// The third input is the hexadecimal digits of pi.
    const KNOWN_ANSWERS: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];

    #[test]
    fn philox4x32_10_matches_random123_known_answers() {
        for (counter, key, expected) in KNOWN_ANSWERS {
            assert_eq!(
                philox4x32_10(counter, key),
                expected,
                "counter {counter:08x?} key {key:08x?}"
            );
        }
    }

    #[test]
    fn uniform_values_are_exact_multiples_of_2_pow_minus_24_in_0_1() {
        assert_eq!(uniform_from_bits(0), 0.0);
        assert_eq!(uniform_from_bits(0xff), 0.0);
        assert_eq!(uniform_from_bits(0x100), 2f32.powi(-24));
        assert_eq!(uniform_from_bits(u32::MAX), 1.0 - 2f32.powi(-24));
        assert!(uniform_from_bits(u32::MAX) < 1.0);
    }

    #[test]
    fn the_layout_puts_seed_in_the_key_and_block_stream_step_in_the_counter() {
        let seed = 0x0123_4567_89ab_cdef;
        assert_eq!(random_key(seed), [0x89ab_cdef, 0x0123_4567]);
        assert_eq!(random_counter(7, 3, 0x0000_0005_0000_0009), [7, 3, 9, 5]);
        let words = philox4x32_10([7, 3, 9, 5], [0x89ab_cdef, 0x0123_4567]);
        assert_eq!(
            random_uniform_block(seed, 3, 0x0000_0005_0000_0009, 7),
            words.map(uniform_from_bits)
        );
    }
}
