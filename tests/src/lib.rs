//! Nothing: `graphc-tests` is its integration test binary, `tests/it`, whose `support`
//! module holds the shared harness. A package needs a library or binary target, so this is it.

#![forbid(unsafe_code)]
