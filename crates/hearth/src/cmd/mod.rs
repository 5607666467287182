//! One module per subcommand, and `advise`, the household page's model advice.
pub mod advise;
pub mod bench;
pub mod chat;
pub mod devices;
pub mod discover;
pub mod lock;
pub mod models;
pub mod perplexity;
pub mod plan;
pub mod plan_pool;
pub mod pool;
pub mod pull;
pub mod read;
pub mod run;
pub mod serve;
pub mod tokenize;
pub mod verify;
