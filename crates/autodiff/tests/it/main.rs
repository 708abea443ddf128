//! The integration tests of graphc-autodiff, one module per concern, linked
//! into one binary.

mod finite_differences;
