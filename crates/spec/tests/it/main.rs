//! The integration tests of `graphc-spec`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests; `support` holds the helpers
//! several of them share.

mod daily;
mod data_sources;
mod errors;
mod graph;
mod init_freeze;
mod limits;
mod loss;
mod no_panic;
mod norm_dropout;
mod norm_embed;
mod objective;
mod optimizers;
mod overrides;
mod parse;
mod sched;
mod support;
