//! Each way a file can be wrong, with the error variant it must produce.

use hearth_gguf::{Array, Error, GgmlType, Gguf, Header, Value, MAX_HEADER_BYTES};

use super::raw::Raw;
use super::roundtrip::small_model;

/// Both entry points must refuse `bytes`; returns the whole-file error.
fn refuse(bytes: Vec<u8>) -> Error {
    let prefix_err = Header::parse(&bytes).err();
    let err = Gguf::from_bytes(bytes).expect_err("file should be refused");
    // Header::parse sees the same header problems (it does not check data bounds).
    if !matches!(
        err,
        Error::TensorOutOfBounds { .. } | Error::CountTooLarge { .. }
    ) {
        let p = prefix_err.expect("Header::parse should refuse too");
        assert_eq!(format!("{p:?}"), format!("{err:?}"));
    }
    err
}

/// A file named as the corpus writer stores it, with the bytes of a case below.
pub fn invalid_cases() -> Vec<(&'static str, Vec<u8>)> {
    let one_tensor = |dims: &[u64], ty: u32, offset: u64| {
        Raw::header(3, 1, 0)
            .tensor_info("t", dims, ty, offset)
            .data(32, 64)
            .build()
    };
    vec![
        ("bad_magic", b"GGML\x03\0\0\0".to_vec()),
        ("version_1", Raw::header(1, 0, 0).build()),
        ("version_4", Raw::header(4, 0, 0).build()),
        ("big_endian", {
            let mut b = Raw::header(3, 0, 0).build();
            b[4..8].copy_from_slice(&3u32.to_be_bytes());
            b
        }),
        (
            "huge_string_len",
            Raw::header(3, 0, 1)
                .u64(1 << 60)
                .bytes(b"abcdefghijklmnop")
                .build(),
        ),
        ("huge_tensor_count", Raw::header(3, 1 << 40, 0).build()),
        ("huge_kv_count", Raw::header(3, 0, u64::MAX).build()),
        (
            "huge_array_count",
            Raw::header(3, 0, 1)
                .string("k")
                .u32(9)
                .u32(4)
                .u64(1 << 62)
                .u32(1)
                .build(),
        ),
        (
            "huge_nested_array_count",
            Raw::header(3, 0, 1)
                .string("k")
                .u32(9)
                .u32(9)
                .u64(1 << 62)
                .build(),
        ),
        (
            "huge_string_array_count",
            Raw::header(3, 0, 1)
                .string("k")
                .u32(9)
                .u32(8)
                .u64(u64::MAX)
                .build(),
        ),
        (
            "bad_utf8_key",
            Raw::header(3, 0, 1)
                .u64(2)
                .bytes(&[0xff, 0xfe])
                .u32(0)
                .bytes(&[1])
                .build(),
        ),
        (
            "bad_utf8_value",
            Raw::header(3, 0, 1)
                .string("k")
                .u32(8)
                .u64(1)
                .bytes(&[0x80])
                .build(),
        ),
        (
            "bad_utf8_tensor",
            Raw::header(3, 1, 0)
                .u64(1)
                .bytes(&[0xc0])
                .u32(1)
                .u64(1)
                .u32(0)
                .u64(0)
                .build(),
        ),
        (
            "unknown_value_type",
            Raw::header(3, 0, 1).string("k").u32(13).u64(0).build(),
        ),
        (
            "unknown_array_type",
            Raw::header(3, 0, 1)
                .string("k")
                .u32(9)
                .u32(99)
                .u64(1)
                .build(),
        ),
        (
            "bad_bool",
            Raw::header(3, 0, 1).string("k").u32(7).bytes(&[2]).build(),
        ),
        ("too_deep", {
            let mut r = Raw::header(3, 0, 1);
            r.string("k").u32(9);
            for _ in 0..20 {
                r.u32(9).u64(1);
            }
            r.u32(4).u64(0).build()
        }),
        (
            "duplicate_key",
            Raw::header(3, 0, 2)
                .kv("k", &Value::U8(1))
                .kv("k", &Value::U8(2))
                .build(),
        ),
        (
            "alignment_zero",
            Raw::header(3, 0, 1)
                .kv("general.alignment", &Value::U32(0))
                .build(),
        ),
        (
            "alignment_48",
            Raw::header(3, 0, 1)
                .kv("general.alignment", &Value::U32(48))
                .build(),
        ),
        (
            "alignment_string",
            Raw::header(3, 0, 1)
                .kv("general.alignment", &Value::String("32".into()))
                .build(),
        ),
        ("unknown_tensor_type", one_tensor(&[4], 4, 0)),
        ("five_dims", one_tensor(&[1, 1, 1, 1, 1], 0, 0)),
        ("zero_n_dims", one_tensor(&[], 0, 0)),
        ("zero_dim", one_tensor(&[4, 0], 0, 0)),
        ("element_overflow", one_tensor(&[1 << 32, 1 << 32], 0, 0)),
        ("byte_overflow", one_tensor(&[1 << 62], 0, 0)),
        (
            "not_block_multiple",
            one_tensor(&[16, 2], GgmlType::Q4_0.id(), 0),
        ),
        ("misaligned_offset", one_tensor(&[4], 0, 8)),
        ("end_overflow", one_tensor(&[4], 0, u64::MAX - 31)),
        ("out_of_bounds", one_tensor(&[64], 0, 0)),
        ("duplicate_tensor", {
            Raw::header(3, 2, 0)
                .tensor("t", &[4], GgmlType::F32, 0)
                .tensor("t", &[4], GgmlType::F32, 32)
                .data(32, 64)
                .build()
        }),
        ("truncated_in_kv", {
            let b = small_model(3, None).to_bytes();
            b[..100].to_vec()
        }),
        ("truncated_in_data", {
            let b = small_model(3, None).to_bytes();
            b[..b.len() - 100].to_vec()
        }),
    ]
}

fn case(name: &str) -> Vec<u8> {
    invalid_cases()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("known case")
        .1
}

#[test]
fn every_invalid_case_is_refused() {
    for (name, bytes) in invalid_cases() {
        let err = Gguf::from_bytes(bytes).expect_err(name);
        // Messages are for people: never empty, never a bare Debug dump.
        assert!(err.to_string().len() > 10, "{name}: {err}");
    }
}

#[test]
fn magic_and_version() {
    assert!(matches!(refuse(case("bad_magic")), Error::BadMagic { found } if &found == b"GGML"));
    let v1 = refuse(case("version_1"));
    assert!(matches!(v1, Error::UnsupportedVersion(1)));
    assert!(v1.to_string().contains("version 1"), "{v1}");
    assert!(matches!(
        refuse(case("version_4")),
        Error::UnsupportedVersion(4)
    ));
    assert!(matches!(
        refuse(case("big_endian")),
        Error::BigEndian { version: 3 }
    ));
    assert!(matches!(
        refuse(b"GG".to_vec()),
        Error::Truncated {
            needed: 4,
            available: 2,
            ..
        }
    ));
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    for name in [
        "huge_string_len",
        "huge_tensor_count",
        "huge_kv_count",
        "huge_array_count",
        "huge_nested_array_count",
        "huge_string_array_count",
    ] {
        let bytes = case(name);
        let err = Gguf::from_bytes(bytes.clone()).unwrap_err();
        assert!(matches!(err, Error::CountTooLarge { .. }), "{name}: {err}");
        // From a prefix the same count is a header no real file has.
        let err = Header::parse(&bytes).unwrap_err();
        assert!(
            matches!(err, Error::HeaderTooLarge { needed, limit, .. } if needed > limit && limit == MAX_HEADER_BYTES),
            "{name}: {err}"
        );
    }
    let err = Gguf::from_bytes(case("huge_string_len")).unwrap_err();
    assert!(err.to_string().contains("1152921504606846976"), "{err}");
}

#[test]
fn counts_that_fit_a_prefix_bound_say_what_to_fetch() {
    // A key of 1000 bytes with 16 present: the prefix parser asks for the rest.
    let bytes = Raw::header(3, 0, 1)
        .u64(1000)
        .bytes(b"abcdefghijklmnop")
        .build();
    match Header::parse(&bytes).unwrap_err() {
        Error::Truncated {
            needed, available, ..
        } => {
            assert_eq!(needed, 24 + 8 + 1000);
            assert_eq!(available, bytes.len() as u64);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn utf8_errors_name_the_culprit() {
    let e = refuse(case("bad_utf8_key"));
    assert!(
        matches!(&e, Error::InvalidUtf8 { what, offset: 32 } if what == "key #0"),
        "{e}"
    );
    let e = refuse(case("bad_utf8_value"));
    assert!(
        matches!(&e, Error::InvalidUtf8 { what, .. } if what.contains("\"k\"")),
        "{e}"
    );
    let e = refuse(case("bad_utf8_tensor"));
    assert!(
        matches!(&e, Error::InvalidUtf8 { what, .. } if what == "name of tensor #0"),
        "{e}"
    );
}

#[test]
fn value_errors() {
    assert!(
        matches!(refuse(case("unknown_value_type")), Error::UnknownValueType { key, id: 13 } if key == "k")
    );
    assert!(matches!(
        refuse(case("unknown_array_type")),
        Error::UnknownValueType { id: 99, .. }
    ));
    assert!(matches!(
        refuse(case("bad_bool")),
        Error::InvalidBool { value: 2, .. }
    ));
    assert!(matches!(
        refuse(case("too_deep")),
        Error::ArrayTooDeep { .. }
    ));
    assert!(matches!(refuse(case("duplicate_key")), Error::DuplicateKey(k) if k == "k"));
}

#[test]
fn alignment_errors() {
    assert!(matches!(
        refuse(case("alignment_zero")),
        Error::BadAlignment(0)
    ));
    assert!(matches!(
        refuse(case("alignment_48")),
        Error::BadAlignment(48)
    ));
    let e = refuse(case("alignment_string"));
    assert!(
        matches!(&e, Error::WrongType { key, .. } if key == "general.alignment"),
        "{e}"
    );
    assert!(matches!(
        refuse(case("misaligned_offset")),
        Error::MisalignedTensor {
            offset: 8,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn tensor_shape_and_type_errors() {
    assert!(
        matches!(refuse(case("unknown_tensor_type")), Error::UnknownTensorType { tensor, id: 4 } if tensor == "t")
    );
    assert!(matches!(
        refuse(case("five_dims")),
        Error::BadDimCount { n_dims: 5, .. }
    ));
    assert!(matches!(
        refuse(case("zero_n_dims")),
        Error::BadDimCount { n_dims: 0, .. }
    ));
    assert!(matches!(refuse(case("zero_dim")), Error::ZeroDim { dims, .. } if dims == vec![4, 0]));
    assert!(matches!(
        refuse(case("element_overflow")),
        Error::ElementCountOverflow { .. }
    ));
    assert!(matches!(
        refuse(case("byte_overflow")),
        Error::ElementCountOverflow { .. }
    ));
    assert!(matches!(
        refuse(case("not_block_multiple")),
        Error::NotBlockMultiple {
            ty: GgmlType::Q4_0,
            ne0: 16,
            block_size: 32,
            ..
        }
    ));
    assert!(matches!(refuse(case("duplicate_tensor")), Error::DuplicateTensor(n) if n == "t"));
    assert!(matches!(
        refuse(case("end_overflow")),
        Error::TensorEndOverflow { .. }
    ));
}

#[test]
fn tensor_past_the_end_of_the_file() {
    let bytes = case("out_of_bounds");
    let len = bytes.len() as u64;
    // The header itself is fine: a prefix parser cannot know the file size.
    let h = Header::parse(&bytes).unwrap();
    assert_eq!(h.file_bytes_needed(), h.data_offset + 256);
    let e = refuse(bytes);
    assert!(
        matches!(e, Error::TensorOutOfBounds { ref name, end, file_size } if name == "t" && end == h.data_offset + 256 && file_size == len),
        "{e}"
    );
    assert!(matches!(
        refuse(case("truncated_in_data")),
        Error::TensorOutOfBounds { .. }
    ));
}

#[test]
fn truncation_anywhere_in_the_header_is_reported() {
    let bytes = small_model(3, None).to_bytes();
    let full = Header::parse(&bytes).unwrap();
    let header_end = full.data_offset as usize;
    for cut in 0..header_end {
        // Cutting inside the trailing padding still leaves a complete header.
        match Header::parse(&bytes[..cut]) {
            Err(Error::Truncated {
                needed, available, ..
            }) => {
                assert_eq!(available, cut as u64);
                assert!(
                    needed > cut as u64 && needed <= header_end as u64,
                    "cut {cut}: needed {needed}"
                );
            }
            Ok(h) => assert_eq!(h, full, "cut {cut}"),
            Err(e) => panic!("cut {cut}: {e}"),
        }
        assert!(Gguf::from_bytes(bytes[..cut].to_vec()).is_err());
    }
}

#[test]
fn fetching_what_truncated_asks_for_converges() {
    // The planner's loop: start with nothing, fetch `needed`, retry.
    let bytes = small_model(3, None).to_bytes();
    let mut have = 0usize;
    let mut rounds = 0;
    let header = loop {
        rounds += 1;
        assert!(rounds < 1000, "no progress");
        match Header::parse(&bytes[..have]) {
            Ok(h) => break h,
            Err(Error::Truncated { needed, .. }) => {
                assert!(needed as usize > have);
                have = needed as usize;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(have <= header.data_offset as usize);
    assert!(header.file_bytes_needed() <= bytes.len() as u64);
}

#[test]
fn metadata_getters_report_missing_and_wrong_types() {
    let g = Gguf::from_bytes(small_model(3, None).to_bytes()).unwrap();
    let md = g.metadata();
    assert!(
        matches!(md.u32("llama.block_count"), Err(Error::MissingKey(k)) if k == "llama.block_count")
    );
    let e = md.strings("general.architecture").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::WrongType {
                expected: "array",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"llama\""), "{e}");
    let arr = Value::Array(Array::U32(vec![1]));
    assert_eq!(arr.type_name(), "array");
}
