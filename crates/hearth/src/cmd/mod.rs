//! One module per subcommand.
pub mod bench;
pub mod chat;
pub mod discover;
pub mod lock;
pub mod models;
pub mod perplexity;
pub mod plan;
pub mod pull;
pub mod run;
pub mod serve;
pub mod tokenize;
pub mod verify;
