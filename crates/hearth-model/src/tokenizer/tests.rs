//! Unit tests on small hand-made vocabularies. Agreement with llama.cpp on real models is
//! checked by the integration tests in `tests/tokenizer.rs`.

use super::*;

fn spm_vocab() -> Vocab {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<end_of_turn>", "\n\n"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![2, 3, 3, 3, 4];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for t in [
        "▁", "h", "e", "l", "o", "he", "ll", "llo", "hello", "▁hello", "▁w", "w",
    ] {
        tokens.push(t.to_string());
        types.push(1);
    }
    let scores = (0..tokens.len())
        .map(|i| {
            if tokens[i].len() > 1 {
                tokens[i].len() as f32
            } else {
                0.0
            }
        })
        .collect();
    Vocab {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        add_space_prefix: Some(true),
        ..Vocab::default()
    }
}

#[test]
fn spm_merges_and_byte_fallback() {
    let t = Tokenizer::from_vocab(spm_vocab()).expect("vocab");
    let ids = t.encode("hello wé", true, false);
    let texts: Vec<&str> = ids.iter().map(|&i| t.token_text(i)).collect();
    assert_eq!(texts, ["<s>", "▁hello", "▁w", "<0xC3>", "<0xA9>"]);
    assert_eq!(t.decode(&ids[1..]), " hello wé");
    assert!(t.is_eog(2) && t.is_eog(3));
}

#[test]
fn special_tokens_only_when_asked() {
    let t = Tokenizer::from_vocab(spm_vocab()).expect("vocab");
    let with = t.encode("hello<end_of_turn>", false, true);
    assert_eq!(*with.last().expect("ids"), 3);
    let without = t.encode("hello<end_of_turn>", false, false);
    assert!(!without.contains(&3));
    // User-defined tokens are split out even without parse_special.
    let nl = t.encode("hello\n\nhello", false, false);
    assert!(nl.contains(&4));
}

#[test]
fn unknown_model_is_named() {
    let v = Vocab {
        model: "bert".into(),
        tokens: vec!["a".into()],
        ..Vocab::default()
    };
    let e = Tokenizer::from_vocab(v).expect_err("bert is not supported");
    let msg = e.to_string();
    assert!(msg.contains("bert") && msg.contains("gpt2"), "{msg}");
}

#[test]
fn bpe_requires_merges() {
    let v = Vocab {
        model: "gpt2".into(),
        pre: Some("smollm".into()),
        tokens: vec!["a".into()],
        ..Vocab::default()
    };
    let msg = Tokenizer::from_vocab(v).expect_err("no merges").to_string();
    assert!(msg.contains("tokenizer.ggml.merges"), "{msg}");
}

#[test]
fn bpe_merges_by_rank() {
    let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġa"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let merges = vec!["b c".to_string(), "a b".into(), "a bc".into(), "Ġ a".into()];
    let v = Vocab {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens,
        merges: Some(merges),
        ..Vocab::default()
    };
    let t = Tokenizer::from_vocab(v).expect("vocab");
    // "b c" ranks first, so "abc" = a + bc -> abc.
    assert_eq!(t.encode("abc", false, false), [5]);
    assert_eq!(t.encode("ab a", false, false), [3, 7]);
    assert_eq!(t.token_to_piece(7), b" a");
    assert!(!t.add_bos());
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<StreamDecoder>();
}

#[test]
fn rendered_prompt_with_bos_text_gets_one_bos() {
    use crate::chat::{Rendered, Segment};
    let t = Tokenizer::from_vocab(spm_vocab()).expect("vocab");
    let r = Rendered {
        segments: vec![
            Segment {
                text: "<s>".into(),
                trusted: true,
            },
            Segment {
                text: "hello</s>".into(),
                trusted: false,
            },
        ],
    };
    let ids = t.encode_rendered(&r, true);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 1, "{ids:?}");
    // `</s>` typed in the message is text, not the control token.
    assert!(!ids.contains(&2), "{ids:?}");
}
