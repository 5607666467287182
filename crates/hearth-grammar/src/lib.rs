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
    /// The schema cannot be compiled: a keyword llguidance does not support, a `$ref` that
    /// points outside the schema or at nothing, or constraints no value can satisfy. `what`
    /// names the schema (a tool's by the tool's name); the reason is about that schema alone.
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
    /// Tokens in the trie; logits past it (a model's output rows may outnumber the tokenizer's
    /// tokens) are always masked.
    n_vocab: usize,
    /// End tokens, allowed alone when a constraint has failed so the sequence can stop.
    ends: Vec<u32>,
    /// The tokens free text may continue with at a clean point (see [`FreeText`]); `None` when
    /// some token contains the whole tool-call trigger, so the shortcut would not be exact.
    free_text: Option<SimpleVob>,
}

impl GrammarEnv {
    /// Builds the vocabulary trie and llguidance's token classes (once per model).
    pub fn new(tok: &Tokenizer) -> Result<GrammarEnv, Error> {
        let trie_env = env::TrieEnv::new(tok)?;
        let free_text = free_text_tokens(tok);
        let ends = {
            use toktrie::TokenizerEnv;
            trie_env.tok_trie().eos_tokens().to_vec()
        };
        let tok_env: TokEnv = Arc::new(trie_env);
        let mut factory =
            ParserFactory::new_simple(&tok_env).map_err(|e| Error::Engine(e.to_string()))?;
        // llguidance logs to stderr by default; the server reports problems through `Error`.
        factory.quiet();
        Ok(GrammarEnv {
            factory,
            n_vocab: tok.n_vocab(),
            ends,
            free_text,
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
            free: None,
        })
    }

    /// The error of the first callable tool whose parameters llguidance cannot take on their
    /// own, if any. The combined tool-call grammar's errors quote the whole grammar Hearth
    /// built; compiled alone, a tool's schema gets an error that names the tool and only the
    /// problem in its own schema. Only runs when the combined grammar has failed.
    fn blame_tool(self: &Arc<Self>, tools: &[ToolSpec], mode: &ToolMode) -> Option<Error> {
        let callable = tools::callable(tools, mode).ok()??;
        callable.into_iter().find_map(|t| {
            let what = format!("tool '{}' parameters", t.name);
            match schema::prepare(&t.parameters, &what) {
                Ok(alone) => self
                    .constraint(TopLevelGrammar::from_json_schema(alone), &what)
                    .err(),
                Err(e) => Some(e),
            }
        })
    }
}

/// An error from the combined tool-call grammar that no single tool explains, without the
/// grammar text llguidance appends: the first line, from llguidance's own message on.
fn plain(e: Error) -> Error {
    match e {
        Error::Unsupported { what, reason } => {
            let line = reason.lines().next().unwrap_or_default();
            let message = ["failed to compile JSON schema: ", "): "]
                .iter()
                .find_map(|prefix| line.split_once(prefix).map(|(_, rest)| rest))
                .unwrap_or(line);
            Error::Unsupported {
                what,
                reason: message.to_string(),
            }
        }
        other => other,
    }
}

/// One request's constraint: a grammar matcher fed every token the engine samples.
pub struct Constraint {
    env: Arc<GrammarEnv>,
    matcher: Matcher,
    /// Set when llguidance failed while computing a mask; the next `accept` reports it.
    failed: Option<String>,
    /// Tool mode `auto` before the trigger: the shortcut that spares the grammar's mask.
    free: Option<FreeText>,
}

/// Free text before the tool-call trigger in [`ToolMode::Auto`].
///
/// The grammar's mask over free text walks nearly the whole vocabulary trie (about a millisecond
/// for 49k tokens, several for 262k), yet at a *clean point* (the text so far is complete UTF-8
/// and does not end with the start of `<tool_call>`) its answer never changes: every ordinary
/// token whose bytes are valid UTF-8 (possibly ending inside a character) plus the end tokens.
/// No token can complete the trigger from a clean point unless it holds the whole trigger, and
/// environments whose vocabulary has such a token do not take this shortcut. So at clean points
/// the mask is [`GrammarEnv::free_text`], precomputed; elsewhere, and for good once the trigger
/// is written, llguidance computes it. The matcher consumes every token either way, so the
/// grammar's state is always current.
struct FreeText {
    /// Bytes since the last clean point.
    pending: Vec<u8>,
}

impl FreeText {
    /// Adds a token's bytes; `false` once the trigger has been written (the shortcut is over).
    fn push(&mut self, piece: &[u8]) -> bool {
        self.pending.extend_from_slice(piece);
        let open = tools::OPEN.as_bytes();
        if self.pending.windows(open.len()).any(|w| w == open) {
            return false;
        }
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                // Complete UTF-8: keep only a partial trigger at the end, if any.
                let keep = tools::held_back(text);
                self.pending.drain(..self.pending.len() - keep);
                true
            }
            // Inside a character: wait for the rest.
            Err(e) if e.error_len().is_none() => true,
            // Bytes that are not text (an end token's marker): leave it to the grammar.
            Err(_) => false,
        }
    }

    fn at_clean_point(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The tokens allowed after free text at a clean point: ordinary tokens whose bytes are valid
/// UTF-8 or a valid start of it, and the end tokens. `None` if a token contains the trigger.
fn free_text_tokens(tok: &Tokenizer) -> Option<SimpleVob> {
    let open = tools::OPEN.as_bytes();
    let mut set = SimpleVob::alloc(tok.n_vocab());
    for id in 0..tok.n_vocab() as u32 {
        if tok.is_eog(id) {
            set.allow_token(id);
            continue;
        }
        let piece = tok.token_to_piece(id);
        if tok.is_control(id) || piece.is_empty() {
            continue;
        }
        if piece.windows(open.len()).any(|w| w == open) {
            return None;
        }
        let valid = match std::str::from_utf8(piece) {
            Ok(_) => true,
            // Valid up to an incomplete character at the end.
            Err(e) => e.error_len().is_none(),
        };
        if valid {
            set.allow_token(id);
        }
    }
    Some(set)
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
        let mut c = env
            .constraint(TopLevelGrammar::from_lark(lark), "tool calls")
            .map_err(|e| env.blame_tool(tools, mode).unwrap_or_else(|| plain(e)))?;
        if *mode == ToolMode::Auto && env.free_text.is_some() {
            c.free = Some(FreeText {
                pending: Vec::new(),
            });
        }
        Ok(Some(c))
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
        if let (Some(free), Some(set)) = (&self.free, &self.env.free_text) {
            if free.at_clean_point() {
                apply(set, logits);
                return;
            }
        }
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
            .map_err(|e| format!("token {token} breaks the grammar: {e}"))?;
        if let Some(free) = &mut self.free {
            let piece = toktrie::TokenizerEnv::tok_trie(&**self.env.factory.tok_env()).token(token);
            if !free.push(piece) {
                self.free = None;
            }
        }
        Ok(())
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

    fn env_for(name: &str) -> (Tokenizer, Arc<GrammarEnv>) {
        let path = hearth_fetch::test_model(name)
            .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"));
        let gguf = hearth_gguf::Gguf::open(path).expect("open GGUF");
        let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
        let env = Arc::new(GrammarEnv::new(&tok).expect("env"));
        (tok, env)
    }

    fn finite(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect()
    }

    /// At every clean point of a varied text the precomputed free-text mask is exactly the one
    /// llguidance computes, and the shortcut ends for good at the trigger.
    #[test]
    fn free_text_shortcut_matches_the_grammar() {
        let tools = [ToolSpec {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        }];
        for name in ["smollm2-135m", "gemma3-270m"] {
            let (tok, env) = env_for(name);
            assert!(
                env.free_text.is_some(),
                "{name}: no token holds the trigger"
            );
            let mut c = Constraint::tool_calls(&env, &tools, &ToolMode::Auto)
                .expect("auto")
                .expect("constraint");
            let text =
                "Héllo wörld! 天气 🌦️ <b>x</b> a<tool b <tool_calls> \n\t{\"k\": [1]} <tool_call>";
            let mut compared = 0;
            for id in tok.encode(text, false, false) {
                let free = c.free.as_ref().is_some_and(FreeText::at_clean_point);
                if free {
                    let mut fast = vec![0f32; tok.n_vocab()];
                    c.mask(&mut fast);
                    let mut slow = vec![0f32; tok.n_vocab()];
                    apply(&c.allowed().expect("grammar mask"), &mut slow);
                    assert_eq!(finite(&fast), finite(&slow), "{name}: before token {id}");
                    compared += 1;
                }
                let mut logits = vec![0f32; tok.n_vocab()];
                c.mask(&mut logits);
                assert!(logits[id as usize].is_finite(), "{name}: token {id} masked");
                c.accept(id).expect("accept");
            }
            assert!(compared > 10, "{name}: only {compared} clean points");
            assert!(
                c.free.is_none(),
                "{name}: shortcut still on after the trigger"
            );
        }
    }

    /// The combined grammar's errors (the shape llguidance gives them) lose the grammar text.
    #[test]
    fn combined_grammar_errors_keep_only_the_message() {
        let llguidance = "at 2(7): failed to compile JSON schema: Something went wrong.\n   \
                          1 | start: call calls\n   2 | body: %json {\"anyOf\": []}\n";
        let e = plain(Error::Unsupported {
            what: "tool calls".into(),
            reason: llguidance.into(),
        });
        assert_eq!(
            e.to_string(),
            "unsupported tool calls: Something went wrong."
        );
        let e = plain(Error::Unsupported {
            what: "tool calls".into(),
            reason: "at 1(3): unknown rule\n   1 | start: x\n".into(),
        });
        assert_eq!(e.to_string(), "unsupported tool calls: unknown rule");
    }

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
