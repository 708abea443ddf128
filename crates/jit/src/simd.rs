//! Width-generic CLIF helpers: every elementwise operation is emitted once per
//! width, as scalar `f32` (loop tails) or `f32x4` (loop bodies), with the same
//! instruction sequence so both paths round identically.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::immediates::Ieee32;
use cranelift_codegen::ir::{
    types, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::FunctionBuilder;

/// Lane count of an emitted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// One `f32`.
    Scalar,
    /// Four `f32` lanes.
    Vector,
}

/// How to emit: width, and whether the target has fused multiply-add.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// Lane count.
    pub width: Width,
    /// `fma` lowers to one instruction (else it would be a libcall per lane).
    pub fma: bool,
}

impl Mode {
    /// The float type of this width.
    pub(crate) fn float(self) -> Type {
        match self.width {
            Width::Scalar => types::F32,
            Width::Vector => types::F32X4,
        }
    }

    /// The same-sized integer type.
    pub(crate) fn int(self) -> Type {
        match self.width {
            Width::Scalar => types::I32,
            Width::Vector => types::I32X4,
        }
    }

    /// Every lane equal to `c`.
    pub(crate) fn f(self, b: &mut FunctionBuilder, c: f32) -> Value {
        let s = b.ins().f32const(Ieee32::with_float(c));
        match self.width {
            Width::Scalar => s,
            Width::Vector => b.ins().splat(types::F32X4, s),
        }
    }

    /// Every integer lane equal to `c`.
    pub(crate) fn i(self, b: &mut FunctionBuilder, c: i32) -> Value {
        let s = b.ins().iconst(types::I32, i64::from(c));
        match self.width {
            Width::Scalar => s,
            Width::Vector => b.ins().splat(types::I32X4, s),
        }
    }

    /// The bits of a float value as integers.
    pub(crate) fn bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.int(), MemFlagsData::new(), x)
    }

    /// Integer bits reinterpreted as floats.
    pub(crate) fn float_of_bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.float(), MemFlagsData::new(), x)
    }

    /// A comparison mask (`i8` for scalars, `i32x4` lanes for vectors).
    pub(crate) fn cmp(self, b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Value {
        b.ins().fcmp(cc, x, y)
    }

    /// `x` where `mask`, else `y`.
    pub(crate) fn select(self, b: &mut FunctionBuilder, mask: Value, x: Value, y: Value) -> Value {
        match self.width {
            Width::Scalar => b.ins().select(mask, x, y),
            Width::Vector => {
                let m = b.ins().bitcast(types::F32X4, MemFlagsData::new(), mask);
                b.ins().bitselect(m, x, y)
            }
        }
    }

    /// `x * y + z`, fused when the target can.
    pub(crate) fn fma(self, b: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
        if self.fma {
            b.ins().fma(x, y, z)
        } else {
            let p = b.ins().fmul(x, y);
            b.ins().fadd(p, z)
        }
    }

    /// Horner evaluation of `coeffs[0]·xⁿ + … + coeffs[n]`.
    pub(crate) fn poly(self, b: &mut FunctionBuilder, x: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.f(b, coeffs[0]);
        for &c in &coeffs[1..] {
            let c = self.f(b, c);
            acc = self.fma(b, acc, x, c);
        }
        acc
    }

    /// `max(x, y)` as `torch.maximum` (IEEE 754-2019 `maximum`): NaN from
    /// either side propagates, and `max(+0, -0) = +0` in either order.
    pub(crate) fn max(self, b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
        let gt = self.cmp(b, FloatCC::GreaterThan, x, y);
        let ties = |b: &mut FunctionBuilder, x, y| b.ins().band(x, y);
        self.extremum(b, gt, x, y, ties)
    }

    /// `min(x, y)` as `torch.minimum` (IEEE 754-2019 `minimum`): NaN from
    /// either side propagates, and `min(+0, -0) = -0` in either order.
    pub(crate) fn min(self, b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
        let lt = self.cmp(b, FloatCC::LessThan, x, y);
        let ties = |b: &mut FunctionBuilder, x, y| b.ins().bor(x, y);
        self.extremum(b, lt, x, y, ties)
    }

    /// `x` where `wins` or `x` is NaN; for equal operands the bitwise
    /// combination `ties` (which only differs from `x` for ±0); else `y`.
    fn extremum(
        self,
        b: &mut FunctionBuilder,
        wins: Value,
        x: Value,
        y: Value,
        ties: impl Fn(&mut FunctionBuilder, Value, Value) -> Value,
    ) -> Value {
        let nan = self.cmp(b, FloatCC::Unordered, x, x);
        let take_x = b.ins().bor(wins, nan);
        let picked = self.select(b, take_x, x, y);
        let equal = self.cmp(b, FloatCC::Equal, x, y);
        let (xi, yi) = (self.bits(b, x), self.bits(b, y));
        let tie = ties(b, xi, yi);
        let tie = self.float_of_bits(b, tie);
        self.select(b, equal, tie, picked)
    }

    /// 1.0 where `mask`, else 0.0.
    pub(crate) fn mask_to_one(self, b: &mut FunctionBuilder, mask: Value) -> Value {
        let one = self.f(b, 1.0);
        match self.width {
            Width::Scalar => {
                let zero = self.f(b, 0.0);
                b.ins().select(mask, one, zero)
            }
            Width::Vector => {
                let m = b.ins().bitcast(types::F32X4, MemFlagsData::new(), mask);
                b.ins().band(m, one)
            }
        }
    }
}

/// Lanes `lanes` of two `f32x4` values (0–3 from `x`, 4–7 from `y`). The
/// patterns used here (`[0, 4, 1, 5]`, `[2, 6, 3, 7]`, `[0, 1, 4, 5]`,
/// `[2, 3, 6, 7]`) are one x86 unpack instruction each.
pub(crate) fn shuffle32(b: &mut FunctionBuilder, x: Value, y: Value, lanes: [u8; 4]) -> Value {
    let mut bytes = [0u8; 16];
    for (i, &lane) in lanes.iter().enumerate() {
        for k in 0..4 {
            bytes[4 * i + k] = 4 * lane + k as u8;
        }
    }
    let mask = b.func.dfg.immediates.push(ConstantData::from(&bytes[..]));
    let little = MemFlagsData::new().with_endianness(Endianness::Little);
    let xb = b.ins().bitcast(types::I8X16, little, x);
    let yb = b.ins().bitcast(types::I8X16, little, y);
    let r = b.ins().shuffle(xb, yb, mask);
    b.ins().bitcast(types::F32X4, little, r)
}

/// The 4 × 4 transpose of `rows`: lane `l` of result `c` is lane `c` of `rows[l]`.
pub(crate) fn transpose4(b: &mut FunctionBuilder, rows: [Value; 4]) -> [Value; 4] {
    let low01 = shuffle32(b, rows[0], rows[1], [0, 4, 1, 5]);
    let low23 = shuffle32(b, rows[2], rows[3], [0, 4, 1, 5]);
    let high01 = shuffle32(b, rows[0], rows[1], [2, 6, 3, 7]);
    let high23 = shuffle32(b, rows[2], rows[3], [2, 6, 3, 7]);
    [
        shuffle32(b, low01, low23, [0, 1, 4, 5]),
        shuffle32(b, low01, low23, [2, 3, 6, 7]),
        shuffle32(b, high01, high23, [0, 1, 4, 5]),
        shuffle32(b, high01, high23, [2, 3, 6, 7]),
    ]
}
