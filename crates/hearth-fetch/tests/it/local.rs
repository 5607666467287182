//! `hearth pull PATH`, resolving and listing.

use hearth_fetch::{list_installed, pull, resolve, Catalog, Error, Home, Silent};

use crate::support::{gguf, sha256};

#[test]
fn local_file_is_installed_hashed_and_resolvable() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let src = dir.path().join("My-Model.Q8_0.gguf");
    let body = gguf(500_000, 30);
    std::fs::write(&src, &body).unwrap();

    let got = pull(&home, &Catalog::builtin(), src.to_str().unwrap(), &Silent).unwrap();
    assert_eq!(got.name, "My-Model.Q8_0");
    assert_eq!(got.sha256, sha256(&body));
    assert_eq!(got.size, body.len() as u64);
    assert_eq!(got.path, "models/My-Model.Q8_0.gguf");
    assert!(got.source.starts_with("file:"));
    let installed = home.models_dir().join("My-Model.Q8_0.gguf");
    assert_eq!(std::fs::read(&installed).unwrap(), body);

    // Pulling the installed file itself again only re-hashes it.
    let again = pull(
        &home,
        &Catalog::builtin(),
        installed.to_str().unwrap(),
        &Silent,
    )
    .unwrap();
    assert_eq!(again.sha256, got.sha256);
    assert_eq!(list_installed(&home).unwrap().len(), 1);

    let catalog = Catalog::builtin();
    let r = resolve(&home, &catalog, "My-Model.Q8_0").unwrap();
    assert_eq!(r.path, installed);
    assert!(r.entry.is_none());
    let r = resolve(&home, &catalog, "My-Model.Q8_0.gguf").unwrap();
    assert_eq!(r.path, installed);
    // Any path to a file resolves without being pulled.
    let r = resolve(&home, &catalog, src.to_str().unwrap()).unwrap();
    assert_eq!(r.path, src);
}

#[test]
fn a_catalog_model_pulled_by_path_gets_its_catalog_name() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let body = gguf(4096, 31);
    let src = dir.path().join("whatever.gguf");
    std::fs::write(&src, &body).unwrap();
    let catalog = Catalog::from_toml(&format!(
        "[[model]]\nname = \"known\"\nsha256 = \"{}\"\nsize = {}\n[model.source]\nkind = \"url\"\nurl = \"http://127.0.0.1:9/known.gguf\"\n",
        sha256(&body),
        body.len()
    ))
    .unwrap();
    let got = pull(&home, &catalog, src.to_str().unwrap(), &Silent).unwrap();
    assert_eq!(got.name, "known");
    let r = resolve(&home, &catalog, "known").unwrap();
    assert_eq!(r.entry.unwrap().name, "known");
}

#[test]
fn unknown_and_uninstalled_names_list_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let catalog = Catalog::builtin();
    let err = pull(&home, &catalog, "no-such-model", &Silent).unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("smollm2-135m") && msg.contains("gemma3-270m"),
        "{msg}"
    );

    let err = resolve(&home, &catalog, "smollm2-135m").unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err}");
    assert!(
        err.to_string().contains("hearth pull smollm2-135m"),
        "{err}"
    );
}

#[test]
fn home_follows_hearth_home() {
    // HEARTH_HOME is read by no other test of this binary, so setting it here races with nothing.
    std::env::set_var("HEARTH_HOME", "/data/h");
    let home = Home::from_env().unwrap();
    std::env::remove_var("HEARTH_HOME");
    assert_eq!(home.root(), std::path::Path::new("/data/h"));
    assert_eq!(home.models_dir(), std::path::Path::new("/data/h/models"));
}
