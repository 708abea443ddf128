//! Passes over the IR that make a step cheaper without changing what it
//! computes: common-subexpression elimination, algebraic identities, dead
//! code elimination, and a copy of each shared broadcast per reader (`views`). Debug builds verify the graph after every pass. Also the
//! backend-independent analyses a backend plans a step with: fusion grouping
//! and kernel order (`fusion`), and buffer placement by liveness (`liveness`).
//!
//! Architecture invariant: passes rewrite IR only and analyses only read it;
//! neither emits code.

#![forbid(unsafe_code)]

mod cse;
mod dce;
pub mod fusion;
pub mod liveness;
mod simplify;
mod views;

use graphc_ir::{Graph, IrError};

pub use cse::eliminate_common_subexpressions;
pub use dce::eliminate_dead_code;
pub use simplify::simplify;
pub use views::unshare_broadcasts;

/// A pass rewrites a graph in place.
type Pass = fn(&mut Graph) -> Result<(), IrError>;

/// Runs the standard pipeline; the result computes the same outputs and assigns.
pub fn optimize(graph: &mut Graph) -> Result<(), IrError> {
    let passes: [Pass; 5] = [
        eliminate_common_subexpressions,
        simplify,
        eliminate_common_subexpressions,
        eliminate_dead_code,
        unshare_broadcasts,
    ];
    for pass in passes {
        pass(graph)?;
        if cfg!(debug_assertions) {
            graph.verify()?;
        }
    }
    Ok(())
}
