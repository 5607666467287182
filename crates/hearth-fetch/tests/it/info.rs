//! `inspect`: the summary `hearth models` shows, from GGUF files and safetensors directories the
//! test writes.

use hearth_fetch::{inspect, Error};
use hearth_gguf::write::GgufWriter;
use hearth_gguf::{GgmlType, Value};

fn q8(n: u64) -> Vec<u8> {
    vec![0u8; GgmlType::Q8_0.bytes_for(n).unwrap() as usize]
}

#[test]
fn gguf_summary_counts_parameters_and_names_the_quantization() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("general.file_type", Value::U32(15))
        .metadata("llama.context_length", Value::U32(8192))
        .metadata("tokenizer.chat_template", Value::String("{{ x }}".into()))
        .tensor("token_embd.weight", &[64, 100], GgmlType::Q8_0, q8(6400))
        .tensor(
            "blk.0.attn_norm.weight",
            &[64],
            GgmlType::F32,
            vec![0u8; 256],
        );
    w.write_to(&path).unwrap();
    let info = inspect(&path).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.parameters, 6464);
    assert_eq!(info.quantization, "Q4_K_M");
    assert!(info.chat_template);
    assert_eq!(info.context_length, Some(8192));

    // Without general.file_type the matrices' type decides; without a template it completes only.
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("gemma3".into()))
        .tensor("token_embd.weight", &[64, 100], GgmlType::Q8_0, q8(6400))
        .tensor("norm.weight", &[6400], GgmlType::F32, vec![0u8; 25600]);
    w.write_to(&path).unwrap();
    let info = inspect(&path).unwrap();
    assert_eq!(info.quantization, "Q8_0");
    assert!(!info.chat_template);
    assert_eq!(info.context_length, None);
}

#[test]
fn a_file_that_is_not_gguf_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    std::fs::write(&path, b"definitely not gguf").unwrap();
    let err = inspect(&path).unwrap_err();
    assert!(matches!(err, Error::Inspect { .. }), "{err}");
    assert!(err.to_string().contains("x.gguf"), "{err}");
}

#[test]
fn safetensors_directory_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        br#"{"model_type": "bert", "max_position_embeddings": 512}"#,
    )
    .unwrap();
    let header = br#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]},"b":{"dtype":"F32","shape":[3],"data_offsets":[48,60]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 60]);
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    let info = inspect(dir.path()).unwrap();
    assert_eq!(info.architecture, "bert");
    assert_eq!(info.parameters, 15);
    assert_eq!(info.quantization, "F32");
    assert_eq!(info.context_length, Some(512));
}
