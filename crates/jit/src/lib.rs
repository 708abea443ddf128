//! The Cranelift JIT backend: lowers a training-step graph to fused native
//! kernels (elementwise clusters and reductions in Cranelift, matrix products
//! through the `gemm` crate) run from a precomputed plan over one arena.
//!
//! Architecture invariant: the JIT never changes what a graph computes; the
//! reference interpreter (`graphc-interp`) is its oracle. Exactly rounded ops
//! (arithmetic, comparisons, sqrt, sums in the interpreter's order, movement)
//! give the interpreter's bits; `exp`, `log`, `log1p`, `tanh` and `sigmoid`
//! are within 4 ulp (module `math`); GEMMs reassociate their sums.
//!
//! Pipeline: `plan` lowers `graphc_opt`'s fusion groups (matrix products with
//! an inner dimension ≤ 4 become kernel expressions) and liveness offsets to
//! steps over one arena (`arena`: huge pages for large steps); `kernel` holds
//! the resulting kernel descriptions; `codegen` (with
//! `simd` and `math`) emits one function per kernel into one `JITModule`;
//! `gemm` runs matrix products (plain loops, dot products or the `gemm`
//! crate, in blocks); `conv` runs convolutions and their gradients (im2col
//! into an arena scratch region live for that step only, then `gemm`; col2im
//! for the input gradient; `winograd` for 3×3 windows with stride 1 on
//! AVX-512 or AVX2, and `shifted`, the patch rows read where they lie in the
//! input, for other 2-d windows with stride 1 on AVX2, both through
//! `convkern`'s vector kernels) and `pool` max pooling and its gradient (plain
//! loops, 2×2 windows at stride 2 on `convkern`'s vector kernels, the
//! interpreter's argmax bit for bit); `exec` checks arguments and
//! runs the step, splitting large kernels, products, convolutions (by
//! samples) and poolings (by planes) across the cores through `team`.
//!
//! A plan is one list of `plan::Step`s (kernel call, GEMM, convolution,
//! pooling, fill) that `exec`
//! runs as it is; debug builds check it with `Plan::validate` (module
//! `validate`) right after lowering, and every `unsafe` block that relies on
//! the plan names that check in its `// SAFETY:` comment.

#![deny(clippy::undocumented_unsafe_blocks)]

mod arena;
#[cfg(target_arch = "x86_64")]
mod bf16gemm;
mod codegen;
mod conv;
mod convkern;
mod exec;
mod gemm;
mod kernel;
mod math;
mod plan;
mod pool;
mod shifted;
mod simd;
mod team;
mod validate;
mod winograd;

use graphc_ir::{Backend, DType, Executable, Graph, IrError};

pub use exec::{JitExecutable, StepTimes};

use crate::codegen::Codegen;
use crate::exec::Code;
use crate::plan::{Kernel, Step};

/// The JIT as a [`Backend`] (verifier on in debug builds, off in release).
#[derive(Debug, Clone, Copy, Default)]
pub struct Jit;

impl Backend for Jit {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, IrError> {
        Ok(Box::new(compile_with(graph, &Options::default())?))
    }
}

/// Compilation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Run Cranelift's IR verifier on every function (costs ~40 % of compile time).
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            verify: cfg!(debug_assertions),
        }
    }
}

/// Compile statistics of one executable, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Generated Cranelift functions.
    pub functions: usize,
    /// GEMM calls per step.
    pub gemms: usize,
    /// Assigns written in place (no end-of-step copy).
    pub in_place_assigns: usize,
    /// Floats in the arena.
    pub arena_floats: usize,
    /// Max-pooling steps that write their argmaxes (forward) or scatter
    /// through them (gradient) instead of searching the input again.
    pub argmax_pools: usize,
    /// Microseconds spent partitioning and laying out the graph.
    pub lower_us: u64,
    /// Microseconds spent generating and linking machine code.
    pub codegen_us: u64,
}

/// Compiles `graph` into a [`JitExecutable`] with explicit [`Options`].
pub fn compile_with(graph: &Graph, options: &Options) -> Result<JitExecutable, IrError> {
    graph.verify()?;
    for o in graph.outputs() {
        if graph.dtype(o.node) != DType::F32 {
            return Err(IrError::Compile(format!("output {:?} is not f32", o.name)));
        }
    }
    let start = std::time::Instant::now();
    let plan = plan::lower(graph)?;
    if cfg!(debug_assertions) {
        plan.validate()?;
    }
    codegen::dump("plan.txt", &plan.to_string());
    let lowered = std::time::Instant::now();
    let mut cg = Codegen::new(options.verify)?;
    for kernel in plan.kernels.values() {
        match kernel {
            Kernel::Cluster { cluster, split } => cg.cluster(cluster, *split)?,
            Kernel::OneHot(one_hot) => cg.one_hot(one_hot)?,
            Kernel::RandomUniform(random) => cg.random_uniform(random)?,
        }
    }
    let (module, kernels) = cg.finish()?;
    let generated = std::time::Instant::now();
    let functions = kernels.len();
    let gemm_calls = || {
        plan.steps.iter().filter_map(|s| match s {
            Step::Gemm(call) => Some(call),
            Step::Kernel { .. }
            | Step::Conv(_)
            | Step::Pool(_)
            | Step::Fill { .. }
            | Step::SumRanks { .. } => None,
        })
    };
    let gemms = gemm_calls().count();
    let argmax_pools = plan.pools.values().filter(|p| p.index.is_some()).count();
    let scratch = gemm_calls().map(|c| c.scratch()).max().unwrap_or(0);
    let mut arena = arena::Arena::new(plan.arena_len)?;
    // Not a debug check: every extent of the plan lies below `arena_len`.
    assert!(
        arena.as_slice().len() >= plan.arena_len,
        "the arena's mapping does not cover the plan"
    );
    for (offset, data) in &plan.init {
        arena.as_mut_slice()[*offset..*offset + data.len()].copy_from_slice(data);
    }
    Ok(JitExecutable {
        _code: Code::new(module),
        arena,
        scratch: arena::Arena::new(scratch)?,
        ints: vec![0; plan.ints_len],
        args: plan.args,
        kernels,
        convs: plan.convs,
        pools: plan.pools,
        steps: plan.steps,
        end: plan.end,
        assigned: plan.assigned,
        outputs: plan.outputs,
        persistent: plan.persistent,
        stats: Stats {
            functions,
            gemms,
            in_place_assigns: plan.in_place,
            arena_floats: plan.arena_len,
            argmax_pools,
            lower_us: (lowered - start).as_micros() as u64,
            codegen_us: (generated - lowered).as_micros() as u64,
        },
        chooser: team::adaptive().then(team::Chooser::new),
    })
}

#[cfg(test)]
mod tests {
    use graphc_ir::{BinaryOp, TensorType};

    use super::*;

    /// A 1 → 1 linear model's squared error over a batch of `batch` rows.
    fn linear_1_to_1(batch: usize) -> Graph {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[batch, 1]));
        let t = g.input("t", TensorType::f32(&[batch, 1]));
        let w = g.param("w", &[1, 1]);
        let y = g.matmul(x, w, false, false).unwrap();
        let d = g.binary(BinaryOp::Sub, y, t).unwrap();
        let e = g.binary(BinaryOp::Mul, d, d).unwrap();
        let loss = g.sum_all(e).unwrap();
        g.add_output("loss", loss);
        g
    }

    #[test]
    fn a_batch_too_large_for_memory_is_an_error_not_a_wrapped_size() {
        // Issue #11: this batch made the arena's length wrap modulo 2^64.
        for batch in [7686143364045559088, usize::MAX / 2, 1 << 62] {
            let e = Jit.compile(&linear_1_to_1(batch)).err().expect("refused");
            assert!(e.to_string().contains("too large"), "batch {batch}: {e}");
        }
        let mut exe = Jit.compile(&linear_1_to_1(3)).unwrap();
        let x = [1.0, 2.0, 3.0];
        exe.write("w", &[2.0]).unwrap();
        exe.run(&[graphc_ir::Arg::F32(&x), graphc_ir::Arg::F32(&[0.0; 3])])
            .unwrap();
        assert_eq!(exe.output(0), [56.0]);
    }
}
