//! Integration tests for hearth-gguf, one binary (see each module).

mod corpus;
mod errors;
mod fuzz;
mod raw;
mod real_models;
mod roundtrip;
