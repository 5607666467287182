//! hearth-gguf
mod types;
pub use types::{GgmlType, QK_K};
