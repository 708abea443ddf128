//! The integration tests of graphc-jit, one module per concern, linked into
//! one binary (each test binary links Cranelift and gemm again); `support`
//! runs a graph on the JIT and the interpreter and compares them.

mod basic;
mod bf16;
mod math_accuracy;
mod nan_semantics;
mod parallel;
mod random_graphs;
mod random_uniform;
mod steps;
mod support;
mod training_step;
mod windowed;
