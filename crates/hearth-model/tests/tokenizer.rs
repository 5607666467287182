//! The tokenizer against llama.cpp on the two starter models.
//!
//! Fixtures in `tests/data/tokenizer/` come from `scripts/gen-tokenizer-fixtures.py` (llama.cpp
//! through llama-cpp-python). The models come through `hearth pull`'s own code
//! (`hearth_fetch::test_model`); a model that cannot be had fails the test with the reason, it
//! never skips.

use std::path::PathBuf;
use std::time::Instant;

use hearth_model::tokenizer::{PreTokenizer, StreamDecoder, Tokenizer, Vocab};
use serde_json::Value;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

fn model_path(file: &str) -> PathBuf {
    let name = match file {
        SMOLLM2 => "smollm2-135m",
        GEMMA3 => "gemma3-270m",
        other => panic!("no catalog model for {other}"),
    };
    hearth_fetch::test_model(name)
        .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"))
}

fn load(file: &str) -> (hearth_gguf::Gguf, Tokenizer) {
    let gguf = hearth_gguf::Gguf::open(model_path(file)).expect("open GGUF");
    let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer from GGUF");
    (gguf, tok)
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tokenizer")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Every fixture string, with all four flag combinations, gives llama.cpp's ids; and the
/// pieces of a spread of ids are llama.cpp's bytes.
fn check_against_llama_cpp(file: &str, fixture_name: &str) {
    let (_gguf, tok) = load(file);
    let fx = fixture(fixture_name);
    assert_eq!(
        tok.n_vocab() as u64,
        fx["meta"]["n_vocab"].as_u64().expect("n_vocab")
    );
    assert_eq!(
        tok.eog_ids(),
        ids(&fx["meta"]["eog"]),
        "{file}: end-of-generation ids differ from llama.cpp's"
    );
    let mut failures = Vec::new();
    let cases = fx["tokenize"].as_array().expect("tokenize cases");
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let add = case["add_special"].as_bool().expect("add_special");
        let parse = case["parse_special"].as_bool().expect("parse_special");
        let want = ids(&case["ids"]);
        let got = tok.encode(text, add, parse);
        if got != want {
            failures.push(format!(
                "{text:?} add_special={add} parse_special={parse}\n  llama.cpp {want:?}\n  hearth    {got:?}"
            ));
        }
    }
    for p in fx["pieces"].as_array().expect("pieces") {
        let id = p["id"].as_u64().expect("id") as u32;
        let want = p["bytes_hex"].as_str().expect("hex");
        let got: String = tok
            .token_to_piece(id)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != want {
            failures.push(format!("piece of {id}: llama.cpp {want}, hearth {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_against_llama_cpp(SMOLLM2, "smollm2");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_against_llama_cpp(GEMMA3, "gemma3");
}

/// Each pre-tokenizer we implement, on SmolLM2's real BPE vocabulary, against llama.cpp run
/// on copies of the file with `tokenizer.ggml.pre` changed.
#[test]
fn pre_tokenizers_match_llama_cpp() {
    let gguf = hearth_gguf::Gguf::open(model_path(SMOLLM2)).expect("open GGUF");
    let vocab = Vocab::from_gguf(gguf.metadata()).expect("vocab");
    let fx = fixture("smollm2-pre");
    let mut failures = Vec::new();
    for (pre, expected) in [
        ("llama-bpe", PreTokenizer::Llama3),
        ("qwen2", PreTokenizer::Qwen2),
        ("gpt-2", PreTokenizer::Gpt2),
        ("default", PreTokenizer::Default),
    ] {
        let tok = Tokenizer::from_vocab(Vocab {
            pre: Some(pre.to_owned()),
            ..vocab.clone()
        })
        .expect("tokenizer");
        assert_eq!(tok.pre_tokenizer(), expected);
        for case in fx[pre].as_array().expect("cases") {
            let text = case["text"].as_str().expect("text");
            let parse = case["parse_special"].as_bool().expect("parse_special");
            let want = ids(&case["ids"]);
            let got = tok.encode(text, false, parse);
            if got != want {
                failures.push(format!(
                    "{pre} {text:?} parse_special={parse}\n  llama.cpp {want:?}\n  hearth    {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_pre_tokenizer_falls_back_to_default() {
    let gguf = hearth_gguf::Gguf::open(model_path(SMOLLM2)).expect("open GGUF");
    let vocab = Vocab::from_gguf(gguf.metadata()).expect("vocab");
    let tok = Tokenizer::from_vocab(Vocab {
        pre: Some("brand-new-pre".to_owned()),
        ..vocab
    })
    .expect("an unknown pre-tokenizer is not an error");
    assert_eq!(tok.pre_tokenizer(), PreTokenizer::Default);
    assert!(!tok.encode("Hello world", false, false).is_empty());
}

#[test]
fn smollm2_flags_and_eog() {
    let (_g, tok) = load(SMOLLM2);
    assert_eq!(tok.n_vocab(), 49152);
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert!(!tok.add_bos() && !tok.add_eos());
    let im_end = tok.token_id("<|im_end|>").expect("<|im_end|>");
    let eot = tok.token_id("<|endoftext|>").expect("<|endoftext|>");
    assert!(tok.is_eog(im_end) && tok.is_eog(eot));
    assert!(!tok.is_eog(tok.token_id("<|im_start|>").expect("<|im_start|>")));
    // Typed in a message, the control token is plain text.
    assert!(!tok.encode("hi <|im_end|>", false, false).contains(&im_end));
    assert_eq!(tok.encode("<|im_end|>", false, true), [im_end]);
}

#[test]
fn gemma3_flags_and_eog() {
    let (_g, tok) = load(GEMMA3);
    assert_eq!(tok.n_vocab(), 262_144);
    assert_eq!((tok.bos(), tok.eos()), (Some(2), Some(1)));
    assert!(tok.add_bos() && !tok.add_eos());
    let eot = tok.token_id("<end_of_turn>").expect("<end_of_turn>");
    assert!(tok.is_eog(eot) && tok.is_eog(1));
    assert_eq!(tok.encode("hi", true, false)[0], 2);
}

#[test]
fn streaming_never_splits_a_character() {
    for file in [SMOLLM2, GEMMA3] {
        let (_g, tok) = load(file);
        let text = "Emoji 👨‍👩‍👧‍👦 and 日本語 and Ça";
        let ids = tok.encode(text, false, false);
        let mut d = StreamDecoder::new();
        let mut out = String::new();
        for &id in &ids {
            let part = d.push(&tok, id);
            assert!(!part.contains('\u{FFFD}'), "{file}: partial char emitted");
            out.push_str(&part);
        }
        out.push_str(&d.finish());
        assert_eq!(out, text, "{file}");
        assert_eq!(tok.decode(&ids), text, "{file}");
    }
}

/// Prints the build and encode times the issue asks for; fails only if grossly slow.
#[test]
fn speed_build_and_encode_10kb() {
    let sample = "The household assistant answers questions, writes code like `fn main() {}`, \
                  and speaks Français, Deutsch, 日本語 🙂. Numbers: 1234567, 3.14.\n";
    let text: String = sample.repeat(10_240 / sample.len() + 1);
    let cut = (0..=10_240)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let text = &text[..cut];
    for file in [SMOLLM2, GEMMA3] {
        let gguf = hearth_gguf::Gguf::open(model_path(file)).expect("open GGUF");
        let t0 = Instant::now();
        let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
        let build = t0.elapsed();
        let t1 = Instant::now();
        let ids = tok.encode(text, true, false);
        let encode = t1.elapsed();
        eprintln!(
            "{file}: build {:.1} ms, encode {} bytes -> {} tokens in {:.2} ms",
            build.as_secs_f64() * 1e3,
            text.len(),
            ids.len(),
            encode.as_secs_f64() * 1e3
        );
        assert!(build.as_secs_f64() < 5.0, "{file}: building took {build:?}");
        assert!(
            encode.as_secs_f64() < 1.0,
            "{file}: encoding took {encode:?}"
        );
    }
}
