//! Property tests: writer-made files of random shape round-trip, and mutated files (flipped
//! bytes, truncations, huge lengths written over any field) never panic.
//!
//! `PROPTEST_CASES=100000 cargo test --release -p hearth-gguf -- fuzz` runs a long campaign.

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{Array, Error, GgmlType, Gguf, Header, Value};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i64>().prop_map(Value::I64),
        any::<bool>().prop_map(Value::Bool),
        (-1e6f32..1e6).prop_map(Value::F32),
        "[a-z<>▁é ]{0,12}".prop_map(Value::String),
    ];
    prop_oneof![
        4 => leaf,
        1 => prop::collection::vec(any::<u32>(), 0..20).prop_map(|v| Value::Array(Array::U32(v))),
        1 => prop::collection::vec("[a-z]{0,6}", 0..20).prop_map(|v| Value::Array(Array::String(v))),
        1 => prop::collection::vec(prop::collection::vec(any::<i8>(), 0..4), 0..4)
            .prop_map(|v| Value::Array(Array::Array(v.into_iter().map(Array::I8).collect()))),
    ]
}

fn tensor_type() -> impl Strategy<Value = GgmlType> {
    prop::sample::select(vec![
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ])
}

prop_compose! {
    fn file()(
        version in 2u32..=3,
        align_pow in prop::option::of(0u32..8),
        kvs in prop::collection::vec(("[a-z.]{1,10}", value()), 0..8),
        tensors in prop::collection::vec((tensor_type(), 1u64..3, prop::collection::vec(1u64..4, 0..3)), 0..5),
    ) -> Vec<u8> {
        let mut w = GgufWriter::new();
        w.version(version);
        if let Some(p) = align_pow {
            w.metadata("general.alignment", Value::U32(1 << p));
        }
        for (k, v) in kvs {
            w.metadata(&k, v);
        }
        for (i, (ty, blocks, rest)) in tensors.into_iter().enumerate() {
            let mut dims = vec![blocks * ty.block_size() as u64];
            dims.extend(rest);
            let n = ty.bytes_for(dims.iter().product()).unwrap() as usize;
            w.tensor(&format!("t{i}"), &dims, ty, vec![i as u8; n]);
        }
        w.to_bytes()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        xor: u8,
    },
    Truncate {
        at: usize,
    },
    /// Writes a u64 over 8 bytes (a length, a count, an offset or a dimension, or part of one).
    Huge {
        at: usize,
        value: u64,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop::sample::select(vec![
        u64::MAX,
        1 << 60,
        1 << 40,
        1 << 32,
        (1 << 31) + 1,
        i64::MAX as u64,
        u64::MAX - 31,
        0,
        5,
    ]);
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), huge).prop_map(|(at, value)| Mutation::Huge { at, value }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip { at, xor } => {
            let i = at % bytes.len();
            bytes[i] ^= xor;
        }
        Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
        Mutation::Huge { at, value } => {
            let i = at % bytes.len();
            for (j, b) in value.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + j) {
                    *slot = b;
                }
            }
        }
        Mutation::Insert { at, bytes: ins } => {
            let i = at % bytes.len();
            bytes.splice(i..i, ins.iter().copied());
        }
    }
}

/// What every input must satisfy: no panic, and answers that are consistent with each other.
pub fn check_no_panic(bytes: &[u8]) {
    match Header::parse(bytes) {
        Ok(h) => {
            assert!(h.data_offset <= h.file_bytes_needed());
            assert!(h.alignment.is_power_of_two());
        }
        Err(Error::Truncated {
            needed, available, ..
        }) => {
            assert!(
                needed > available,
                "needed {needed} <= available {available}"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(g) = Gguf::from_bytes(bytes.to_vec()) {
        for t in g.tensors() {
            assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
            assert_eq!(g.tensor(&t.name), Some(t));
        }
        // A file without tensors may omit the padding that ends at data_offset.
        assert!(g.tensors().is_empty() || g.header().file_bytes_needed() <= g.file_size());
    }
}

/// 512 cases by default; `PROPTEST_CASES` overrides it for a long campaign.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_valid_files_round_trip(bytes in file()) {
        let g = Gguf::from_bytes(bytes.clone()).unwrap();
        let h = Header::parse(&bytes).unwrap();
        prop_assert_eq!(g.header(), &h);
        for t in g.tensors() {
            prop_assert!(g.tensor_data(t).iter().all(|&b| b == g.tensor_data(t)[0]));
        }
    }

    #[test]
    fn mutated_files_never_panic(bytes in file(), muts in prop::collection::vec(mutation(), 1..4)) {
        let mut bytes = bytes;
        for m in &muts {
            apply(&mut bytes, m);
        }
        check_no_panic(&bytes);
    }

    #[test]
    fn random_bytes_after_the_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..256), version in 2u32..=3) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend(tail);
        check_no_panic(&bytes);
    }
}
