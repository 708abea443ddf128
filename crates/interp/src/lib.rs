//! The reference interpreter: executes any verified graph op by op, in f32
//! for training and in f64 for finite-difference gradient checks.
//!
//! Architecture invariant: obviously correct before fast. No fusion, no
//! in-place tricks; each op is one loop over plain `Vec`s, so the JIT's
//! property tests have an oracle a reader can trust at a glance.

#![forbid(unsafe_code)]

mod eval;
mod windowed;

use std::collections::HashMap;

use graphc_ir::{Arg, Backend, DType, Executable, Graph, IrError, NodeId, Op, Ranks};

pub use eval::{evaluate, evaluate_summing, Scalar, Value};

/// The interpreter as a [`Backend`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Interp;

impl Backend for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, IrError> {
        Ok(Box::new(Program::new(graph)?))
    }
}

/// A graph ready to run on the interpreter, with its persistent buffers.
#[derive(Debug, Clone)]
pub struct Program {
    graph: Graph,
    order: Vec<NodeId>,
    persistent: HashMap<String, Vec<f32>>,
    /// The names of the persistent buffers in slot (`Graph::persistent()`) order.
    slots: Vec<String>,
    /// The slot each assign writes, in `Graph::assigns()` order.
    assigned: Vec<usize>,
    outputs: Vec<Vec<f32>>,
}

impl Program {
    /// Verifies `graph` and allocates its persistent buffers at zero.
    pub fn new(graph: &Graph) -> Result<Program, IrError> {
        graph.verify()?;
        for o in graph.outputs() {
            if graph.dtype(o.node) != DType::F32 {
                return Err(IrError::Compile(format!("output {:?} is not f32", o.name)));
            }
        }
        let buffers: Vec<(String, Vec<f32>)> = graph
            .persistent()
            .into_iter()
            .map(|id| {
                let node = graph.node(id);
                let name = node.op.leaf_name().unwrap_or_default().to_string();
                (name, vec![0.0; node.ty.numel()])
            })
            .collect();
        let slots = buffers.iter().map(|(name, _)| name.clone()).collect();
        let persistent = buffers.into_iter().collect();
        let targets = graph.persistent();
        let assigned = (graph.assigns().iter())
            .map(|a| targets.iter().position(|&t| t == a.target))
            .collect::<Option<_>>()
            .ok_or_else(|| IrError::Compile("an assign's target is not persistent".into()))?;
        Ok(Program {
            graph: graph.clone(),
            order: graph.topo_order()?,
            persistent,
            slots,
            assigned,
            outputs: vec![Vec::new(); graph.outputs().len()],
        })
    }
}

impl Executable for Program {
    fn run_summing(&mut self, args: &[Arg<'_>], ranks: &mut dyn Ranks) -> Result<(), IrError> {
        let args: Vec<Value<f32>> = args
            .iter()
            .map(|a| match a {
                Arg::F32(d) => Value::F(d.to_vec()),
                Arg::I64(d) => Value::I(d.to_vec()),
            })
            .collect();
        let mut sum = |values: &mut [f32]| ranks.sum(values);
        let values = evaluate_summing(&self.graph, &self.order, &args, &self.persistent, &mut sum)?;
        for (slot, o) in self.outputs.iter_mut().zip(self.graph.outputs()) {
            slot.clone_from(values[o.node.index()].as_f());
        }
        // The interpreter has every value only at the end: assigns are reported then.
        for (a, &slot) in self.graph.assigns().iter().zip(&self.assigned) {
            let value = values[a.value.index()].as_f();
            ranks.assigned(slot, value);
            if let Some(buffer) = self.persistent.get_mut(&self.slots[slot]) {
                buffer.clone_from(value);
            }
        }
        Ok(())
    }

    fn sum_ranks_lengths(&self) -> Vec<usize> {
        let graph = &self.graph;
        (self.order.iter())
            .filter(|&&id| graph.node(id).op == Op::SumRanks)
            .map(|&id| graph.node(id).ty.numel())
            .filter(|&len| len > 0)
            .collect()
    }

    fn output(&self, index: usize) -> &[f32] {
        &self.outputs[index]
    }

    fn slot(&self, slot: usize) -> &[f32] {
        &self.persistent[&self.slots[slot]]
    }

    fn slot_mut(&mut self, slot: usize) -> &mut [f32] {
        self.persistent
            .get_mut(&self.slots[slot])
            .map_or(&mut [], Vec::as_mut_slice)
    }

    fn write_slot(&mut self, slot: usize, data: &[f32]) -> Result<(), IrError> {
        let name = self.slots[slot].clone();
        self.write(&name, data)
    }

    fn read(&self, name: &str) -> Option<&[f32]> {
        self.persistent.get(name).map(|v| v.as_slice())
    }

    fn write(&mut self, name: &str, data: &[f32]) -> Result<(), IrError> {
        match self.persistent.get_mut(name) {
            Some(buffer) if buffer.len() == data.len() => {
                buffer.copy_from_slice(data);
                Ok(())
            }
            Some(buffer) => Err(IrError::Argument(format!(
                "{name} holds {} values, got {}",
                buffer.len(),
                data.len()
            ))),
            None => Err(IrError::Argument(format!(
                "no parameter or state named {name:?}"
            ))),
        }
    }
}
