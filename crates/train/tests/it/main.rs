//! The integration tests of `graphc-train`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests.

mod checkpoint;
mod plot_and_run_files;
