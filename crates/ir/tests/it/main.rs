//! The integration tests of graphc-ir, one module per concern, linked into
//! one binary.

mod verify;
