//! The API families beside OpenAI's chat (Anthropic, Ollama, Responses) and OpenAI's
//! compatibility details, through `Router::oneshot` on the real models. One test binary for all
//! four, since each binary links the whole engine and CI pays for every link.

mod anthropic;
mod compat;
mod ollama;
mod responses;
