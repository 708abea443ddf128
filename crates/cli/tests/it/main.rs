//! The integration tests of `graphc-cli`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests; `support` holds the helpers
//! several of them share.

mod bad_input;
mod cli;
mod daily;
mod hostile;
mod loss_cmd;
mod mpi;
mod non_finite;
mod resume_cli;
mod run_dir;
mod support;
mod tutorial;
mod user_path;
