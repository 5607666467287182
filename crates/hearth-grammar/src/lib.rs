//! Constrained decoding for Hearth: JSON mode, JSON schemas and tool calls whose output always
//! parses and validates.
//!
//! The work is done by [llguidance], the grammar engine llama.cpp and mistral.rs use: an Earley
//! parser over lexemes matched by derivative-based regexes, which computes the set of tokens
//! allowed next by walking a byte trie of the vocabulary. This crate supplies three things
//! around it:
//!
//! - [`GrammarEnv`], built once per model from Hearth's tokenizer: the vocabulary trie, with
//!   control and end-of-generation tokens marked special so they can never spell JSON (see
//!   `env.rs`), and llguidance's precomputed token classes. Building one for a 262k vocabulary
//!   takes a noticeable fraction of a second; every constraint after that shares it.
//! - [`Constraint`], one per request, implementing [`hearth_model::TokenConstraint`]: the engine
//!   calls `mask` → samples → `accept` each step and stops when `is_finished`.
//! - The grammars: JSON schemas made strict and given bounded whitespace (`schema.rs`), and the
//!   Hermes-format tool-call grammar with its prompt text and output parser ([`tools`]).
//!
//! Only the model's end tokens are allowed once the constrained text is complete, and the
//! constraint reports `is_finished` as soon as nothing but an end token could follow, so the
//! engine stops either way.
//!
//! [llguidance]: https://github.com/guidance-ai/llguidance

use std::sync::Arc;

use hearth_model::tokenizer::Tokenizer;
use hearth_model::TokenConstraint;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use toktrie::{SimpleVob, TokEnv};

mod env;
mod schema;
pub mod tools;

/// What can go wrong building a grammar environment or a constraint. Every variant except
/// [`Error::NoEndToken`], [`Error::VocabTooLarge`] and [`Error::Engine`] is the client's mistake
/// (an HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tokenizer has neither an EOS token nor any end-of-generation token, so a finished
    /// grammar could not end the sequence.
    #[error("the tokenizer has no end-of-sequence or end-of-generation token to end constrained output with")]
    NoEndToken,
    /// More tokens than a `u32` id can name.
    #[error("vocabulary of {n_vocab} tokens is larger than token ids can address")]
    VocabTooLarge { n_vocab: usize },
    /// llguidance could not be set up for this vocabulary.
    #[error("cannot build the grammar engine for this vocabulary: {0}")]
    Engine(String),
    /// The schema is not a JSON schema at all.
    #[error("invalid schema in {what}: {reason}")]
    InvalidSchema { what: String, reason: String },
    /// llguidance rejected the schema or grammar: a keyword it does not support, a broken `$ref`,
    /// or constraints no value can satisfy. The message is llguidance's and names the problem.
    #[error("unsupported {what}: {reason}")]
    Unsupported { what: String, reason: String },
    /// `tool_choice` names a function that is not among the tools.
    #[error("tool_choice names the function '{name}', but the tools offered are [{}]", available.join(", "))]
    UnknownTool {
        name: String,
        available: Vec<String>,
    },
    /// `tool_choice` is `required` with no tools to call.
    #[error("tool_choice 'required' needs at least one tool, but none were given")]
    NoTools,
    /// Two tools share a name, so a call could not say which one it means.
    #[error("two tools are named '{name}'; tool names must be unique")]
    DuplicateTool { name: String },
}

/// One callable function, as the request's `tools[].function` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// The request's `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolMode {
    /// Free text, or tool calls once the model writes `<tool_call>`.
    Auto,
    /// No tool calls and no constraint.
    None,
    /// One or more tool calls and nothing else.
    Required,
    /// Calls to this function only.
    Named(String),
}

/// llguidance's state for one model's vocabulary, shared by every constraint on that model.
pub struct GrammarEnv {
    factory: ParserFactory,
    /// Rows of logits beyond the trie (the model's `n_vocab` may exceed the tokenizer's).
    n_vocab: usize,
    /// End tokens, allowed alone when a constraint has failed so the sequence can stop.
    ends: Vec<u32>,
}

impl GrammarEnv {
    /// Builds the vocabulary trie and llguidance's token classes (once per model).
    pub fn new(tok: &Tokenizer) -> Result<GrammarEnv, Error> {
        let trie_env = env::TrieEnv::new(tok)?;
        let ends = {
            use toktrie::TokenizerEnv;
            trie_env.tok_trie().eos_tokens().to_vec()
        };
        let tok_env: TokEnv = Arc::new(trie_env);
        let mut factory =
            ParserFactory::new_simple(&tok_env).map_err(|e| Error::Engine(e.to_string()))?;
        // Warnings go into errors we return, not to the server's stderr.
        factory.quiet();
        Ok(GrammarEnv {
            factory,
            n_vocab: tok.n_vocab(),
            ends,
        })
    }

    /// Number of tokens the grammar knows; logits beyond this are always masked.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn constraint(
        self: &Arc<Self>,
        grammar: TopLevelGrammar,
        what: &str,
    ) -> Result<Constraint, Error> {
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::Unsupported {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Unsupported {
                what: what.to_string(),
                reason: e,
            });
        }
        Ok(Constraint {
            env: Arc::clone(self),
            matcher,
            failed: None,
        })
    }
}

/// One request's constraint: a grammar matcher fed every token the engine samples.
pub struct Constraint {
    env: Arc<GrammarEnv>,
    matcher: Matcher,
    /// Set when llguidance failed while computing a mask; the next `accept` reports it.
    failed: Option<String>,
}

impl Constraint {
    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
    pub fn json_object(env: &Arc<GrammarEnv>) -> Result<Constraint, Error> {
        let schema = schema::prepare(&serde_json::json!({"type": "object"}), "json_object")?;
        env.constraint(TopLevelGrammar::from_json_schema(schema), "json_object")
    }

    /// A value valid against `schema` (OpenAI's `response_format: {"type": "json_schema"}`).
    pub fn json_schema(
        env: &Arc<GrammarEnv>,
        schema: &serde_json::Value,
    ) -> Result<Constraint, Error> {
        const WHAT: &str = "response_format.json_schema";
        let schema = schema::prepare(schema, WHAT)?;
        env.constraint(TopLevelGrammar::from_json_schema(schema), WHAT)
    }

    /// Tool calls in the Hermes format (see [`tools`]); `None` for [`ToolMode::None`] and for
    /// [`ToolMode::Auto`] without tools, where nothing is constrained.
    pub fn tool_calls(
        env: &Arc<GrammarEnv>,
        tools: &[ToolSpec],
        mode: &ToolMode,
    ) -> Result<Option<Constraint>, Error> {
        let Some(lark) = tools::grammar(tools, mode)? else {
            return Ok(None);
        };
        env.constraint(TopLevelGrammar::from_lark(lark), "tool calls")
            .map(Some)
    }

    /// The tokens allowed next, or the error llguidance gave computing them.
    fn allowed(&mut self) -> Result<SimpleVob, String> {
        self.matcher
            .compute_mask_or_eos()
            .map_err(|e| e.to_string())
    }
}

impl TokenConstraint for Constraint {
    fn mask(&mut self, logits: &mut [f32]) {
        match self.allowed() {
            Ok(allowed) => apply(&allowed, logits),
            Err(e) => {
                // The trait cannot fail here: leave only the end tokens so the sequence stops,
                // and report the error from `accept`.
                let mut ends = SimpleVob::alloc(self.env.n_vocab);
                for &t in &self.env.ends {
                    ends.allow_token(t);
                }
                apply(&ends, logits);
                self.failed = Some(e);
            }
        }
    }

    fn accept(&mut self, token: u32) -> Result<(), String> {
        if let Some(e) = self.failed.take() {
            return Err(format!("grammar failed: {e}"));
        }
        if (token as usize) >= self.env.n_vocab {
            return Err(format!(
                "token {token} is outside the grammar's vocabulary of {} tokens",
                self.env.n_vocab
            ));
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| format!("token {token} breaks the grammar: {e}"))
    }

    fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// Sets every logit whose token is not in `allowed` to negative infinity, including the rows
/// past the end of the vocabulary. Works a 32-token word at a time: whole words of allowed or
/// forbidden tokens are the common case.
fn apply(allowed: &SimpleVob, logits: &mut [f32]) {
    let words = allowed.as_slice();
    for (i, chunk) in logits.chunks_mut(32).enumerate() {
        let w = words.get(i).copied().unwrap_or(0);
        if w == u32::MAX {
            continue;
        }
        for (b, l) in chunk.iter_mut().enumerate() {
            if w & (1 << b) == 0 {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_masks_by_bit_and_past_the_vocabulary() {
        let mut v = SimpleVob::alloc(40);
        v.allow_token(1);
        v.allow_token(33);
        let mut logits = vec![1.0f32; 70];
        apply(&v, &mut logits);
        let kept: Vec<usize> = (0..70).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(kept, vec![1, 33]);
    }
}
