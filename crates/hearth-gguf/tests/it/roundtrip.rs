//! Writer → reader round trips: every value type, nested arrays, versions, alignment, tensors.

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{Array, Error, GgmlType, Gguf, Header, Value};

/// One key per value type and per array element type, nested and empty arrays included.
pub fn all_values() -> Vec<(String, Value)> {
    let scalars = vec![
        Value::U8(200),
        Value::I8(-100),
        Value::U16(60_000),
        Value::I16(-30_000),
        Value::U32(4_000_000_000),
        Value::I32(-2_000_000_000),
        Value::F32(1.5e-6),
        Value::Bool(true),
        Value::Bool(false),
        Value::String("héllo ✓".to_string()),
        Value::String(String::new()),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F64(-2.25e300),
    ];
    let arrays = vec![
        Array::U8(vec![0, 1, 255]),
        Array::I8(vec![-128, 127]),
        Array::U16(vec![1, 65535]),
        Array::I16(vec![-1, 2]),
        Array::U32(vec![7; 5]),
        Array::I32(vec![-7, 0, 7]),
        Array::F32(vec![0.25, -0.0, f32::INFINITY]),
        Array::Bool(vec![true, false, true]),
        Array::String(vec!["a".into(), String::new(), "<0x0A>".into()]),
        Array::U64(vec![u64::MAX]),
        Array::I64(vec![i64::MIN, i64::MAX]),
        Array::F64(vec![1e-300]),
        Array::U32(vec![]),
        Array::String(vec![]),
        Array::Array(vec![
            Array::U32(vec![1, 2]),
            Array::String(vec!["x".into()]),
            Array::Array(vec![Array::F32(vec![3.0]), Array::Array(vec![])]),
        ]),
    ];
    let mut out: Vec<(String, Value)> = scalars
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("test.scalar.{i}.{}", v.type_name()), v))
        .collect();
    out.extend(
        arrays
            .into_iter()
            .enumerate()
            .map(|(i, a)| (format!("test.array.{i}.{}", a.type_name()), Value::Array(a))),
    );
    out
}

/// Deterministic bytes standing in for weights.
pub fn fake_data(ty: GgmlType, dims: &[u64], seed: u8) -> Vec<u8> {
    let n = ty.bytes_for(dims.iter().product()).expect("valid dims") as usize;
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A small model-like file with several tensor types.
pub fn small_model(version: u32, alignment: Option<u32>) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.version(version);
    w.metadata("general.architecture", Value::String("llama".into()));
    if let Some(a) = alignment {
        w.metadata("general.alignment", Value::U32(a));
    }
    for (k, v) in all_values() {
        w.metadata(&k, v);
    }
    let tensors: &[(&str, &[u64], GgmlType)] = &[
        ("token_embd.weight", &[64, 10], GgmlType::Q8_0),
        ("blk.0.attn_norm.weight", &[7], GgmlType::F32),
        ("blk.0.attn_q.weight", &[256, 3], GgmlType::Q4_K),
        ("blk.0.ffn_up.weight", &[32, 2, 2], GgmlType::Q5_0),
        ("blk.0.ffn_down.weight", &[256, 1, 1, 2], GgmlType::Q6_K),
        ("output.weight", &[3, 5], GgmlType::F16),
    ];
    for (i, (name, dims, ty)) in tensors.iter().enumerate() {
        w.tensor(name, dims, *ty, fake_data(*ty, dims, i as u8));
    }
    w
}

#[test]
fn every_value_type_round_trips_in_order() {
    let bytes = small_model(3, None).to_bytes();
    let g = Gguf::from_bytes(bytes).unwrap();
    let md = g.metadata();
    let expected = all_values();
    assert_eq!(md.len(), expected.len() + 1);
    let got: Vec<(&str, &Value)> = md.iter().skip(1).collect();
    for ((k, v), (gk, gv)) in expected.iter().zip(got) {
        assert_eq!(k, gk);
        assert_eq!(v, gv, "key {k}");
    }
    assert_eq!(md.architecture().unwrap(), "llama");
}

#[test]
fn tensors_round_trip_with_data() {
    let w = small_model(3, None);
    let g = Gguf::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.tensors().len(), 6);
    for (i, t) in g.tensors().iter().enumerate() {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
        assert_eq!(Some(t.n_bytes), t.ty.bytes_for(t.n_elements()));
        assert_eq!(
            g.tensor_data(t),
            fake_data(t.ty, &t.dims, i as u8).as_slice()
        );
        assert_eq!(g.tensor(&t.name), Some(t));
    }
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dims, vec![256, 3]);
    assert_eq!(q.ty, GgmlType::Q4_K);
    assert_eq!(q.n_bytes, 3 * 144);
    assert!(g.tensor("missing").is_none());
    assert_eq!(g.header().data_offset % 32, 0);
    assert!(g.header().file_bytes_needed() <= g.file_size());
}

#[test]
fn version_2_files_read_the_same() {
    let v2 = Gguf::from_bytes(small_model(2, None).to_bytes()).unwrap();
    let v3 = Gguf::from_bytes(small_model(3, None).to_bytes()).unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.metadata(), v3.metadata());
    assert_eq!(v2.tensors(), v3.tensors());
}

#[test]
fn custom_alignment_is_honoured() {
    for align in [1u32, 8, 64, 4096] {
        let g = Gguf::from_bytes(small_model(3, Some(align)).to_bytes()).unwrap();
        let a = u64::from(align);
        assert_eq!(g.header().alignment, a);
        assert_eq!(g.header().data_offset % a, 0);
        for t in g.tensors() {
            assert_eq!(t.offset % a, 0, "alignment {align}, tensor {}", t.name);
            assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
        }
    }
}

#[test]
fn header_parse_of_whole_file_matches_open() {
    let bytes = small_model(3, Some(64)).to_bytes();
    let h = Header::parse(&bytes).unwrap();
    let g = Gguf::from_bytes(bytes.clone()).unwrap();
    assert_eq!(&h, g.header());
    // The header alone (no tensor data) is enough for Header::parse.
    let h2 = Header::parse(&bytes[..h.data_offset as usize]).unwrap();
    assert_eq!(h2, h);
}

#[test]
fn open_maps_a_file_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.gguf");
    let w = small_model(3, None);
    w.write_to(&path).unwrap();
    let g = Gguf::open(&path).unwrap();
    let mem = Gguf::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(g.header(), mem.header());
    assert_eq!(g.file_size(), std::fs::metadata(&path).unwrap().len());
    for t in g.tensors() {
        assert_eq!(g.tensor_data(t), mem.tensor_data(t));
        // The map is page-aligned, so tensors keep the file's alignment in memory.
        assert_eq!(g.tensor_data(t).as_ptr() as usize % 32, 0);
    }
    let missing = dir.path().join("nope.gguf");
    let err = Gguf::open(&missing).unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path == &missing),
        "{err}"
    );
    assert!(err.to_string().contains("nope.gguf"));
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Gguf::open(&empty),
        Err(Error::Truncated { needed: 4, .. })
    ));
}

#[test]
fn file_without_tensors_is_valid() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("none".into()));
    let g = Gguf::from_bytes(w.to_bytes()).unwrap();
    assert!(g.tensors().is_empty());
    assert_eq!(g.header().file_bytes_needed(), g.header().data_offset);
}

#[test]
fn writer_replaces_a_key_set_twice() {
    let mut w = GgufWriter::new();
    w.metadata("a", Value::U32(1))
        .metadata("b", Value::U32(2))
        .metadata("a", Value::U32(3));
    let g = Gguf::from_bytes(w.to_bytes()).unwrap();
    let keys: Vec<_> = g
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![("a".into(), Value::U32(3)), ("b".into(), Value::U32(2))]
    );
}
