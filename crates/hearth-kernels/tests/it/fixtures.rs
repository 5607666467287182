//! Replays `tests/data/dequant.json` (written by `scripts/gen-dequant-fixtures.py` with the
//! `gguf` Python package): our `dequantize_row` must give the same bits.

use hearth_kernels::{dequantize_row, GgmlType};
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

#[test]
fn dequantize_matches_gguf_py() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dequant.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read fixtures")).expect("json");
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
