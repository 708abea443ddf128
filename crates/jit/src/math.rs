//! Inline polynomial `exp`, `log`, `log1p`, `tanh`, `sigmoid`, `sin` and `cos` in CLIF
//! (Cranelift has no transcendental instructions), after Cephes' single
//! precision routines: range reduction, a minimax polynomial, reconstruction.
//!
//! Accuracy (measured by `tests/it/math_accuracy.rs` against f64 over every 97th (`GRAPHC_FULL_ACCURACY=1`)
//! f32 bit pattern, all binades and both signs): at most 4 ulp wherever the
//! exact result is a normal f32; measured maxima are exp 1.0, log 0.78,
//! log1p 2.4, tanh 1.3, sigmoid 2.3 ulp. Outside the range they saturate cleanly: `exp` overflows to
//! `+inf` above ~88.72 and underflows through subnormals to `0`; `log(0) =
//! -inf`, `log(x < 0) = NaN`, `log(+inf) = +inf`; `tanh` reaches exactly ±1 and
//! `sigmoid` exactly 0 and 1; NaN in gives NaN out.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use crate::simd::Mode;

/// `e^x`: `x = k·ln2 + r` with |r| ≤ ln2/2 (ln2 split in two for an exact
/// `k·C1`), a degree-5 polynomial for `e^r`, then `2^k` applied in two halves
/// so that results in the subnormal range are rounded once, correctly.
pub(crate) fn exp(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    // Clamp so that k stays in [-151, 129]; comparisons are false for NaN, so NaN survives.
    let lo = m.f(b, -104.0);
    let hi = m.f(b, 89.0);
    let below = m.cmp(b, FloatCC::LessThan, x, lo);
    let x = m.select(b, below, lo, x);
    let above = m.cmp(b, FloatCC::GreaterThan, x, hi);
    let x = m.select(b, above, hi, x);

    let log2e = m.f(b, LOG2E);
    let magic = m.f(b, MAGIC);
    let t = m.fma(b, x, log2e, magic);
    let k = b.ins().fsub(t, magic);
    let neg_c1 = m.f(b, -C1);
    let neg_c2 = m.f(b, -C2);
    let r = m.fma(b, k, neg_c1, x);
    let r = m.fma(b, k, neg_c2, r);
    let z = b.ins().fmul(r, r);
    let p = m.poly(b, r, &P);
    let y = m.fma(b, p, z, r);
    let one = m.f(b, 1.0);
    let y = b.ins().fadd(y, one);

    let t_bits = m.bits(b, t);
    let magic_bits = m.i(b, MAGIC.to_bits() as i32);
    let ki = b.ins().isub(t_bits, magic_bits);
    let one_i = shift(b, 1);
    let k1 = b.ins().sshr(ki, one_i);
    let k2 = b.ins().isub(ki, k1);
    let s1 = pow2(b, m, k1);
    let s2 = pow2(b, m, k2);
    let y = b.ins().fmul(y, s1);
    b.ins().fmul(y, s2)
}

/// A shift amount (always a scalar, also for vector shifts).
fn shift(b: &mut FunctionBuilder, by: i64) -> Value {
    b.ins().iconst(types::I32, by)
}

/// `2^k` for integer lanes `k` in the normal exponent range.
fn pow2(b: &mut FunctionBuilder, m: Mode, k: Value) -> Value {
    let bias = m.i(b, 127);
    let e = b.ins().iadd(k, bias);
    let by = shift(b, 23);
    let e = b.ins().ishl(e, by);
    m.float_of_bits(b, e)
}

/// `ln x`: `x = 2^e · f` with f in [√½, √2), a degree-8 polynomial in `f - 1`,
/// and `e·ln2` added in two parts. Subnormal inputs are scaled by 2²³ first.
pub(crate) fn log(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    const P: [f32; 9] = [
        7.037_683_6e-2,
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        0.333_333_3,
    ];
    let min_normal = m.f(b, f32::MIN_POSITIVE);
    let tiny = m.cmp(b, FloatCC::LessThan, x, min_normal);
    let scale = m.f(b, 8_388_608.0);
    let scaled = b.ins().fmul(x, scale);
    let xs = m.select(b, tiny, scaled, x);
    let minus_23 = m.f(b, -23.0);
    let zero = m.f(b, 0.0);
    let e_adjust = m.select(b, tiny, minus_23, zero);

    let bits = m.bits(b, xs);
    let by = shift(b, 23);
    let exponent = b.ins().ushr(bits, by);
    let bias = m.i(b, 126);
    let exponent = b.ins().isub(exponent, bias);
    let e = b.ins().fcvt_from_sint(m.float(), exponent);
    let e = b.ins().fadd(e, e_adjust);
    let mantissa_mask = m.i(b, 0x007f_ffff);
    let half_bits = m.i(b, 0x3f00_0000);
    let f = b.ins().band(bits, mantissa_mask);
    let f = b.ins().bor(f, half_bits);
    let f = m.float_of_bits(b, f); // in [0.5, 1)

    let sqrt_half = m.f(b, std::f32::consts::FRAC_1_SQRT_2);
    let small = m.cmp(b, FloatCC::LessThan, f, sqrt_half);
    let one = m.f(b, 1.0);
    let e_minus = b.ins().fsub(e, one);
    let e = m.select(b, small, e_minus, e);
    let doubled = b.ins().fadd(f, f);
    let f = m.select(b, small, doubled, f);
    let f = b.ins().fsub(f, one); // exact: in [√½ - 1, √2 - 1)

    let z = b.ins().fmul(f, f);
    let p = m.poly(b, f, &P);
    let fz = b.ins().fmul(f, z);
    let y = b.ins().fmul(p, fz);
    let c2 = m.f(b, -2.121_944_4e-4);
    let y = m.fma(b, e, c2, y);
    let minus_half = m.f(b, -0.5);
    let y = m.fma(b, z, minus_half, y);
    let r = b.ins().fadd(f, y);
    let c1 = m.f(b, 0.693_359_4);
    let r = m.fma(b, e, c1, r);

    let inf = m.f(b, f32::INFINITY);
    let is_inf = m.cmp(b, FloatCC::Equal, x, inf);
    let r = m.select(b, is_inf, inf, r);
    let nan = m.f(b, f32::NAN);
    let negative_or_nan = m.cmp(b, FloatCC::UnorderedOrLessThan, x, zero);
    let r = m.select(b, negative_or_nan, nan, r);
    let neg_inf = m.f(b, f32::NEG_INFINITY);
    let is_zero = m.cmp(b, FloatCC::Equal, x, zero);
    m.select(b, is_zero, neg_inf, r)
}

/// `ln(1 + x)`: with `u = 1 + x` rounded, `ln(u) · x / (u - 1)` cancels the
/// rounding of `u` to first order (Goldberg); `x` itself where `u == 1`.
pub(crate) fn log1p(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    let one = m.f(b, 1.0);
    let u = b.ins().fadd(x, one);
    let d = b.ins().fsub(u, one);
    let lu = log(b, m, u);
    let ratio = b.ins().fdiv(x, d);
    let r = b.ins().fmul(lu, ratio);
    let inf = m.f(b, f32::INFINITY);
    let is_inf = m.cmp(b, FloatCC::Equal, u, inf);
    let r = m.select(b, is_inf, inf, r);
    let zero = m.f(b, 0.0);
    let exact = m.cmp(b, FloatCC::Equal, d, zero);
    m.select(b, exact, x, r)
}

/// `tanh x`: an odd polynomial below |x| = 0.625, else `1 - 2/(e^{2|x|} + 1)`
/// with the sign of `x` (exactly ±1 once `e^{2|x|}` overflows).
pub(crate) fn tanh(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    const P: [f32; 5] = [
        -5.704_988_7e-3,
        0.020_639_088,
        -5.373_971_6e-2,
        1.333_144_2e-1,
        -0.333_332_8,
    ];
    // tanh is odd: the magnitude is computed from |x| and x's sign put on it last, so that
    // tanh(-0) is -0 as in PyTorch (x + x·p(x²) would round -0 + +0 to +0).
    let a = b.ins().fabs(x);
    let z = b.ins().fmul(x, x);
    let p = m.poly(b, z, &P);
    let pz = b.ins().fmul(p, z);
    let small_magnitude = m.fma(b, pz, a, a);

    let two_a = b.ins().fadd(a, a);
    let e = exp(b, m, two_a);
    let one = m.f(b, 1.0);
    let ep1 = b.ins().fadd(e, one);
    let two = m.f(b, 2.0);
    let q = b.ins().fdiv(two, ep1);
    let t = b.ins().fsub(one, q);
    let sign_mask = m.i(b, i32::MIN);
    let x_bits = m.bits(b, x);
    let sign = b.ins().band(x_bits, sign_mask);
    let limit = m.f(b, 0.625);
    let small = m.cmp(b, FloatCC::LessThan, a, limit);
    let magnitude = m.select(b, small, small_magnitude, t);
    let magnitude_bits = m.bits(b, magnitude);
    let signed = b.ins().bor(magnitude_bits, sign);
    m.float_of_bits(b, signed)
}

/// `1 / (1 + e^{-x})`, the interpreter's formula with the polynomial `exp`.
pub(crate) fn sigmoid(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    let neg = b.ins().fneg(x);
    let e = exp(b, m, neg);
    let one = m.f(b, 1.0);
    let d = b.ins().fadd(e, one);
    b.ins().fdiv(one, d)
}

/// `sin x` (`cosine` false) or `cos x` (`cosine` true): `x = q·π/2 + r` with |r| ≤ π/4 (π/2 in
/// three parts, so `q·P1` and `q·P2` are exact for |q| < 2¹⁶), then Cephes' minimax
/// polynomials for `sin r` and `cos r`, the one and the sign the quadrant `q mod 4` calls for
/// picked with integer masks (`cos x` is the quadrant after `sin x`'s). Within 4 ulp for
/// |x| ≤ 100 (tests/it/math_accuracy.rs); beyond, the reduction loses digits, more the larger
/// |x|, while the result stays within [-1, 1]; NaN and ±inf give NaN.
pub(crate) fn sin_cos(b: &mut FunctionBuilder, m: Mode, x: Value, cosine: bool) -> Value {
    const MAGIC: f32 = 12_582_912.0;
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_513e-4;
    const P3: f32 = 7.549_79e-8;
    const SIN: [f32; 3] = [-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1];
    const COS: [f32; 3] = [2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2];
    let two_over_pi = m.f(b, std::f32::consts::FRAC_2_PI);
    let magic = m.f(b, MAGIC);
    let t = m.fma(b, x, two_over_pi, magic);
    let q = b.ins().fsub(t, magic);
    let mut r = x;
    for part in [P1, P2, P3] {
        let minus = m.f(b, -part);
        r = m.fma(b, q, minus, r);
    }
    // Beyond |x| ≈ 2²² the quadrant no longer fits the magic constant and `r` can leave
    // [-π/4, π/4]: clamped, the result stays within [-1, 1] (NaN passes the clamp).
    let quarter = m.f(b, std::f32::consts::FRAC_PI_4);
    let minus_quarter = m.f(b, -std::f32::consts::FRAC_PI_4);
    let r = m.min(b, r, quarter);
    let r = m.max(b, r, minus_quarter);
    let z = b.ins().fmul(r, r);
    // sin r = r + r·z·p(z)
    let ps = m.poly(b, z, &SIN);
    let rz = b.ins().fmul(r, z);
    let sin_r = m.fma(b, rz, ps, r);
    // cos r = 1 - z/2 + z²·p(z)
    let pc = m.poly(b, z, &COS);
    let zz = b.ins().fmul(z, z);
    let minus_half = m.f(b, -0.5);
    let one = m.f(b, 1.0);
    let c = m.fma(b, z, minus_half, one);
    let cos_r = m.fma(b, zz, pc, c);

    let t_bits = m.bits(b, t);
    let magic_bits = m.i(b, MAGIC.to_bits() as i32);
    let mut quadrant = b.ins().isub(t_bits, magic_bits);
    if cosine {
        let one_i = m.i(b, 1);
        quadrant = b.ins().iadd(quadrant, one_i);
    }
    // Odd quadrants take the cosine polynomial: all-ones mask where q is odd.
    let one_i = m.i(b, 1);
    let odd = b.ins().band(quadrant, one_i);
    let odd_mask = b.ins().ineg(odd);
    let sin_bits = m.bits(b, sin_r);
    let cos_bits = m.bits(b, cos_r);
    let from_cos = b.ins().band(cos_bits, odd_mask);
    let from_sin = b.ins().band_not(sin_bits, odd_mask);
    let value = b.ins().bor(from_cos, from_sin);
    // Quadrants 2 and 3 negate: bit 1 of q moved to the sign bit.
    let two_i = m.i(b, 2);
    let half_turn = b.ins().band(quadrant, two_i);
    let by = shift(b, 30);
    let sign = b.ins().ishl(half_turn, by);
    let signed = b.ins().bxor(value, sign);
    m.float_of_bits(b, signed)
}
