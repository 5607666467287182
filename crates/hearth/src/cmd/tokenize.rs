//! `hearth tokenize`: token ids of a text, as the model's own tokenizer makes them.

use clap::Args;
use serde_json::json;

use crate::load;

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// A catalog name or a path to a .gguf.
    pub model: String,
    /// The text to tokenize.
    pub text: String,
    /// Add the model's beginning-of-sequence token (when it uses one).
    #[arg(long)]
    pub bos: bool,
    /// Parse special tokens written in the text (like `<|im_end|>`) as control tokens.
    #[arg(long)]
    pub special: bool,
    /// Print each token's text as well: `[{"id":..,"piece":".."},...]`.
    #[arg(long)]
    pub pieces: bool,
}

pub fn run(a: TokenizeArgs) -> anyhow::Result<()> {
    let (gguf, _entry) = load::open_gguf(Some(&a.model))?;
    let tok = hearth_model::tokenizer::Tokenizer::from_gguf(gguf.metadata())?;
    let mut ids = tok.encode(&a.text, false, a.special);
    if a.bos {
        if let Some(b) = tok.bos() {
            ids.insert(0, b);
        }
    }
    let out = if a.pieces {
        let items: Vec<_> = ids
            .iter()
            .map(|&id| json!({"id": id, "piece": String::from_utf8_lossy(tok.token_to_piece(id))}))
            .collect();
        serde_json::to_string(&items)?
    } else {
        serde_json::to_string(&ids)?
    };
    println!("{out}");
    Ok(())
}
