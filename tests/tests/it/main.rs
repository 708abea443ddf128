//! The integration tests of `graphc-tests`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests; `support` holds the helpers
//! several of them share.

mod accumulate_clip_goldens;
mod activation_goldens;
mod backends_agree;
mod bf16;
mod cnn_goldens;
mod data_parallel;
mod docs_examples;
mod freeze;
mod graph_goldens;
mod image_data;
mod init_schemes;
mod ir_snapshots;
mod loss_goldens;
mod memory;
mod nan_goldens;
mod norm_dropout;
mod norm_embed_goldens;
mod objective_goldens;
mod optimizer_goldens;
mod pytorch_goldens;
mod resume;
mod roundtrip;
mod scheduler_goldens;
mod specs_never_panic;
mod support;
mod tidy;
