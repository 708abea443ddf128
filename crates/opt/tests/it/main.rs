//! graphc-opt's integration tests, one binary with a module per area.

mod views;
mod windowed;
