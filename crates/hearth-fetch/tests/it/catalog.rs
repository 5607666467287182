//! The built-in catalog is well-formed, and a keeper's catalog merges over it.

use hearth_fetch::{Catalog, Error, Home, Source};

#[test]
fn builtin_catalog_is_well_formed() {
    let catalog = Catalog::builtin();
    let names: Vec<&str> = catalog.entries().map(|e| e.name.as_str()).collect();
    for want in ["smollm2-135m", "gemma3-270m", "all-minilm-l6-v2"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(catalog.default_model().name, "smollm2-135m");
    for entry in catalog.entries() {
        entry.validate().unwrap();
        assert_eq!(entry.sha256.len(), 64);
        assert!(
            !entry.description.is_empty(),
            "{} has no description",
            entry.name
        );
        match &entry.source {
            Source::Pip { parts } => {
                assert!(!parts.is_empty());
                assert!(
                    entry.local_name().ends_with(".gguf"),
                    "{}",
                    entry.local_name()
                );
            }
            Source::Files { files, .. } => {
                assert_eq!(files[0].sha256, entry.sha256);
                assert!(files.iter().any(|f| f.name == "tokenizer.json"));
                assert!(files.iter().any(|f| f.name == "config.json"));
            }
            Source::Url { .. } => {}
        }
    }
    let gemma = catalog.get("gemma3-270m").unwrap();
    let Source::Pip { parts } = &gemma.source else {
        panic!("gemma3-270m should come from wheels")
    };
    assert_eq!(parts.len(), 4);
    assert_eq!(gemma.local_name(), "gemma-3-270m-q4_k_m.gguf");
    // A base model: no chat template is pinned, so `hearth run` asks for --raw.
    assert!(gemma.template.is_none());
    assert_eq!(gemma.defaults.top_k, Some(64));
}

#[test]
fn keeper_catalog_adds_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let sha = "ab".repeat(32);
    std::fs::write(
        home.user_catalog_path(),
        format!(
            r#"
[[model]]
name = "smollm2-135m"
description = "my own build"
sha256 = "{sha}"
size = 10
[model.source]
kind = "url"
url = "http://127.0.0.1:1/s.gguf"

[[model]]
name = "house-model"
description = "ours"
default = true
sha256 = "{sha}"
size = 10
template = "{{{{ messages }}}}"
[model.defaults]
temperature = 0.5
[model.source]
kind = "url"
url = "http://127.0.0.1:1/h.gguf"
"#
        ),
    )
    .unwrap();
    let catalog = Catalog::load(&home).unwrap();
    assert_eq!(
        catalog.get("smollm2-135m").unwrap().description,
        "my own build"
    );
    assert_eq!(
        catalog.get("house-model").unwrap().defaults.temperature,
        Some(0.5)
    );
    assert!(
        catalog.get("gemma3-270m").is_some(),
        "built-in entries stay"
    );
    assert_eq!(catalog.default_model().name, "house-model");
}

#[test]
fn malformed_keeper_catalog_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let path = home.user_catalog_path();
    std::fs::write(
        &path,
        "[[model]]\nname = \"x\"\nsha256 = \"XYZ\"\nsize = 1\n[model.source]\nkind = \"url\"\nurl = \"http://127.0.0.1:1/x\"\n",
    )
    .unwrap();
    let err = Catalog::load(&home).unwrap_err();
    assert!(matches!(err, Error::CatalogEntry { .. }), "{err}");
    assert!(err.to_string().contains("\"XYZ\""), "{err}");

    std::fs::write(&path, "[[model]]\nname = \"x\"\nsize = \"big\"\n").unwrap();
    let err = Catalog::load(&home).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let err = Catalog::from_toml(
        "[[model]]\nname = \"x\"\nsha256 = \"00000000000000000000000000000000000000000000000000000000000000aa\"\nsize = 1\n[model.source]\nkind = \"pip\"\nparts = []\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least one part"), "{err}");
}
