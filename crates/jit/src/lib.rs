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
//! tasks over one arena (`arena`: huge pages for large steps); `kernel` holds
//! the resulting kernel descriptions; `codegen` (with
//! `simd` and `math`) emits one function per kernel into one `JITModule`;
//! `gemm` runs matrix products (plain loops, dot products or the `gemm`
//! crate, in blocks); `exec` checks arguments and runs the step, splitting
//! large kernels and products across the cores through `team`.

mod arena;
mod codegen;
mod exec;
mod gemm;
mod kernel;
mod math;
mod plan;
mod simd;
mod team;

use graphc_ir::{Backend, DType, Executable, Graph, IrError};

pub use exec::{JitExecutable, StepTimes};

use crate::codegen::Codegen;
use crate::exec::{Code, Step};
use crate::kernel::SplitLoop;
use crate::plan::Task;

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
    let lowered = std::time::Instant::now();
    let mut cg = Codegen::new(options.verify)?;
    enum Pending {
        Ready(Step),
        Kernel {
            index: usize,
            hi: i64,
            chunks: usize,
            inner: bool,
        },
    }
    let mut pending = Vec::new();
    let mut gemms = 0;
    let mut scratch = 0;
    for task in plan.tasks {
        match task {
            Task::Cluster {
                kernel,
                fills,
                chunks,
                split,
            } => {
                for (offset, len, value) in fills {
                    pending.push(Pending::Ready(Step::Fill { offset, len, value }));
                }
                let index = cg.cluster(&kernel, split)?;
                pending.push(Pending::Kernel {
                    index,
                    hi: match split {
                        SplitLoop::Inner => kernel.dims[kernel.dims.len() - 1] as i64,
                        _ => kernel.dims[0] as i64,
                    },
                    chunks,
                    inner: split == SplitLoop::Inner,
                });
            }
            Task::MatMul(call) => {
                gemms += 1;
                scratch = scratch.max(call.scratch());
                pending.push(Pending::Ready(Step::Gemm(call)));
            }
            Task::OneHot {
                rows,
                classes,
                indices,
                out,
            } => {
                let index = cg.one_hot(rows, classes, indices, out)?;
                pending.push(Pending::Kernel {
                    index,
                    hi: 0,
                    chunks: 1,
                    inner: false,
                });
            }
            Task::Fill(offset, len, value) => {
                pending.push(Pending::Ready(Step::Fill { offset, len, value }))
            }
        }
    }
    let (module, fns) = cg.finish()?;
    let generated = std::time::Instant::now();
    let functions = fns.len();
    let steps = pending
        .into_iter()
        .map(|p| match p {
            Pending::Ready(s) => s,
            Pending::Kernel {
                index,
                hi,
                chunks,
                inner,
            } => Step::Kernel {
                f: fns[index],
                hi,
                chunks,
                inner,
            },
        })
        .collect();
    let mut arena = arena::Arena::new(plan.arena_len)?;
    for (offset, data) in &plan.init {
        arena.as_mut_slice()[*offset..*offset + data.len()].copy_from_slice(data);
    }
    Ok(JitExecutable {
        _code: Code::new(module),
        arena,
        scratch: vec![0.0; scratch],
        ints: vec![0; plan.ints_len],
        args: plan.args,
        steps,
        end: plan.end,
        outputs: plan.outputs,
        persistent: plan.persistent,
        stats: Stats {
            functions,
            gemms,
            in_place_assigns: plan.in_place,
            arena_floats: plan.arena_len,
            lower_us: (lowered - start).as_micros() as u64,
            codegen_us: (generated - lowered).as_micros() as u64,
        },
    })
}
