//! Model files that lie about their shape are refused before anything is sized from the lie,
//! with an error that names the key, the value and what the tensors say.

use hearth_gguf::{Gguf, Value};
use hearth_model::testing::TinySpec;
use hearth_model::Model;

/// The tiny `arch` model with `{arch}.{key}` set to `value`.
fn lying(arch: &'static str, key: &str, value: Value) -> TinySpec {
    TinySpec {
        metadata_overrides: vec![(format!("{arch}.{key}"), value)],
        ..TinySpec::new(arch)
    }
}

fn open_error(spec: &TinySpec) -> String {
    let gguf = Gguf::from_bytes(spec.build()).expect("GGUF");
    match Model::from_gguf(gguf) {
        Ok(_) => panic!("{spec:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

/// `block_count = 2^31` made `hearth run` reserve 1.3 TB and abort.
#[test]
fn a_huge_block_count_is_refused_before_anything_is_allocated() {
    let e = open_error(&lying("llama", "block_count", Value::U32(1 << 31)));
    assert!(e.contains("llama.block_count = 2147483648"), "{e}");
    assert!(
        e.contains("the file has tensors for 6 layers (blk.0 to blk.5)"),
        "{e}"
    );
}

#[test]
fn every_hyper_parameter_is_checked_against_the_tensors() {
    // (architecture, key set, value, key the error names, what it says)
    let cases: Vec<(&'static str, &str, Value, &str, &str)> = vec![
        (
            "llama",
            "embedding_length",
            Value::U32(512),
            "embedding_length = 512",
            "token_embd.weight is 256 wide",
        ),
        (
            "llama",
            "block_count",
            Value::U32(7),
            "block_count = 7",
            "6 layers",
        ),
        (
            "llama",
            "block_count",
            Value::U32(0),
            "block_count = 0",
            "6 layers",
        ),
        (
            "qwen2",
            "block_count",
            Value::U32(u32::MAX),
            "block_count = 4294967295",
            "6 layers",
        ),
        (
            "llama",
            "attention.head_count",
            Value::U32(8),
            "attention.head_count = 8",
            "blk.0.attn_q.weight has 256 rows, not head_count × key_length = 8 × 64 = 512",
        ),
        (
            "llama",
            "attention.head_count",
            Value::U32(0),
            "attention.head_count = 0",
            "non-zero",
        ),
        (
            "llama",
            "attention.head_count_kv",
            Value::U32(4),
            "attention.head_count_kv = 4",
            "blk.0.attn_k.weight has 128 rows, not head_count_kv × key_length = 4 × 64 = 256",
        ),
        (
            "llama",
            "attention.head_count_kv",
            Value::U32(3),
            "attention.head_count_kv = 3",
            "divide",
        ),
        (
            "qwen3",
            "attention.key_length",
            Value::U32(32),
            "attention.key_length = 32",
            "blk.0.attn_q.weight and blk.0.attn_k.weight hold heads 64 wide",
        ),
        (
            "llama",
            "attention.key_length",
            Value::U32(0),
            "attention.key_length = 0",
            "heads 64 wide",
        ),
        (
            "llama",
            "attention.value_length",
            Value::U32(1 << 30),
            "attention.value_length = 1073741824",
            "blk.0.attn_v.weight holds heads 64 wide (128 rows for 2 heads)",
        ),
        (
            "gemma3",
            "feed_forward_length",
            Value::U32(1024),
            "feed_forward_length = 1024",
            "blk.0.ffn_up.weight has 512 rows",
        ),
        (
            "llama",
            "context_length",
            Value::U32(0),
            "context_length = 0",
            "between 1 and 16777216",
        ),
        (
            "llama",
            "context_length",
            Value::U32(u32::MAX),
            "context_length = 4294967295",
            "between 1 and 16777216",
        ),
        (
            "llama",
            "rope.dimension_count",
            Value::U32(66),
            "rope.dimension_count = 66",
            "at most the head width",
        ),
        (
            "llama",
            "rope.freq_base",
            Value::F32(f32::NAN),
            "rope.freq_base = NaN",
            "finite",
        ),
        (
            "llama",
            "attention.layer_norm_rms_epsilon",
            Value::F32(-1.0),
            "attention.layer_norm_rms_epsilon = -1",
            "above zero",
        ),
        (
            "gemma3",
            "rope.freq_base_swa",
            Value::F32(f32::INFINITY),
            "rope.freq_base_swa = inf",
            "finite",
        ),
        (
            "gemma3",
            "final_logit_softcapping",
            Value::F32(-30.0),
            "final_logit_softcapping = -30",
            "above zero",
        ),
    ];
    for (arch, key, value, names, says) in cases {
        let e = open_error(&lying(arch, key, value.clone()));
        assert!(
            e.contains(&format!("{arch}.{names}")),
            "{arch}.{key} = {value:?}: {e}"
        );
        assert!(e.contains(says), "{arch}.{key} = {value:?}: {e}");
    }
}

/// The real shapes still load, for every architecture.
#[test]
fn honest_tiny_models_still_load() {
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        let gguf = Gguf::from_bytes(TinySpec::new(arch).build()).expect("GGUF");
        let m = Model::from_gguf(gguf).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(m.config().n_layer, 6);
    }
}

/// A mixture of experts' counts and widths are checked against its expert tensors, and a count
/// that would route a token to more experts than there are is refused.
#[test]
fn expert_counts_are_checked_against_the_expert_tensors() {
    let cases: Vec<(&'static str, &str, Value, &str)> = vec![
        (
            "qwen3moe",
            "expert_count",
            Value::U32(16),
            "qwen3moe.expert_count = 16, but blk.0.ffn_up_exps.weight has shape [256, 256, 8]",
        ),
        (
            "qwen3moe",
            "expert_used_count",
            Value::U32(9),
            "qwen3moe.expert_used_count = 9 is invalid: must be between 1 and expert_count",
        ),
        (
            "qwen3moe",
            "expert_used_count",
            Value::U32(0),
            "qwen3moe.expert_used_count = 0 is invalid",
        ),
        (
            "qwen3moe",
            "expert_count",
            Value::U32(100_000),
            "qwen3moe.expert_count = 100000 is invalid: must be at most 512",
        ),
        (
            "qwen3moe",
            "expert_feed_forward_length",
            Value::U32(128),
            "qwen3moe.expert_feed_forward_length = 128, but blk.0.ffn_up_exps.weight has experts 256 wide",
        ),
        (
            "qwen2moe",
            "expert_shared_feed_forward_length",
            Value::U32(128),
            "qwen2moe.expert_shared_feed_forward_length = 128, but blk.0.ffn_up_shexp.weight has 512 rows",
        ),
    ];
    for (arch, key, value, want) in cases {
        let e = open_error(&lying(arch, key, value));
        assert!(e.contains(want), "{arch}.{key}: {e}");
    }
    // A Qwen MoE whose metadata forgot its experts.
    let spec = TinySpec {
        metadata_overrides: vec![("qwen3moe.expert_count".into(), Value::U32(0))],
        ..TinySpec::new("qwen3moe")
    };
    let e = open_error(&spec);
    assert!(e.contains("qwen3moe.expert_count"), "{e}");
}

/// Mixtral files converted before llama.cpp stored experts as 3-D tensors keep each expert in a
/// tensor of its own (`blk.N.ffn_up.E.weight`). They are refused naming that layout and what to
/// do about it, not a missing `blk.0.ffn_up.weight`.
#[test]
fn the_older_per_expert_mixtral_layout_is_refused_by_name() {
    let spec = TinySpec {
        metadata_overrides: vec![
            ("llama.expert_count".into(), Value::U32(2)),
            ("llama.expert_used_count".into(), Value::U32(2)),
        ],
        ..TinySpec::new("llama")
    };
    let file = rewritten(&spec, |name, dims| {
        let per_expert = ["ffn_gate", "ffn_up", "ffn_down"].iter().find_map(|m| {
            name.strip_suffix(&format!("{m}.weight"))
                .map(|blk| (blk, m))
        });
        match per_expert {
            Some((blk, m)) => (0..2)
                .map(|e| (format!("{blk}{m}.{e}.weight"), dims.to_vec()))
                .collect(),
            None => vec![(name.to_string(), dims.to_vec())],
        }
    });
    let e = open_bytes_error(file);
    assert!(
        e.contains("stores each expert as its own tensor (blk.0.ffn_up.0.weight"),
        "{e}"
    );
    assert!(e.contains("older Mixtral layout"), "{e}");
    assert!(e.contains("re-convert it with a current llama.cpp"), "{e}");
}

/// `spec`'s file with each tensor replaced by those `change` gives for its name and dims (each
/// with the original's type and bytes): for layouts `TinySpec` does not write.
fn rewritten(spec: &TinySpec, change: impl Fn(&str, &[u64]) -> Vec<(String, Vec<u64>)>) -> Vec<u8> {
    let original = Gguf::from_bytes(spec.build()).expect("GGUF");
    let mut w = hearth_gguf::write::GgufWriter::new();
    for (k, v) in original.metadata().iter() {
        w.metadata(k, v.clone());
    }
    for t in original.tensors() {
        for (name, dims) in change(&t.name, &t.dims) {
            w.tensor(&name, &dims, t.ty, original.tensor_data(t).to_vec());
        }
    }
    w.to_bytes()
}

fn open_bytes_error(file: Vec<u8>) -> String {
    match Model::from_gguf(Gguf::from_bytes(file).expect("GGUF")) {
        Ok(_) => panic!("the file should be refused"),
        Err(e) => e.to_string(),
    }
}

/// A refusal names the tensor or key actually at fault: the expert tensor found when the count
/// is missing, and the model width when the experts' rows disagree with it.
#[test]
fn expert_errors_name_what_the_file_actually_has() {
    let forgot = TinySpec {
        metadata_overrides: vec![("qwen3moe.expert_count".into(), Value::U32(0))],
        ..TinySpec::new("qwen3moe")
    };
    let e = open_bytes_error(rewritten(&forgot, |name, dims| {
        if name.contains("ffn_gate_inp") {
            vec![]
        } else {
            vec![(name.to_string(), dims.to_vec())]
        }
    }));
    assert!(
        e.contains("the file has expert tensors (blk.0.ffn_up_exps.weight)"),
        "{e}"
    );
    // The same elements, in rows 512 wide where the model is 256 wide.
    let e = open_bytes_error(rewritten(&TinySpec::new("qwen3moe"), |name, dims| {
        let dims = if name == "blk.0.ffn_up_exps.weight" {
            vec![512, 128, 8]
        } else {
            dims.to_vec()
        };
        vec![(name.to_string(), dims)]
    }));
    assert!(
        e.contains(
            "qwen3moe.embedding_length = 256, but blk.0.ffn_up_exps.weight has shape [512, 128, 8]"
        ),
        "{e}"
    );
}
