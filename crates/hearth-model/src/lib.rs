//! hearth-model
