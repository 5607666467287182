//! hearth-fetch
