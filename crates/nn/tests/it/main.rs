//! The integration tests of `graphc-nn`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests.

mod build;
mod graph;
mod init;
mod loss;
mod norm;
mod norm_embed;
mod optimizers;
mod sched;
mod spatial;
