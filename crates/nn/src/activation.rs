//! The elementwise activations of `torch.nn` beyond `relu`, `sigmoid` and `tanh`, and
//! `nn.PReLU`, as compositions of IR primitives.
//!
//! Two ways of building them, chosen per function so that forward *and* gradient are
//! PyTorch's, including the values PyTorch picks at kinks and boundaries:
//!
//! - Piecewise-linear functions (`leaky_relu`, `prelu`, `hardtanh`, `relu6`, `hardsigmoid`,
//!   `hardswish`) and PyTorch's own Python-level compositions (`softsign`, `tanhshrink`) are
//!   `select`s of branches whose derivative is the one PyTorch's backward kernel picks at each
//!   point: the comparison that chooses the branch is the kernel's, so a boundary point gets
//!   the kernel's branch (`hardtanh` is flat at exactly `min_val`/`max_val`, `leaky_relu`'s
//!   slope at 0 is `negative_slope`, ...). Autodiff then gives the gradient.
//! - Smooth functions with an overflow-prone or thresholded formula (`elu`, `selu`, `celu`,
//!   `gelu`, `silu`, `mish`, `softplus`, `logsigmoid`, and `hardswish`'s middle piece) compute the value from `sg(x)` with
//!   PyTorch's forward formula and attach PyTorch's backward formula, also computed from
//!   `sg(x)`, as the gradient ([`attach`]). No branch that is not taken carries a gradient,
//!   so an overflow there (`exp(100)`) cannot turn the gradient into NaN.
//!
//! Scalars (`alpha`, `beta`, ...) are rounded to f32 once, as PyTorch's float kernels do
//! (`Scalar::to<opmath_t>()`).

use graphc_ir::{BinaryOp, CompareOp, Graph, IrError, NodeId, UnaryOp};
use graphc_spec::{Activation, GeluApproximate};

/// SELU's `alpha` and `scale` (PyTorch's `SELU_ALPHA`, `SELU_SCALE`).
const SELU_ALPHA: f64 = 1.673_263_242_354_377_284_817_042_991_671_7;
const SELU_SCALE: f64 = 1.050_700_987_355_480_493_419_334_985_294_6;

/// Elementwise builders on tensors of one shape.
struct Ew<'g> {
    g: &'g mut Graph,
    shape: Vec<usize>,
}

impl Ew<'_> {
    fn c(&mut self, v: f32) -> NodeId {
        self.g.fill(v, &self.shape)
    }
    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.g.binary(op, a, b)
    }
    fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.bin(BinaryOp::Add, a, b)
    }
    fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.bin(BinaryOp::Sub, a, b)
    }
    fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.bin(BinaryOp::Mul, a, b)
    }
    fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.bin(BinaryOp::Div, a, b)
    }
    /// `a · v` for a scalar `v`.
    fn mul_c(&mut self, a: NodeId, v: f32) -> Result<NodeId, IrError> {
        let c = self.c(v);
        self.mul(a, c)
    }
    /// `a + v` for a scalar `v`.
    fn add_c(&mut self, a: NodeId, v: f32) -> Result<NodeId, IrError> {
        let c = self.c(v);
        self.add(a, c)
    }
    /// `v + a` for a scalar `v`.
    fn c_add(&mut self, v: f32, a: NodeId) -> Result<NodeId, IrError> {
        let c = self.c(v);
        self.add(c, a)
    }
    /// `v - a` for a scalar `v`.
    fn c_sub(&mut self, v: f32, a: NodeId) -> Result<NodeId, IrError> {
        let c = self.c(v);
        self.sub(c, a)
    }
    fn un(&mut self, op: UnaryOp, a: NodeId) -> Result<NodeId, IrError> {
        self.g.unary(op, a)
    }
    /// The mask `a op v` for a scalar `v`.
    fn cmp_c(&mut self, op: CompareOp, a: NodeId, v: f32) -> Result<NodeId, IrError> {
        let c = self.c(v);
        self.g.compare(op, a, c)
    }
    fn sel(&mut self, mask: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.g.select(mask, a, b)
    }
    /// `1 / (1 + exp(-x))`, spelled as PyTorch's silu and mish kernels spell it.
    fn sigmoid(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        let neg = self.un(UnaryOp::Neg, x)?;
        let e = self.un(UnaryOp::Exp, neg)?;
        let denominator = self.c_add(1.0, e)?;
        let one = self.c(1.0);
        self.div(one, denominator)
    }
    /// `exp(u) - 1` for `u <= 0`, accurate near 0 without an `expm1` primitive:
    /// `2t / (1 - t)` with `t = tanh(u/2)` (exact in real arithmetic; for `u <= 0`,
    /// `1 - t` lies in `[1, 2]`, so nothing cancels, and it tends to `-1` as `u → -∞`).
    fn expm1_nonpositive(&mut self, u: NodeId) -> Result<NodeId, IrError> {
        let half = self.mul_c(u, 0.5)?;
        let t = self.un(UnaryOp::Tanh, half)?;
        let twice = self.mul_c(t, 2.0)?;
        let below = self.c_sub(1.0, t)?;
        self.div(twice, below)
    }
    /// `erf(z)` from Numerical Recipes' `erfcc` (Chebyshev fit, `erfc` with a fractional
    /// error below 1.2e-7 for every `z >= 0`): `erf(z) = ±(1 - erfc(|z|))`. Used only as
    /// `1 + erf`, where its absolute error (below 1.2e-7, one ulp of 1) is what counts;
    /// PyTorch's own vectorised float `erf` (Abramowitz–Stegun 7.1.26) errs up to 1.5e-7.
    /// NaN in gives NaN; ±∞ give ±1.
    fn erf(&mut self, z: NodeId) -> Result<NodeId, IrError> {
        // Numerical Recipes' coefficients, rounded to f32 once.
        const C: [f64; 10] = [
            -1.265_512_23,
            1.000_023_68,
            0.374_091_96,
            0.096_784_18,
            -0.186_288_06,
            0.278_868_07,
            -1.135_203_98,
            1.488_515_87,
            -0.822_152_23,
            0.170_872_77,
        ];
        let a = self.un(UnaryOp::Abs, z)?;
        let half_a = self.mul_c(a, 0.5)?;
        let denominator = self.c_add(1.0, half_a)?;
        let one = self.c(1.0);
        let t = self.div(one, denominator)?;
        // Horner: c0 + t·(c1 + t·(c2 + ... + t·c9)).
        let mut poly = self.c(C[9] as f32);
        for &c in C[..9].iter().rev() {
            let scaled = self.mul(t, poly)?;
            poly = self.add_c(scaled, c as f32)?;
        }
        let square = self.mul(a, a)?;
        let neg_square = self.un(UnaryOp::Neg, square)?;
        let exponent = self.add(neg_square, poly)?;
        let e = self.un(UnaryOp::Exp, exponent)?;
        let erfc = self.mul(t, e)?;
        let magnitude = self.c_sub(1.0, erfc)?;
        let negative = self.cmp_c(CompareOp::Lt, z, 0.0)?;
        let negated = self.un(UnaryOp::Neg, magnitude)?;
        self.sel(negative, negated, magnitude)
    }
}

/// `value` (computed from `xs = sg(x)`) with the gradient `derivative · g` with respect to
/// `x`: `value + (x - xs) · derivative`. The surrogate term is zero in the forward pass and
/// carries the gradient. It is left out where `x` or `derivative` is infinite or NaN (a
/// surrogate of `∞ - ∞` or `0 · ∞` would make the value NaN) unless the value is NaN anyway:
/// there the gradient is 0 (callers give a natural branch at ±∞ where PyTorch's is not);
/// where the value is NaN it stays, so the gradient is PyTorch's formula (often NaN) there.
/// The derivative is zeroed where the surrogate is left out, so the zero gradient an outer
/// `select` sends to an untaken branch stays zero. The sum keeps `value`'s bits, the sign of
/// a zero included: where `value` has its sign bit set it is formed as
/// `-((-value) + (-s))`, since `-0 + 0` is `+0`.
fn attach(
    e: &mut Ew<'_>,
    value: NodeId,
    x: NodeId,
    xs: NodeId,
    derivative: NodeId,
) -> Result<NodeId, IrError> {
    let magnitude = e.un(UnaryOp::Abs, xs)?;
    let finite_x = e.cmp_c(CompareOp::Lt, magnitude, f32::INFINITY)?;
    let slope = e.un(UnaryOp::Abs, derivative)?;
    let finite_slope = e.cmp_c(CompareOp::Lt, slope, f32::INFINITY)?;
    let nothing = e.c(0.0);
    let finite = e.sel(finite_x, finite_slope, nothing)?;
    let value_nan = e.g.compare(CompareOp::Ne, value, value)?;
    let one = e.c(1.0);
    let keep = e.sel(finite, one, value_nan)?;
    let derivative = e.sel(keep, derivative, nothing)?;
    let zero = e.sub(x, xs)?;
    let surrogate = e.mul(zero, derivative)?;
    let surrogate = e.sel(keep, surrogate, nothing)?;
    let plus = e.add(value, surrogate)?;
    let neg_value = e.un(UnaryOp::Neg, value)?;
    let neg_surrogate = e.un(UnaryOp::Neg, surrogate)?;
    let neg_sum = e.add(neg_value, neg_surrogate)?;
    let minus = e.un(UnaryOp::Neg, neg_sum)?;
    let reciprocal = e.div(one, value)?;
    let sign_bit = e.cmp_c(CompareOp::Lt, reciprocal, 0.0)?;
    e.sel(sign_bit, minus, plus)
}

/// `natural(x)` where `x` is ±∞, `attached` elsewhere: at ±∞ an attached gradient is 0
/// (see [`attach`]), while autodiff of the function's own composition multiplies the
/// upstream gradient by its derivative there, as PyTorch's formula does (`∞ · 0` is NaN).
/// `natural` sees `x` only where it is infinite (0 elsewhere), so an overflow in it at a
/// finite `x` cannot reach the gradient.
fn at_infinity(
    e: &mut Ew<'_>,
    x: NodeId,
    xs: NodeId,
    attached: NodeId,
    natural: impl FnOnce(&mut Ew<'_>, NodeId) -> Result<NodeId, IrError>,
) -> Result<NodeId, IrError> {
    let magnitude = e.un(UnaryOp::Abs, xs)?;
    let infinite = e.cmp_c(CompareOp::Eq, magnitude, f32::INFINITY)?;
    let zero = e.c(0.0);
    let x_infinite = e.sel(infinite, x, zero)?;
    let natural = natural(e, x_infinite)?;
    e.sel(infinite, natural, attached)
}

/// PyTorch's `elu(x, alpha, scale, input_scale)` (`elu`, `selu`, `celu`), with coefficients
/// as its kernel makes them: `negcoef = alpha · scale`, `poscoef = scale`,
/// `negiptcoef = input_scale`, each in f32. Forward `x > 0 ? x · poscoef :
/// expm1(x · negiptcoef) · negcoef`; backward (`elu_backward`, `is_result = false`, its
/// vectorised loop) `x > 0 ? poscoef : negiptcoef · negcoef · exp(x · negiptcoef)`. So at 0
/// the negative branch (`elu'(0) = alpha`, `selu'(0) = alpha · scale`, `celu'(0) = 1`), and
/// at NaN too (NaN; PyTorch's scalar tail loop alone would give `poscoef`).
fn elu(
    e: &mut Ew<'_>,
    x: NodeId,
    alpha: f64,
    scale: f64,
    input_scale: f64,
) -> Result<NodeId, IrError> {
    let negcoef = alpha as f32 * scale as f32;
    let poscoef = scale as f32;
    let negiptcoef = input_scale as f32;
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let positive = e.cmp_c(CompareOp::Gt, xs, 0.0)?;
    let scaled_input = e.mul_c(xs, negiptcoef)?;
    let expm1 = e.expm1_nonpositive(scaled_input)?;
    let negative_value = e.mul_c(expm1, negcoef)?;
    let exp = e.un(UnaryOp::Exp, scaled_input)?;
    let negative_slope = e.mul_c(exp, negiptcoef * negcoef)?;
    let negative = attach(e, negative_value, x, xs, negative_slope)?;
    // x · poscoef itself where x > 0, so +∞ gets PyTorch's gradient poscoef too.
    let positive_value = e.mul_c(x, poscoef)?;
    e.sel(positive, positive_value, negative)
}

/// `x · 0.5 · (1 + erf(x/√2))` (`gelu`, approximate `none`), backward
/// `Φ(x) + x · φ(x)` with `Φ = 0.5 · (1 + erf(x/√2))`, `φ = exp(-x²/2) / √(2π)`: PyTorch's
/// `GeluKernelImpl` and `GeluBackwardKernelImpl`.
fn gelu_erf(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let k_alpha = std::f64::consts::FRAC_1_SQRT_2 as f32;
    let k_beta = (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2 * 0.5) as f32;
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let z = e.mul_c(xs, k_alpha)?;
    let erf = e.erf(z)?;
    let one_plus = e.c_add(1.0, erf)?;
    let half_x = e.mul_c(xs, 0.5)?;
    let value = e.mul(half_x, one_plus)?;
    let cdf = e.mul_c(one_plus, 0.5)?;
    let square = e.mul(xs, xs)?;
    let exponent = e.mul_c(square, -0.5)?;
    let gauss = e.un(UnaryOp::Exp, exponent)?;
    let pdf = e.mul_c(gauss, k_beta)?;
    let x_pdf = e.mul(xs, pdf)?;
    let derivative = e.add(cdf, x_pdf)?;
    attach(e, value, x, xs, derivative)
}

/// `0.5 · x · (1 + tanh(inner))`, `inner = √(2/π) · (x + 0.044715 · x³)` (`gelu`, approximate
/// `tanh`), with PyTorch's backward `0.5 · (1 + tanh) + 0.5 · x · (1 - tanh²) · √(2/π) ·
/// (1 + 3 · 0.044715 · x²)`.
fn gelu_tanh(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let k_beta = (std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI * 0.5) as f32;
    let k_kappa = 0.044_715_f32;
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let square = e.mul(xs, xs)?;
    let cube = e.mul(square, xs)?;
    let kappa_cube = e.mul_c(cube, k_kappa)?;
    let sum = e.add(xs, kappa_cube)?;
    let inner = e.mul_c(sum, k_beta)?;
    let tanh = e.un(UnaryOp::Tanh, inner)?;
    let right = e.c_add(1.0, tanh)?;
    let left = e.mul_c(xs, 0.5)?;
    let value = e.mul(left, right)?;
    let left_derivative = e.mul_c(right, 0.5)?;
    let tanh_square = e.mul(tanh, tanh)?;
    let right_derivative = e.c_sub(1.0, tanh_square)?;
    let scaled_square = e.mul_c(square, 3.0 * k_kappa)?;
    let inner_derivative = e.c_add(1.0, scaled_square)?;
    let inner_derivative = e.mul_c(inner_derivative, k_beta)?;
    let product = e.mul(left, right_derivative)?;
    let product = e.mul(product, inner_derivative)?;
    let derivative = e.add(left_derivative, product)?;
    attach(e, value, x, xs, derivative)
}

/// `x / (1 + exp(-x))`, backward `σ · (1 + x · (1 - σ))` (PyTorch's kernels); at ±∞ the
/// product `x · σ(x)`, whose autodiff is PyTorch's NaN there (`1 + ∞ · 0`).
fn silu(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let neg = e.un(UnaryOp::Neg, xs)?;
    let exp = e.un(UnaryOp::Exp, neg)?;
    let denominator = e.c_add(1.0, exp)?;
    let value = e.div(xs, denominator)?;
    let sigmoid = e.sigmoid(xs)?;
    let complement = e.c_sub(1.0, sigmoid)?;
    let x_complement = e.mul(xs, complement)?;
    let factor = e.c_add(1.0, x_complement)?;
    let derivative = e.mul(sigmoid, factor)?;
    let attached = attach(e, value, x, xs, derivative)?;
    at_infinity(e, x, xs, attached, |e, x| {
        let sigmoid = e.un(UnaryOp::Sigmoid, x)?;
        e.mul(x, sigmoid)
    })
}

/// `x · tanh(log1p(exp(x)))` (no threshold, as PyTorch's kernel), backward
/// `tanh_sp + x · σ · (1 - tanh_sp²)`.
fn mish(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let exp = e.un(UnaryOp::Exp, xs)?;
    let softplus = e.un(UnaryOp::Log1p, exp)?;
    let tanh_sp = e.un(UnaryOp::Tanh, softplus)?;
    let value = e.mul(xs, tanh_sp)?;
    let sigmoid = e.sigmoid(xs)?;
    let square = e.mul(tanh_sp, tanh_sp)?;
    let complement = e.c_sub(1.0, square)?;
    let product = e.mul(xs, sigmoid)?;
    let product = e.mul(product, complement)?;
    let derivative = e.add(tanh_sp, product)?;
    attach(e, value, x, xs, derivative)
}

/// `x · beta > threshold ? x : log1p(exp(x · beta)) / beta`, backward
/// `x · beta > threshold ? 1 : z / (z + 1)` with `z = exp(x · beta)`.
fn softplus(e: &mut Ew<'_>, x: NodeId, beta: f64, threshold: f64) -> Result<NodeId, IrError> {
    let (beta, threshold) = (beta as f32, threshold as f32);
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let scaled = e.mul_c(xs, beta)?;
    let linear = e.cmp_c(CompareOp::Gt, scaled, threshold)?;
    let z = e.un(UnaryOp::Exp, scaled)?;
    let log = e.un(UnaryOp::Log1p, z)?;
    let beta_c = e.c(beta);
    let soft = e.div(log, beta_c)?;
    let z_plus = e.add_c(z, 1.0)?;
    let ratio = e.div(z, z_plus)?;
    // 1 where the linear branch is taken (z may be ∞ there; the surrogate is unused).
    let one = e.c(1.0);
    let derivative = e.sel(linear, one, ratio)?;
    let soft = attach(e, soft, x, xs, derivative)?;
    // x itself above the threshold, so +∞ gets PyTorch's gradient 1.
    e.sel(linear, x, soft)
}

/// `min(x, 0) - log1p(exp(-|x|))`, backward `x < 0 ? 1 - z/(1+z) : z/(1+z)` with
/// `z = exp(-|x|)` (PyTorch's `log_sigmoid_backward`: `max_deriv - sign · z/(1+z)`).
fn logsigmoid(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let zero = e.c(0.0);
    let min = e.bin(BinaryOp::Min, xs, zero)?;
    let abs = e.un(UnaryOp::Abs, xs)?;
    let neg_abs = e.un(UnaryOp::Neg, abs)?;
    let z = e.un(UnaryOp::Exp, neg_abs)?;
    let log = e.un(UnaryOp::Log1p, z)?;
    let value = e.sub(min, log)?;
    let one_plus = e.c_add(1.0, z)?;
    let ratio = e.div(z, one_plus)?;
    let complement = e.c_sub(1.0, ratio)?;
    let negative = e.cmp_c(CompareOp::Lt, xs, 0.0)?;
    let derivative = e.sel(negative, complement, ratio)?;
    let attached = attach(e, value, x, xs, derivative)?;
    // At ±∞ the composition itself: -∞ gives -∞ with gradient 1, +∞ gives 0 with g · 0.
    at_infinity(e, x, xs, attached, |e, x| {
        let zero = e.c(0.0);
        let min = e.bin(BinaryOp::Min, x, zero)?;
        let abs = e.un(UnaryOp::Abs, x)?;
        let neg_abs = e.un(UnaryOp::Neg, abs)?;
        let z = e.un(UnaryOp::Exp, neg_abs)?;
        let log = e.un(UnaryOp::Log1p, z)?;
        e.sub(min, log)
    })
}

/// `hardtanh(x, lo, hi)`: `lo` where `x < lo`, `hi` where `x > hi`, else `x` (NaN stays
/// NaN; at exactly `lo` or `hi` the value is `x` itself, as PyTorch's clamp keeps it, so
/// `relu6(-0)` is `-0`). The gradient is PyTorch's `hardtanh_backward` (its vectorised
/// loop): `g` where `lo < x < hi`, 0 at exactly `lo` and `hi`, beyond them and at NaN.
fn hardtanh(e: &mut Ew<'_>, x: NodeId, lo: f32, hi: f32) -> Result<NodeId, IrError> {
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let at_most_lo = e.cmp_c(CompareOp::Le, x, lo)?;
    let below_lo = e.cmp_c(CompareOp::Lt, x, lo)?;
    let below_hi = e.cmp_c(CompareOp::Lt, x, hi)?;
    let above_hi = e.cmp_c(CompareOp::Gt, x, hi)?;
    let (lo, hi) = (e.c(lo), e.c(hi));
    let lower = e.sel(below_lo, lo, xs)?;
    // From hi on, and at NaN: hi, or x itself without gradient.
    let upper = e.sel(above_hi, hi, xs)?;
    let inside = e.sel(below_hi, x, upper)?;
    e.sel(at_most_lo, lower, inside)
}

/// `min(max(x + 3, 0), 6) / 6`, gradient `1/6` where `-3 < x < 3`, else 0 (at ±3 and at
/// NaN too: PyTorch's `hardsigmoid_backward`); NaN stays NaN.
fn hardsigmoid(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let shifted = e.add_c(x, 3.0)?;
    let six = e.c(6.0);
    let ramp = e.div(shifted, six)?;
    let below = e.cmp_c(CompareOp::Lt, x, 3.0)?;
    let one = e.c(1.0);
    let upper = e.sel(below, ramp, one)?;
    let above = e.cmp_c(CompareOp::Gt, x, -3.0)?;
    let zero = e.c(0.0);
    let clamped = e.sel(above, upper, zero)?;
    // NaN: the value is NaN, with no gradient.
    let nan = e.g.compare(CompareOp::Ne, x, x)?;
    let xs = e.un(UnaryOp::StopGradient, x)?;
    e.sel(nan, xs, clamped)
}

/// `x · min(max(x + 3, 0), 6) / 6` (PyTorch's `(x · m) / 6`), gradient (PyTorch's
/// `hardswish_backward`) 0 where `x <= -3`, `x/3 + 0.5` where `-3 < x < 3` (attached as one
/// factor, as PyTorch multiplies it, so an infinite upstream gradient stays infinite), 1 from
/// 3 on, and NaN at NaN (PyTorch's vectorised loop; its scalar tail loop would give 1).
fn hardswish(e: &mut Ew<'_>, x: NodeId) -> Result<NodeId, IrError> {
    let xs = e.un(UnaryOp::StopGradient, x)?;
    let six = e.c(6.0);
    let shifted = e.add_c(xs, 3.0)?;
    let product = e.mul(xs, shifted)?;
    let middle_value = e.div(product, six)?;
    let third = e.c(3.0);
    let scaled = e.div(xs, third)?;
    let slope = e.add_c(scaled, 0.5)?;
    // Zero outside (-3, 3) but NaN at NaN (the middle piece's value and slope there).
    let zero = e.c(0.0);
    let at_least_three = e.cmp_c(CompareOp::Ge, xs, 3.0)?;
    let at_most_minus_three = e.cmp_c(CompareOp::Le, xs, -3.0)?;
    let slope = e.sel(at_least_three, zero, slope)?;
    let slope = e.sel(at_most_minus_three, zero, slope)?;
    let middle = attach(e, middle_value, x, xs, slope)?;
    // From 3 on PyTorch computes x · 6 / 6, which can differ from x in the last bit.
    let x_six = e.mul(x, six)?;
    let top = e.div(x_six, six)?;
    let upper = e.sel(at_least_three, top, middle)?;
    // Up to -3 the value is x · 0 / 6 (a zero with x's sign; NaN at -∞), with no gradient.
    let bottom = e.mul_c(xs, 0.0)?;
    e.sel(at_most_minus_three, bottom, upper)
}

/// `x > 0 ? x : x · slope`: the gradient is `slope` at 0 and at NaN (PyTorch's
/// `leaky_relu_backward` tests `x > 0`).
fn leaky_relu(e: &mut Ew<'_>, x: NodeId, slope: f32) -> Result<NodeId, IrError> {
    let positive = e.cmp_c(CompareOp::Gt, x, 0.0)?;
    let scaled = e.mul_c(x, slope)?;
    e.sel(positive, x, scaled)
}

/// Adds `activation(x)` to `graph`.
pub(crate) fn activation(
    graph: &mut Graph,
    x: NodeId,
    activation: &Activation,
) -> Result<NodeId, IrError> {
    let shape = graph.shape(x).to_vec();
    let e = &mut Ew { g: graph, shape };
    match *activation {
        Activation::Identity => Ok(x),
        Activation::LeakyRelu { negative_slope } => leaky_relu(e, x, negative_slope as f32),
        Activation::Elu { alpha } => elu(e, x, alpha, 1.0, 1.0),
        Activation::Selu => elu(e, x, SELU_ALPHA, SELU_SCALE, 1.0),
        Activation::Celu { alpha } => elu(e, x, alpha, 1.0, 1.0 / alpha),
        Activation::Gelu {
            approximate: GeluApproximate::None,
        } => gelu_erf(e, x),
        Activation::Gelu {
            approximate: GeluApproximate::Tanh,
        } => gelu_tanh(e, x),
        Activation::Silu => silu(e, x),
        Activation::Mish => mish(e, x),
        Activation::Softplus { beta, threshold } => softplus(e, x, beta, threshold),
        Activation::Hardtanh { min_val, max_val } => hardtanh(e, x, min_val as f32, max_val as f32),
        Activation::Relu6 => hardtanh(e, x, 0.0, 6.0),
        Activation::Hardsigmoid => hardsigmoid(e, x),
        Activation::Hardswish => hardswish(e, x),
        Activation::LogSigmoid => logsigmoid(e, x),
        // F.softsign is `x / (x.abs() + 1)` and F.tanhshrink `x - x.tanh()`: autograd
        // differentiates those compositions, as graphc's autodiff does.
        Activation::Softsign => {
            let abs = e.un(UnaryOp::Abs, x)?;
            let denominator = e.add_c(abs, 1.0)?;
            e.div(x, denominator)
        }
        Activation::Tanhshrink => {
            let tanh = e.un(UnaryOp::Tanh, x)?;
            e.sub(x, tanh)
        }
    }
}

/// `nn.PReLU`: `x > 0 ? x : w · x` with `weight` (`[num_parameters]`) one slope for every
/// element, or one per channel (axis 1). Autodiff of the `select` gives PyTorch's
/// `prelu` backward: `g` or `w · g` for the input (`w · g` at 0), `x · g` summed where
/// `x <= 0` for the weight.
pub(crate) fn prelu(graph: &mut Graph, x: NodeId, weight: NodeId) -> Result<NodeId, IrError> {
    let shape = graph.shape(x).to_vec();
    let slopes = graph.shape(weight)[0];
    let mut view = vec![1; shape.len()];
    if slopes > 1 {
        view[1] = slopes;
    }
    let w = graph.reshape(weight, &view)?;
    let w = graph.broadcast(w, &shape)?;
    let e = &mut Ew { g: graph, shape };
    let positive = e.cmp_c(CompareOp::Gt, x, 0.0)?;
    let scaled = e.mul(w, x)?;
    e.sel(positive, x, scaled)
}
