//! Replays `tests/data/dequant.json` (written by `scripts/gen-dequant-fixtures.py`): our
//! `dequantize_row` must give the same bits as the `gguf` Python package, and our activation
//! encoding the same bytes as llama.cpp's CPU backend.

use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::{dequantize_row, quantize_row, row_bytes, GgmlType};
use serde_json::Value;

fn ty_named(name: &str) -> GgmlType {
    (0..64)
        .filter_map(GgmlType::from_id)
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("unknown type {name} in fixtures"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dequant.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixtures")).expect("json")
}

#[test]
fn dequantize_matches_gguf_py() {
    let doc = load();
    let entries = doc["entries"].as_array().expect("entries");
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for e in entries {
        let ty = ty_named(e["type"].as_str().unwrap());
        let source = e["source"].as_str().unwrap();
        let bytes = unhex(e["hex"].as_str().unwrap());
        let want: Vec<f32> = e["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let mut got = vec![0f32; want.len()];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            dequantize_row(ty, &bytes, &mut got)
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                failures.push(format!("{ty} ({source}): {err}"));
                continue;
            }
            Err(_) => {
                failures.push(format!("{ty} ({source}): dequantize panicked"));
                continue;
            }
        }
        covered.insert(ty.name());
        let bad: Vec<String> = got
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
            .take(3)
            .map(|(i, (g, w))| format!("[{i}] {g:e} vs {w:e}"))
            .collect();
        if !bad.is_empty() {
            failures.push(format!("{ty} ({source}): {}", bad.join(", ")));
        }
    }
    for ty in hearth_kernels::SUPPORTED {
        assert!(
            entries.iter().any(|e| e["type"] == ty.name()),
            "fixtures have no {ty} entry; rerun scripts/gen-dequant-fixtures.py"
        );
    }
    assert!(
        failures.is_empty(),
        "dequantize differs from gguf-py:\n{}",
        failures.join("\n")
    );
}

#[test]
fn activation_encoding_matches_llama_cpp() {
    let doc = load();
    let Some(entries) = doc["activations"].as_array().filter(|a| !a.is_empty()) else {
        eprintln!("fixtures hold no llama.cpp activation encodings; nothing to compare");
        return;
    };
    for (k, e) in entries.iter().enumerate() {
        let ty = ty_named(e["type"].as_str().unwrap());
        let x: Vec<f32> = e["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let want = unhex(e["hex"].as_str().unwrap());
        let mut got = vec![0u8; row_bytes(ty, x.len())];
        quantize_row(ty, &x, &mut got).unwrap();
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            first.is_none(),
            "{ty} row {k}: quantize_row differs from llama.cpp at byte {first:?} (block size {})",
            ty.type_size()
        );
        // Both code paths, whichever one this process uses.
        for level in [Level::Scalar, simd::detect()] {
            let mut again = vec![0u8; got.len()];
            testing::quantize_row_at(level, ty, &x, &mut again)
                .unwrap()
                .unwrap();
            let first = again.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                first.is_none(),
                "{ty} row {k} at {level:?}: differs at byte {first:?}"
            );
        }
    }
}
