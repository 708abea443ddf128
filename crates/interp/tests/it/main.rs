//! The interpreter's integration tests, one binary with a module per area.

mod windowed_goldens;
