//! `nn.Embedding` as a one-hot product: each input value, a class index, compared with every
//! row index gives a 0/1 row, and that row times `weight` is the embedding, with no primitive of
//! its own. The product reads every row (`O(count · num_embeddings · embedding_dim)` against a
//! gather's `O(count · embedding_dim)`), which is nothing next to the rest of a step for the
//! vocabularies of tabular data; a gather primitive with a scatter-add gradient is the way if
//! large vocabularies come. Its gradient is PyTorch's `embedding_dense_backward`: each row the
//! sum of the upstream rows of the positions holding its index.
//!
//! A value that is not a whole number in `[0, num_embeddings)` would match no row and give a
//! row of zeros, so the model's input is checked before any step runs (see `graphc_train`'s
//! `Trainer::check_features`); `describe_model` keeps an embedding on the model's input.

use graphc_ir::{CompareOp, Graph, IrError, NodeId, UnaryOp};
use graphc_spec::{EmbeddingSpec, LayerKind, ModelSpec};

use crate::topology::entries;

/// `nn.Embedding` on `h` `[N, *]` of class indices (as f32) with `weight`
/// `[num_embeddings, embedding_dim]`: `[N, *, embedding_dim]`. The `padding_idx` row reads
/// the weight through a stop-gradient, so its gradient is exactly 0 (PyTorch's rule).
pub(crate) fn embedding(
    graph: &mut Graph,
    h: NodeId,
    weight: NodeId,
    spec: &EmbeddingSpec,
) -> Result<NodeId, IrError> {
    let (rows, dim) = (spec.num_embeddings, spec.embedding_dim);
    let shape = graph.shape(h).to_vec();
    let count: usize = shape.iter().product();
    let indices = graph.reshape(h, &[count, 1])?;
    let indices = graph.broadcast(indices, &[count, rows])?;
    // Row indices are exact in f32 up to 2^24, more rows than a weight may have.
    let row_index = graph.constant((0..rows).map(|r| r as f32).collect(), &[1, rows])?;
    let row_index = graph.broadcast(row_index, &[count, rows])?;
    let hot = graph.compare(CompareOp::Eq, indices, row_index)?;
    let table = match spec.padding_idx {
        Some(pad) => {
            let mut is_pad = vec![0.0; rows];
            is_pad[pad] = 1.0;
            let is_pad = graph.constant(is_pad, &[rows, 1])?;
            let is_pad = graph.broadcast(is_pad, &[rows, dim])?;
            let frozen = graph.unary(UnaryOp::StopGradient, weight)?;
            graph.select(is_pad, frozen, weight)?
        }
        None => weight,
    };
    let y = graph.matmul(hot, table, false, false)?;
    let mut out_shape = shape;
    out_shape.push(dim);
    graph.reshape(y, &out_shape)
}

/// The embedding that reads the model's input (the only place `describe_model` allows one),
/// whose class indices the data must hold; of several, the one with the fewest rows, whose
/// range every index must be in.
pub fn input_embedding(model: &ModelSpec) -> Option<&EmbeddingSpec> {
    entries(model)
        .0
        .into_iter()
        .filter_map(|e| {
            if let LayerKind::Embedding(spec) = &e.layer.kind {
                Some(spec)
            } else {
                None
            }
        })
        .min_by_key(|spec| spec.num_embeddings)
}
