//! hearth-model: architectures, tokenizer, chat templates, sampler.
pub mod chat;
pub mod tokenizer;
