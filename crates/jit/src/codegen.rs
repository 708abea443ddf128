//! Cranelift code generation: one `JITModule` per executable, one function per
//! fused [`Cluster`] or one-hot kernel, each `extern "C" fn(f32 base, i64 base,
//! lo, hi)` where `[lo, hi)` is the range of the outermost loop to run.

use std::sync::OnceLock;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, InstBuilder, MemFlagsData, Signature, StackSlot, StackSlotData,
    StackSlotKind, UserFuncName, Value,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use graphc_ir::{random, BinaryOp, CompareOp, IrError, ReduceOp, UnaryOp};

use cranelift_entity::{PrimaryMap, SecondaryMap};

use crate::kernel::{identity, AccessId, Cluster, Compute, Expr, ExprId, SplitLoop};
use crate::math;
use crate::plan::{KernelId, OneHot, RandomUniform};
use crate::simd::{transpose4, Mode, Width};

/// Signature of every generated kernel.
pub(crate) type KernelFn = unsafe extern "C" fn(*mut f32, *const i64, i64, i64);

/// Loads and stores of arena memory: in bounds by construction, maybe unaligned.
fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn compile_error(e: impl std::fmt::Display) -> IrError {
    IrError::Compile(e.to_string())
}

/// Directory named by `GRAPHC_JIT_DUMP`, where every kernel's CLIF and
/// machine code are written (`k<N>.clif`, `k<N>.s`) for inspection, and the plan
/// (`plan.txt`: every step with its arena offsets).
fn dump_dir() -> Option<&'static std::path::Path> {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("GRAPHC_JIT_DUMP").map(std::path::PathBuf::from))
        .as_deref()
}

/// Writes `text` to `name` in the `GRAPHC_JIT_DUMP` directory, if one is set (a debugging aid:
/// a failed write is ignored).
pub(crate) fn dump(name: &str, text: &str) {
    if let Some(dir) = dump_dir() {
        let _ = std::fs::write(dir.join(name), text);
    }
}

/// The host ISA, built once per verifier setting.
fn host_isa(verify: bool) -> Result<OwnedTargetIsa, IrError> {
    static ISAS: [OnceLock<Result<OwnedTargetIsa, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    ISAS[usize::from(verify)]
        .get_or_init(|| {
            let mut flags = settings::builder();
            let set = |f: &mut settings::Builder, k: &str, v: &str| {
                f.set(k, v).map_err(|e| format!("setting {k}={v}: {e}"))
            };
            set(&mut flags, "opt_level", "speed")?;
            set(
                &mut flags,
                "enable_verifier",
                if verify { "true" } else { "false" },
            )?;
            set(&mut flags, "use_colocated_libcalls", "false")?;
            set(&mut flags, "is_pic", "false")?;
            let isa = cranelift_native::builder().map_err(|e| e.to_string())?;
            isa.finish(settings::Flags::new(flags))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(IrError::Compile)
}

/// Whether the host ISA lowers `fma` to one instruction.
fn has_fma(isa: &OwnedTargetIsa) -> bool {
    isa.isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true))
}

/// Builds the functions of one executable into one module.
pub(crate) struct Codegen {
    module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    sig: Signature,
    fma: bool,
    functions: Vec<FuncId>,
}

impl Codegen {
    /// A fresh module for the host; `verify` runs Cranelift's IR verifier.
    pub(crate) fn new(verify: bool) -> Result<Codegen, IrError> {
        let isa = host_isa(verify)?;
        let fma = has_fma(&isa);
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let mut sig = module.make_signature();
        for _ in 0..4 {
            sig.params.push(AbiParam::new(types::I64));
        }
        Ok(Codegen {
            ctx: module.make_context(),
            module,
            fctx: FunctionBuilderContext::new(),
            sig,
            fma,
            functions: Vec::new(),
        })
    }

    /// Compiles a fused loop nest as the next kernel.
    pub(crate) fn cluster(&mut self, k: &Cluster, split: SplitLoop) -> Result<(), IrError> {
        let fma = self.fma;
        self.define(|b, params| ClusterEmitter::new(b, k, fma, params, split).emit())
    }

    /// Compiles a one-hot kernel as the next kernel: for each of `rows` i64
    /// indices at `indices` (in the i64 buffer), writes 1.0 at column `index`
    /// of the (pre-zeroed) `rows × classes` output at `out`, skipping indices
    /// outside `[0, classes)`.
    pub(crate) fn one_hot(&mut self, o: &OneHot) -> Result<(), IrError> {
        let &OneHot {
            rows,
            classes,
            indices,
            out,
        } = o;
        self.define(|b, p| {
            let (base, ibase) = (p[0], p[1]);
            let index_base = b.ins().iadd_imm_s(ibase, (indices * 8) as i64);
            let out_base = b.ins().iadd_imm_s(base, (out * 4) as i64);
            let one = b.ins().f32const(1.0f32);
            counted_loop(
                b,
                Bound::Const(0),
                Bound::Const(rows as i64),
                1,
                &mut |b, row| {
                    let at = b.ins().imul_imm_s(row, 8);
                    let at = b.ins().iadd(index_base, at);
                    let class = b.ins().load(types::I64, mem(), at, 0);
                    let inside = b
                        .ins()
                        .icmp_imm_s(IntCC::UnsignedLessThan, class, classes as i64);
                    let set = b.create_block();
                    let done = b.create_block();
                    b.ins().brif(inside, set, &[], done, &[]);
                    b.switch_to_block(set);
                    let cell = b.ins().imul_imm_s(row, classes as i64);
                    let cell = b.ins().iadd(cell, class);
                    let cell = b.ins().ishl_imm_s(cell, 2);
                    let cell = b.ins().iadd(out_base, cell);
                    b.ins().store(mem(), one, cell, 0);
                    b.ins().jump(done, &[]);
                    b.switch_to_block(done);
                },
            );
        })
    }

    /// Compiles a random-uniform kernel as the next kernel: for each element
    /// block `j` in `[lo, hi)` (local elements `4j .. 4j + 4`), Philox4x32-10
    /// of counter `[block, stream, step as u32, step >> 32]` under the seed's key
    /// (`graphc_ir::random`; the round keys are compile-time constants), each
    /// word's top 24 bits converted and scaled by 2^-24 (exact), one vector
    /// store; the last block, if partial, stores only its elements below `len`.
    /// Without a first row `block = j`. With one, the draw starts at global
    /// element `first = row · r.row` (`graphc_ir::random::first_element`):
    /// `block = first / 4 + j` when `first` is a multiple of 4, else the four
    /// values straddle two blocks, both drawn, and are read at word `first % 4`
    /// of the pair (through an eight-float stack slot).
    pub(crate) fn random_uniform(&mut self, r: &RandomUniform) -> Result<(), IrError> {
        let r = *r;
        self.define(|b, p| {
            let (base, ibase, lo, hi) = (p[0], p[1], p[2], p[3]);
            let out_base = b.ins().iadd_imm_s(base, (r.out * 4) as i64);
            let step_at = b.ins().iadd_imm_s(ibase, (r.step * 8) as i64);
            let step = b.ins().load(types::I64, mem(), step_at, 0);
            let step_lo = b.ins().ireduce(types::I32, step);
            let step_hi = b.ins().ushr_imm_u(step, 32);
            let step_hi = b.ins().ireduce(types::I32, step_hi);
            let stream = b.ins().iconst(types::I32, i64::from(r.stream));
            let mut draw = Draw {
                counter: [stream, step_lo, step_hi],
                key: random::random_key(r.seed),
                first_block: b.ins().iconst(types::I64, 0),
                straddle: None,
            };
            let full = (r.len / random::ELEMENTS_PER_BLOCK) as i64;
            let tail = r.len % random::ELEMENTS_PER_BLOCK;
            let full_blocks = b.ins().iconst(types::I64, full);
            let end = b.ins().smin(hi, full_blocks);
            let emit = |b: &mut FunctionBuilder, draw: &Draw| {
                counted_loop(b, Bound::Dyn(lo), Bound::Dyn(end), 1, &mut |b, j| {
                    let f = draw.values(b, j);
                    let at = b.ins().ishl_imm_s(j, 4);
                    let at = b.ins().iadd(out_base, at);
                    b.ins().store(mem(), f, at, 0);
                });
                if tail > 0 {
                    let partial = b.create_block();
                    let done = b.create_block();
                    let has_partial = b.ins().icmp(IntCC::SignedGreaterThan, hi, full_blocks);
                    b.ins().brif(has_partial, partial, &[], done, &[]);
                    b.switch_to_block(partial);
                    let f = draw.values(b, full_blocks);
                    for k in 0..tail {
                        let x = b.ins().extractlane(f, k as u8);
                        // Inside the arena (`Plan::validate`), so its byte offset fits.
                        let offset = (full as usize * random::ELEMENTS_PER_BLOCK + k) * 4;
                        let at = b.ins().iadd_imm_s(out_base, offset as i64);
                        b.ins().store(mem(), x, at, 0);
                    }
                    b.ins().jump(done, &[]);
                    b.switch_to_block(done);
                }
            };
            let Some(row) = r.row else {
                emit(b, &draw);
                return;
            };
            let first_row = b.ins().load(types::I64, mem(), step_at, 8);
            // Two's complement, mod 2^64, as `first_element`; `row` came from a
            // shape, so it fits i64.
            let first = b.ins().imul_imm_s(first_row, row as i64);
            draw.first_block = b.ins().ushr_imm_u(first, 2);
            let word = b.ins().band_imm_u(first, 3);
            let aligned = b.create_block();
            let straddling = b.create_block();
            let done = b.create_block();
            b.ins().brif(word, straddling, &[], aligned, &[]);
            b.switch_to_block(aligned);
            emit(b, &draw);
            b.ins().jump(done, &[]);
            b.switch_to_block(straddling);
            let slot =
                b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 32, 4));
            draw.straddle = Some((word, slot));
            emit(b, &draw);
            b.ins().jump(done, &[]);
            b.switch_to_block(done);
        })
    }

    fn define(&mut self, body: impl FnOnce(&mut FunctionBuilder, &[Value])) -> Result<(), IrError> {
        let name = format!("k{}", self.functions.len());
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &self.sig)
            .map_err(compile_error)?;
        self.ctx.func.signature = self.sig.clone();
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        let config = self.module.target_config();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            body(&mut b, &params);
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(config);
        }
        let dump = dump_dir();
        let clif = dump.map(|_| self.ctx.func.display().to_string());
        self.ctx.set_disasm(dump.is_some());
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| compile_error(format!("{e:?}")))?;
        if let (Some(dir), Some(clif)) = (dump, clif) {
            let asm = self
                .ctx
                .compiled_code()
                .and_then(|c| c.vcode.clone())
                .unwrap_or_default();
            // A debugging aid only: a failed write loses the dump, not the kernel.
            let _ = std::fs::write(dir.join(format!("{name}.clif")), clif);
            let _ = std::fs::write(dir.join(format!("{name}.s")), asm);
        }
        self.module.clear_context(&mut self.ctx);
        self.functions.push(id);
        Ok(())
    }

    /// Links every function; returns the module (which owns the code) and
    /// the entry points in definition order (kernel `k` is the `k`-th defined).
    pub(crate) fn finish(mut self) -> Result<(JITModule, PrimaryMap<KernelId, KernelFn>), IrError> {
        self.module.finalize_definitions().map_err(compile_error)?;
        let fns = self
            .functions
            .iter()
            .map(|&id| {
                let code = self.module.get_finalized_function(id);
                // SAFETY: every function was defined with `self.sig`, four
                // pointer-sized integers and no results under the platform's
                // default calling convention, which is `extern "C"`'s.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
            })
            .collect();
        Ok((self.module, fns))
    }
}

/// What a random-uniform kernel draws from: counter words 1-3 (stream, step),
/// the key, the global block of its first element and, when that element is
/// not a block's first, its word in the block with a 32-byte stack slot.
struct Draw {
    counter: [Value; 3],
    key: [u32; 2],
    first_block: Value,
    straddle: Option<(Value, StackSlot)>,
}

impl Draw {
    /// The uniform values of one block's Philox words, as an f32x4.
    fn block(&self, b: &mut FunctionBuilder, block: Value) -> Value {
        let block = b.ins().ireduce(types::I32, block);
        let [stream, step_lo, step_hi] = self.counter;
        let w = philox4x32_10(b, [block, stream, step_lo, step_hi], self.key);
        let mut v = b.ins().scalar_to_vector(types::I32X4, w[0]);
        for (lane, &x) in w.iter().enumerate().skip(1) {
            v = b.ins().insertlane(v, x, lane as u8);
        }
        let eight = b.ins().iconst(types::I32, 8);
        let top = b.ins().ushr(v, eight);
        // Below 2^24, so the signed conversion is exact.
        let f = b.ins().fcvt_from_sint(types::F32X4, top);
        let scale = b.ins().f32const(1.0f32 / (1u32 << 24) as f32);
        let scale = b.ins().splat(types::F32X4, scale);
        b.ins().fmul(f, scale)
    }

    /// The values of local elements `4j .. 4j + 4`, as an f32x4: global block
    /// `first_block + j` (mod 2^32), or words `word .. word + 4` of it and the next.
    fn values(&self, b: &mut FunctionBuilder, j: Value) -> Value {
        let block = b.ins().iadd(self.first_block, j);
        let this = self.block(b, block);
        let Some((word, slot)) = self.straddle else {
            return this;
        };
        let next = b.ins().iadd_imm_s(block, 1);
        let next = self.block(b, next);
        b.ins().stack_store(types::I64, this, slot, 0);
        b.ins().stack_store(types::I64, next, slot, 16);
        let pair = b.ins().stack_addr(types::I64, slot, 0);
        // `word` is 1..=3, so the four floats lie inside the slot's eight.
        let offset = b.ins().ishl_imm_s(word, 2);
        let at = b.ins().iadd(pair, offset);
        b.ins().load(types::F32X4, mem(), at, 0)
    }
}

/// Philox4x32-10 (`graphc_ir::random::philox4x32_10`) of four i32 counter
/// words under a compile-time key. Each S-box takes one 64-bit product of the
/// zero-extended word and multiplier for both halves (one `imul`; the 32-bit
/// `umulhi` plus `imul` pair is two multiplies).
fn philox4x32_10(b: &mut FunctionBuilder, counter: [Value; 4], key: [u32; 2]) -> [Value; 4] {
    let mulhilo = |b: &mut FunctionBuilder, m: u32, x: Value| {
        let wide = b.ins().uextend(types::I64, x);
        let product = b.ins().imul_imm_s(wide, i64::from(m));
        let hi = b.ins().ushr_imm_u(product, 32);
        (
            b.ins().ireduce(types::I32, hi),
            b.ins().ireduce(types::I32, product),
        )
    };
    let mut x = counter;
    for round in 0..random::PHILOX_ROUNDS {
        let k = random::philox_round_key(key, round);
        let (hi0, lo0) = mulhilo(b, random::PHILOX_M0, x[0]);
        let (hi1, lo1) = mulhilo(b, random::PHILOX_M1, x[2]);
        let x1k = b.ins().bxor_imm_u(x[1], i64::from(k[0]));
        let x3k = b.ins().bxor_imm_u(x[3], i64::from(k[1]));
        x = [b.ins().bxor(hi1, x1k), lo1, b.ins().bxor(hi0, x3k), lo0];
    }
    x
}

/// A loop bound known at compile time or only at run time.
#[derive(Clone, Copy)]
enum Bound {
    Const(i64),
    Dyn(Value),
}

impl Bound {
    fn value(self, b: &mut FunctionBuilder) -> Value {
        match self {
            Bound::Const(c) => b.ins().iconst(types::I64, c),
            Bound::Dyn(v) => v,
        }
    }
}

/// Something that holds the function builder, so loop bodies can reach it.
trait Builds<'f> {
    /// The builder.
    fn fb(&mut self) -> &mut FunctionBuilder<'f>;
}

impl<'f> Builds<'f> for FunctionBuilder<'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f> {
        self
    }
}

/// Runs `body(i)` for `i = lo, lo + step, …` while `i + step <= hi`; returns
/// the first index not run. Constant bounds with zero or one trip emit no loop.
fn counted_loop<'f, S: Builds<'f> + ?Sized>(
    s: &mut S,
    lo: Bound,
    hi: Bound,
    step: i64,
    body: &mut dyn FnMut(&mut S, Value),
) -> Bound {
    if let (Bound::Const(l), Bound::Const(h)) = (lo, hi) {
        let trips = if h > l { (h - l) / step } else { 0 };
        if trips == 0 {
            return lo;
        }
        if trips == 1 {
            let i = s.fb().ins().iconst(types::I64, l);
            body(s, i);
            return Bound::Const(l + step);
        }
    }
    let b = s.fb();
    let var: Variable = b.declare_var(types::I64);
    let start = lo.value(b);
    b.def_var(var, start);
    let header: Block = b.create_block();
    let body_block = b.create_block();
    let exit = b.create_block();
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let i = b.use_var(var);
    let next = b.ins().iadd_imm_s(i, step);
    let end = hi.value(b);
    let go = b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
    b.ins().brif(go, body_block, &[], exit, &[]);
    b.switch_to_block(body_block);
    body(s, i);
    let b = s.fb();
    let next = b.ins().iadd_imm_s(i, step);
    b.def_var(var, next);
    b.ins().jump(header, &[]);
    b.switch_to_block(exit);
    match (lo, hi) {
        (Bound::Const(l), Bound::Const(h)) => Bound::Const(l + (h - l) / step * step),
        _ => Bound::Dyn(b.use_var(var)),
    }
}

/// Vector bodies per iteration of the main inner loop (then one vector body
/// at a time, then scalars), for kernels whose body is light enough that two
/// copies fit the 16 vector registers Cranelift allocates from.
const UNROLL: i64 = 2;

/// Instructions (roughly) above which a kernel's body runs one vector at a
/// time: unrolled, logreg's loss kernel (exp, log1p, a division) spilled its
/// running sums to the stack, and its loads from there ran 0.60 or 1.07 µs a
/// step depending on where the stack fell relative to the arena (4 KiB
/// aliasing); one copy ran 0.61 µs in every process. mlp_s's light kernels
/// lose 30 % without unrolling.
const UNROLL_MAX_COST: usize = 64;

/// Rough instruction count of one expression in the vector body.
fn cost(e: &Expr) -> usize {
    match e {
        Expr::Compute(Compute::Unary(UnaryOp::Exp | UnaryOp::Sigmoid, _)) => 30,
        Expr::Compute(Compute::Unary(
            UnaryOp::Log | UnaryOp::Log1p | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos,
            _,
        )) => 40,
        Expr::Compute(
            Compute::Select(..) | Compute::Compare(..) | Compute::Unary(UnaryOp::Relu, _),
        ) => 2,
        Expr::Compute(Compute::Unary(UnaryOp::RoundBf16, _)) => 8,
        Expr::Compute(Compute::Unary(
            UnaryOp::Neg | UnaryOp::Sqrt | UnaryOp::Abs | UnaryOp::StopGradient,
            _,
        ))
        | Expr::Compute(Compute::Binary(..))
        | Expr::Load(_)
        | Expr::Const(_) => 1,
    }
}

/// Where in the loop nest a value first becomes fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// The same for the whole call: computed once at entry.
    Kernel,
    /// The same along the innermost loop: computed once per row.
    Row,
    /// Changes every element.
    Element,
}

/// Register accumulators of one reduction along the innermost loop.
#[derive(Clone, Copy)]
struct Accumulator {
    scalar: Variable,
    vector: Option<Variable>,
}

/// Two to four sums along the innermost loop kept in the lanes of one vector:
/// each step transposes their four-lane values and adds the columns in lane
/// order, so every sum still adds its terms one by one in the interpreter's
/// order (8 shuffles and 4 additions for four sums where lane by lane took
/// 16 extractions and 16 additions, and one register instead of four).
#[derive(Clone)]
struct Pack {
    /// The running sums, one lane per member.
    var: Variable,
    /// Indices into the cluster's reductions.
    members: Vec<usize>,
}

/// Emits one [`Cluster`] as a loop nest.
struct ClusterEmitter<'a, 'b, 'f> {
    b: &'a mut FunctionBuilder<'f>,
    k: &'b Cluster,
    fma: bool,
    split: SplitLoop,
    arena: Value,
    lo: Value,
    hi: Value,
    inner: usize,
    expr_level: PrimaryMap<ExprId, Level>,
    needs_vector: SecondaryMap<ExprId, bool>,
    base: PrimaryMap<AccessId, Value>,
    row: PrimaryMap<AccessId, Value>,
    index: Vec<Value>,
    fixed_scalar: SecondaryMap<ExprId, Option<Value>>,
    fixed_vector: SecondaryMap<ExprId, Option<Value>>,
    acc: Vec<Option<Accumulator>>,
    packs: Vec<Pack>,
}

impl<'a, 'b, 'f> ClusterEmitter<'a, 'b, 'f> {
    fn new(
        b: &'a mut FunctionBuilder<'f>,
        k: &'b Cluster,
        fma: bool,
        params: &[Value],
        split: SplitLoop,
    ) -> Self {
        let inner = k.dims.len() - 1;
        let access_level: PrimaryMap<AccessId, Level> = k
            .accesses
            .values()
            .map(|a| {
                if a.strides.iter().all(|&s| s == 0) {
                    Level::Kernel
                } else if a.strides[inner] == 0 {
                    Level::Row
                } else {
                    Level::Element
                }
            })
            .collect();
        let mut expr_level: PrimaryMap<ExprId, Level> = PrimaryMap::with_capacity(k.exprs.len());
        for e in k.exprs.values() {
            let level = match e {
                Expr::Load(a) => access_level[*a],
                Expr::Const(_) => Level::Kernel,
                Expr::Compute(c) => c
                    .operands()
                    .map(|x| expr_level[x])
                    .max()
                    .unwrap_or(Level::Kernel),
            };
            expr_level.push(level);
        }
        let mut needs_vector = SecondaryMap::with_default(false);
        let mut mark = |e: ExprId| needs_vector[e] = true;
        for (i, e) in k.exprs.iter() {
            if expr_level[i] == Level::Element {
                match e {
                    Expr::Load(_) | Expr::Const(_) => {}
                    Expr::Compute(c) => c.operands().for_each(&mut mark),
                }
            }
        }
        for &(e, _) in &k.stores {
            mark(e);
        }
        for r in &k.reductions {
            mark(r.value);
        }
        ClusterEmitter {
            b,
            k,
            fma,
            split,
            arena: params[0],
            lo: params[2],
            hi: params[3],
            inner,
            expr_level,
            needs_vector,
            base: PrimaryMap::new(),
            row: PrimaryMap::new(),
            index: Vec::new(),
            fixed_scalar: SecondaryMap::with_default(None),
            fixed_vector: SecondaryMap::with_default(None),
            acc: vec![None; k.reductions.len()],
            packs: Vec::new(),
        }
    }

    fn mode(&self, width: Width) -> Mode {
        Mode {
            width,
            fma: self.fma,
        }
    }

    fn emit(mut self) {
        let k = self.k;
        self.base = k
            .accesses
            .values()
            .map(|a| self.b.ins().iadd_imm_s(self.arena, (a.offset * 4) as i64))
            .collect();
        self.row = self.base.clone();
        self.fixed(Level::Kernel);
        if self.inner == 0 {
            self.row_body();
        } else {
            self.outer(0);
        }
    }

    fn outer(&mut self, d: usize) {
        let (lo, hi) = if d == 0 && self.split == SplitLoop::Outer {
            (Bound::Dyn(self.lo), Bound::Dyn(self.hi))
        } else {
            (Bound::Const(0), Bound::Const(self.k.dims[d] as i64))
        };
        counted_loop(self, lo, hi, 1, &mut |s: &mut Self, i| {
            s.index.push(i);
            if d + 1 < s.inner {
                s.outer(d + 1);
            } else {
                s.row_pointers();
                s.row_body();
            }
            s.index.pop();
        });
    }

    fn row_pointers(&mut self) {
        for a in self.k.accesses.keys() {
            let mut p = self.base[a];
            for (d, &i) in self.index.iter().enumerate() {
                let stride = self.k.accesses[a].strides[d];
                if stride != 0 {
                    let step = self.b.ins().imul_imm_s(i, (stride * 4) as i64);
                    p = self.b.ins().iadd(p, step);
                }
            }
            self.row[a] = p;
        }
    }

    /// Computes the expressions fixed at `level` (as scalars, plus splats where
    /// the vector body needs them).
    fn fixed(&mut self, level: Level) {
        let m = self.mode(Width::Scalar);
        for e in self.k.exprs.keys() {
            if self.expr_level[e] != level {
                continue;
            }
            let v = match self.k.exprs[e] {
                Expr::Load(a) => self.b.ins().load(types::F32, mem(), self.row[a], 0),
                Expr::Const(c) => m.f(self.b, c),
                Expr::Compute(op) => {
                    let fixed = &self.fixed_scalar;
                    emit_op(self.b, m, op, &|x| fixed[x].expect("operand fixed earlier"))
                }
            };
            self.fixed_scalar[e] = Some(v);
            if self.needs_vector[e] {
                self.fixed_vector[e] = Some(self.b.ins().splat(types::F32X4, v));
            }
        }
    }

    fn row_body(&mut self) {
        let k = self.k;
        self.fixed(Level::Row);
        let in_registers =
            |r: &crate::kernel::Reduction| k.accesses[r.access].strides[self.inner] == 0;
        let sums: Vec<usize> = (0..k.reductions.len())
            .filter(|&i| k.reductions[i].op == ReduceOp::Sum && in_registers(&k.reductions[i]))
            .collect();
        self.packs.clear();
        for members in sums.chunks(4).filter(|c| c.len() >= 2) {
            let var = self.b.declare_var(types::F32X4);
            let mut start = self.mode(Width::Vector).f(self.b, 0.0);
            for (lane, &i) in members.iter().enumerate() {
                if k.needs_init(&k.reductions[i]) {
                    let r = &k.reductions[i];
                    let x = self.b.ins().load(types::F32, mem(), self.row[r.access], 0);
                    start = self.b.ins().insertlane(start, x, lane as u8);
                }
            }
            self.b.def_var(var, start);
            self.packs.push(Pack {
                var,
                members: members.to_vec(),
            });
        }
        let packed: Vec<bool> = (0..k.reductions.len())
            .map(|i| self.packs.iter().any(|p| p.members.contains(&i)))
            .collect();
        for (i, r) in k.reductions.iter().enumerate() {
            if !in_registers(r) || packed[i] {
                continue;
            }
            let scalar = self.b.declare_var(types::F32);
            let start = if self.k.needs_init(r) {
                self.b.ins().load(types::F32, mem(), self.row[r.access], 0)
            } else {
                self.b.ins().f32const(identity(r.op))
            };
            self.b.def_var(scalar, start);
            let vector = match r.op {
                ReduceOp::Sum => None,
                ReduceOp::Max => {
                    let v = self.b.declare_var(types::F32X4);
                    let init = self.mode(Width::Vector).f(self.b, f32::NEG_INFINITY);
                    self.b.def_var(v, init);
                    Some(v)
                }
            };
            self.acc[i] = Some(Accumulator { scalar, vector });
        }
        let (lo, hi) = if self.split == SplitLoop::Inner
            || (self.inner == 0 && self.split == SplitLoop::Outer)
        {
            (Bound::Dyn(self.lo), Bound::Dyn(self.hi))
        } else {
            (
                Bound::Const(0),
                Bound::Const(self.k.dims[self.inner] as i64),
            )
        };
        let body: usize = (k.exprs.iter())
            .filter(|&(e, _)| self.expr_level[e] == Level::Element)
            .map(|(_, expr)| cost(expr))
            .sum();
        let unroll = if body > UNROLL_MAX_COST { 1 } else { UNROLL };
        let unrolled = counted_loop(self, lo, hi, 4 * unroll, &mut |s: &mut Self, j| {
            for u in 0..unroll {
                let ju = s.b.ins().iadd_imm_s(j, 4 * u);
                s.element(Width::Vector, ju);
            }
        });
        let after = counted_loop(self, unrolled, hi, 4, &mut |s: &mut Self, j| {
            s.element(Width::Vector, j)
        });
        counted_loop(self, after, hi, 1, &mut |s: &mut Self, j| {
            s.element(Width::Scalar, j)
        });
        for pack in std::mem::take(&mut self.packs) {
            let sums = self.b.use_var(pack.var);
            for (lane, &i) in pack.members.iter().enumerate() {
                let total = self.b.ins().extractlane(sums, lane as u8);
                let at = self.row[k.reductions[i].access];
                self.b.ins().store(mem(), total, at, 0);
            }
        }
        let m = self.mode(Width::Scalar);
        for (i, r) in k.reductions.iter().enumerate() {
            if let Some(acc) = self.acc[i].take() {
                let mut total = self.b.use_var(acc.scalar);
                if let Some(v) = acc.vector {
                    let v = self.b.use_var(v);
                    for lane in 0..4u8 {
                        let x = self.b.ins().extractlane(v, lane);
                        total = m.max(self.b, total, x);
                    }
                }
                self.b.ins().store(mem(), total, self.row[r.access], 0);
            }
        }
    }

    /// One step of the innermost loop at index `j`: four lanes or one.
    fn element(&mut self, width: Width, j: Value) {
        let k = self.k;
        let m = self.mode(width);
        let (ty, lanes) = match width {
            Width::Scalar => (types::F32, 1),
            Width::Vector => (types::F32X4, 4),
        };
        let byte = self.b.ins().ishl_imm_s(j, 2);
        let mut values: SecondaryMap<ExprId, Option<Value>> = SecondaryMap::with_default(None);
        for e in self.k.exprs.keys() {
            if self.expr_level[e] != Level::Element {
                continue;
            }
            let v = match self.k.exprs[e] {
                Expr::Load(a) => {
                    let stride = self.k.accesses[a].strides[self.inner];
                    if stride == 1 {
                        let at = self.b.ins().iadd(self.row[a], byte);
                        self.b.ins().load(ty, mem(), at, 0)
                    } else {
                        let offset = self.b.ins().imul_imm_s(j, (stride * 4) as i64);
                        let at = self.b.ins().iadd(self.row[a], offset);
                        let first = self.b.ins().load(types::F32, mem(), at, 0);
                        if lanes == 1 {
                            first
                        } else {
                            let mut v = self.b.ins().scalar_to_vector(types::F32X4, first);
                            for lane in 1..4u8 {
                                let step = (stride * 4 * usize::from(lane)) as i64;
                                let at = self.b.ins().iadd_imm_s(at, step);
                                let x = self.b.ins().load(types::F32, mem(), at, 0);
                                v = self.b.ins().insertlane(v, x, lane);
                            }
                            v
                        }
                    }
                }
                // A constant is fixed at kernel level, so never reached here;
                // emitting it is still right.
                Expr::Const(c) => m.f(self.b, c),
                Expr::Compute(op) => {
                    let (fs, fv) = (&self.fixed_scalar, &self.fixed_vector);
                    let get = |x: ExprId| {
                        values[x].unwrap_or_else(|| match width {
                            Width::Scalar => fs[x].expect("fixed operand"),
                            Width::Vector => fv[x].expect("fixed operand splat"),
                        })
                    };
                    emit_op(self.b, m, op, &get)
                }
            };
            values[e] = Some(v);
        }
        let get = |s: &Self, x: ExprId| {
            values[x].unwrap_or_else(|| match width {
                Width::Scalar => s.fixed_scalar[x].expect("fixed value"),
                Width::Vector => s.fixed_vector[x].expect("fixed splat"),
            })
        };
        for &(e, a) in &self.k.stores {
            let v = get(self, e);
            let at = self.b.ins().iadd(self.row[a], byte);
            self.b.ins().store(mem(), v, at, 0);
        }
        for pack in self.packs.clone() {
            let terms = match width {
                Width::Vector => {
                    let zero = m.f(self.b, 0.0);
                    let mut rows = [zero; 4];
                    for (lane, &i) in pack.members.iter().enumerate() {
                        rows[lane] = get(self, k.reductions[i].value);
                    }
                    transpose4(self.b, rows).to_vec()
                }
                Width::Scalar => {
                    let mut column = self.mode(Width::Vector).f(self.b, 0.0);
                    for (lane, &i) in pack.members.iter().enumerate() {
                        let x = get(self, k.reductions[i].value);
                        column = self.b.ins().insertlane(column, x, lane as u8);
                    }
                    vec![column]
                }
            };
            let mut sums = self.b.use_var(pack.var);
            for t in terms {
                sums = self.b.ins().fadd(sums, t);
            }
            self.b.def_var(pack.var, sums);
        }
        for (i, r) in k.reductions.iter().enumerate() {
            if self.packs.iter().any(|p| p.members.contains(&i)) {
                continue;
            }
            let v = get(self, r.value);
            match self.acc[i] {
                Some(acc) => match (r.op, width, acc.vector) {
                    (ReduceOp::Max, Width::Vector, Some(vector)) => {
                        let a = self.b.use_var(vector);
                        let a = m.max(self.b, a, v);
                        self.b.def_var(vector, a);
                    }
                    (ReduceOp::Max, _, _) => {
                        let a = self.b.use_var(acc.scalar);
                        let a = m.max(self.b, a, v);
                        self.b.def_var(acc.scalar, a);
                    }
                    (ReduceOp::Sum, Width::Scalar, _) => {
                        let a = self.b.use_var(acc.scalar);
                        let a = self.b.ins().fadd(a, v);
                        self.b.def_var(acc.scalar, a);
                    }
                    (ReduceOp::Sum, Width::Vector, _) => {
                        // Lane by lane, so the sum runs in the interpreter's order.
                        let mut a = self.b.use_var(acc.scalar);
                        for lane in 0..4u8 {
                            let x = self.b.ins().extractlane(v, lane);
                            a = self.b.ins().fadd(a, x);
                        }
                        self.b.def_var(acc.scalar, a);
                    }
                },
                None => {
                    let at = self.b.ins().iadd(self.row[r.access], byte);
                    let old = self.b.ins().load(ty, mem(), at, 0);
                    let new = match r.op {
                        ReduceOp::Sum => self.b.ins().fadd(old, v),
                        ReduceOp::Max => m.max(self.b, old, v),
                    };
                    self.b.ins().store(mem(), new, at, 0);
                }
            }
        }
    }
}

impl<'f> Builds<'f> for ClusterEmitter<'_, '_, 'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f> {
        self.b
    }
}

/// `x` rounded to bfloat16, as [`graphc_ir::round_bf16`]: add `0x7FFF` plus the lowest kept
/// bit, clear the low 16 bits, and give NaN lanes the quiet NaN `0x7FC0_0000`.
fn round_bf16(b: &mut FunctionBuilder, m: Mode, x: Value) -> Value {
    let bits = m.bits(b, x);
    let by = b.ins().iconst(types::I32, 16);
    let shifted = b.ins().ushr(bits, by);
    let one = m.i(b, 1);
    let lsb = b.ins().band(shifted, one);
    let half = m.i(b, 0x7FFF);
    let bias = b.ins().iadd(half, lsb);
    let sum = b.ins().iadd(bits, bias);
    let keep = m.i(b, 0xFFFF_0000_u32 as i32);
    let kept = b.ins().band(sum, keep);
    let rounded = m.float_of_bits(b, kept);
    let nan_bits = m.i(b, 0x7FC0_0000);
    let nan = m.float_of_bits(b, nan_bits);
    let is_nan = m.cmp(b, FloatCC::Unordered, x, x);
    m.select(b, is_nan, nan, rounded)
}

/// One elementwise operation on already emitted operands.
fn emit_op(b: &mut FunctionBuilder, m: Mode, op: Compute, get: &dyn Fn(ExprId) -> Value) -> Value {
    match op {
        Compute::Unary(u, x) => {
            let x = get(x);
            match u {
                UnaryOp::Neg => b.ins().fneg(x),
                UnaryOp::Abs => b.ins().fabs(x),
                UnaryOp::Sqrt => b.ins().sqrt(x),
                UnaryOp::Exp => math::exp(b, m, x),
                UnaryOp::Log => math::log(b, m, x),
                UnaryOp::Log1p => math::log1p(b, m, x),
                UnaryOp::Tanh => math::tanh(b, m, x),
                UnaryOp::Sigmoid => math::sigmoid(b, m, x),
                UnaryOp::Sin => math::sin_cos(b, m, x, false),
                UnaryOp::Cos => math::sin_cos(b, m, x, true),
                UnaryOp::Relu => {
                    let zero = m.f(b, 0.0);
                    let negative = m.cmp(b, FloatCC::LessThan, x, zero);
                    m.select(b, negative, zero, x)
                }
                UnaryOp::StopGradient => x,
                UnaryOp::RoundBf16 => round_bf16(b, m, x),
            }
        }
        Compute::Binary(op, x, y) => {
            let (x, y) = (get(x), get(y));
            match op {
                BinaryOp::Add => b.ins().fadd(x, y),
                BinaryOp::Sub => b.ins().fsub(x, y),
                BinaryOp::Mul => b.ins().fmul(x, y),
                BinaryOp::Div => b.ins().fdiv(x, y),
                BinaryOp::Max => m.max(b, x, y),
                BinaryOp::Min => m.min(b, x, y),
            }
        }
        Compute::Compare(op, x, y) => {
            let (x, y) = (get(x), get(y));
            let cc = match op {
                CompareOp::Lt => FloatCC::LessThan,
                CompareOp::Le => FloatCC::LessThanOrEqual,
                CompareOp::Gt => FloatCC::GreaterThan,
                CompareOp::Ge => FloatCC::GreaterThanOrEqual,
                CompareOp::Eq => FloatCC::Equal,
                CompareOp::Ne => FloatCC::NotEqual,
            };
            let mask = m.cmp(b, cc, x, y);
            m.mask_to_one(b, mask)
        }
        Compute::Select(c, x, y) => {
            let (c, x, y) = (get(c), get(x), get(y));
            let zero = m.f(b, 0.0);
            let mask = m.cmp(b, FloatCC::NotEqual, c, zero);
            m.select(b, mask, x, y)
        }
    }
}
