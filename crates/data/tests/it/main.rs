//! graphc-data's integration tests, one binary: each module holds what one former test file held.

mod bad_csv_files;
mod csv_rows;
mod data_no_panic;
mod data_sets;
mod file_features;
mod hostile_files;
mod idx_sources;
mod numpy_sources;
mod support;
