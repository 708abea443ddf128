//! The integration tests of `graphc-train`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests; `support` holds the helpers
//! several of them share.

mod bad_csv_files;
mod checkpoint;
mod data_no_panic;
mod data_sets;
mod idx_sources;
mod numpy_sources;
mod plot_and_run_files;
mod support;
