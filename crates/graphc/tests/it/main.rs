//! The integration tests of `graphc`, as one test binary: a change relinks one executable
//! instead of one per file. Each module is one area of tests.

mod embed_example;
mod fit_loop;
mod optimizer_tutorial;
