//! bfloat16 rounding: the one definition every backend and kernel follows.

/// `x` rounded to the nearest bfloat16 (the upper 16 bits of an f32), ties to even, returned
/// as the f32 with those upper bits and zero lower bits. NaN gives the quiet NaN
/// `0x7FC0_0000`, as `c10::BFloat16`'s conversion does; infinities and zeros (with their
/// sign) stay; subnormals round like any other value (bf16 has f32's exponent range);
/// finite values past bf16's largest finite value round to infinity.
pub fn round_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return f32::from_bits(0x7FC0_0000);
    }
    let bits = x.to_bits();
    // Adding 0x7FFF plus the kept part's lowest bit carries into the kept part exactly when
    // the dropped half is above one half, or equal to it with an odd kept part. A NaN is
    // excluded above, so the carry cannot leave the exponent's all-ones pattern wrongly;
    // the largest finite values carry into the infinity pattern, as rounding demands.
    let lsb = (bits >> 16) & 1;
    f32::from_bits(bits.wrapping_add(0x7FFF + lsb) & 0xFFFF_0000)
}

#[cfg(test)]
mod tests {
    use super::round_bf16;

    fn bits(x: f32) -> u32 {
        round_bf16(x).to_bits()
    }

    #[test]
    fn ties_go_to_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even neighbour is 1.
        assert_eq!(bits(f32::from_bits(0x3F80_8000)), 0x3F80_0000);
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: it goes up.
        assert_eq!(bits(f32::from_bits(0x3F81_8000)), 0x3F82_0000);
        // Just above and below a half.
        assert_eq!(bits(f32::from_bits(0x3F80_8001)), 0x3F81_0000);
        assert_eq!(bits(f32::from_bits(0x3F80_7FFF)), 0x3F80_0000);
        // Negative values round by magnitude.
        assert_eq!(bits(f32::from_bits(0xBF80_8000)), 0xBF80_0000);
        assert_eq!(bits(f32::from_bits(0xBF81_8000)), 0xBF82_0000);
        // Representable values stay.
        for v in [0.0f32, -0.0, 1.0, -2.5, 0.15625, 3.0e38] {
            let r = f32::from_bits(v.to_bits() & 0xFFFF_0000);
            assert_eq!(round_bf16(r).to_bits(), r.to_bits());
        }
    }

    #[test]
    fn nan_inf_and_overflow() {
        assert_eq!(bits(f32::NAN), 0x7FC0_0000);
        // A NaN whose payload lies only in the dropped bits stays a NaN (not infinity).
        assert!(round_bf16(f32::from_bits(0x7F80_0001)).is_nan());
        assert!(round_bf16(f32::from_bits(0xFF80_0001)).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        // f32::MAX is past bf16's largest finite value (0x7F7F_0000) by more than half a step.
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(-f32::MAX), f32::NEG_INFINITY);
        assert_eq!(bits(f32::from_bits(0x7F7F_7FFF)), 0x7F7F_0000);
    }

    #[test]
    fn subnormals_round_like_normals() {
        // The smallest subnormal f32 is far below half of bf16's smallest subnormal (2^-133).
        assert_eq!(bits(f32::from_bits(1)), 0);
        assert_eq!(bits(f32::from_bits(0x8000_0001)), 0x8000_0000);
        // Exactly half of it ties to the even neighbour, zero; just above rounds up.
        assert_eq!(bits(f32::from_bits(0x0000_8000)), 0);
        assert_eq!(bits(f32::from_bits(0x0000_8001)), 0x0001_0000);
        assert_eq!(bits(f32::from_bits(0x0001_8000)), 0x0002_0000);
        // The largest subnormal rounds up to the smallest normal.
        assert_eq!(bits(f32::from_bits(0x007F_FFFF)), 0x0080_0000);
    }
}
