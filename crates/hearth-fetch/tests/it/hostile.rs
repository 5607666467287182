//! Pulls of hostile or broken sources (hardening, issue 12): a URL or a path may name any file
//! and hold any bytes, and a pull that fails must leave nothing behind.

use std::path::Path;

use hearth_fetch::{list_installed, pull, resolve, Catalog, Home, Silent};

use crate::support::{gguf, Behavior, Server};

fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    (dir, home)
}

fn serving(body: Vec<u8>) -> Server {
    Server::start(
        body,
        Behavior {
            honor_range: true,
            drop_after: None,
        },
    )
}

/// Every file (not directory) under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const PASSWD: &[u8] =
    b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";

fn assert_not_gguf(err: &hearth_fetch::Error) {
    let msg = err.to_string();
    assert!(msg.contains("is not a GGUF model"), "{msg}");
    assert!(msg.contains("nothing was installed"), "{msg}");
}

#[test]
fn index_json_url_does_not_replace_the_index() {
    let (_dir, home) = home();
    let catalog = Catalog::builtin();
    let model = serving(gguf(10_000, 60));
    let first = pull(&home, &catalog, &model.url("first.gguf"), &Silent).unwrap();

    // What a hostile (or mistaken) link serves under the index's own name: an empty index.
    let json = serving(br#"{"version":1,"models":[]}"#.to_vec());
    let err = pull(&home, &catalog, &json.url("index.json"), &Silent).unwrap_err();
    assert_not_gguf(&err);
    assert_eq!(list_installed(&home).unwrap(), vec![first.clone()]);

    // A real model behind that URL is installed under a name of Hearth's own, beside the index.
    let got = pull(&home, &catalog, &model.url("index.json"), &Silent).unwrap();
    assert_eq!(got.path, "models/index.json.gguf");
    assert_eq!(list_installed(&home).unwrap(), vec![first, got.clone()]);
    assert_eq!(
        resolve(&home, &catalog, &got.name).unwrap().path,
        home.models_dir().join("index.json.gguf")
    );
    let files: Vec<String> = files_under(&home.models_dir())
        .into_iter()
        .filter(|f| !f.ends_with(".lock"))
        .collect();
    assert_eq!(files, ["first.gguf", "index.json", "index.json.gguf"]);
}

#[test]
fn url_names_never_become_paths() {
    let (_dir, home) = home();
    let catalog = Catalog::builtin();
    let model = serving(gguf(10_000, 61));
    for (url_name, file) in [
        ("..%2F..%2Fescaped.gguf", "escaped.gguf"),
        ("...gguf", "model.gguf"),
        (".hidden.gguf", "hidden.gguf"),
        ("My%20Model%3F.Q4_0.gguf", "My_Model_.Q4_0.gguf"),
        ("catalog.toml", "catalog.toml.gguf"),
    ] {
        let got = pull(&home, &catalog, &model.url(url_name), &Silent).unwrap();
        assert_eq!(got.path, format!("models/{file}"), "from {url_name}");
        assert!(home.models_dir().join(file).is_file(), "{file}");
    }
    // Nothing was written outside models/ (tmp/ is empty again).
    let outside: Vec<String> = files_under(home.root())
        .into_iter()
        .filter(|f| !f.starts_with("models/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn pull_refuses_files_that_are_not_gguf() {
    let (dir, home) = home();
    let catalog = Catalog::builtin();

    // Over HTTP: refused, and nothing is left anywhere in the data directory.
    let text = serving(PASSWD.to_vec());
    let err = pull(&home, &catalog, &text.url("passwd"), &Silent).unwrap_err();
    assert_not_gguf(&err);
    assert!(
        files_under(home.root()).is_empty(),
        "{:?}",
        files_under(home.root())
    );

    // From a path.
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, PASSWD).unwrap();
    let err = pull(&home, &catalog, passwd.to_str().unwrap(), &Silent).unwrap_err();
    assert_not_gguf(&err);

    // The magic alone is not enough: a header whose tensor runs past the end is refused too.
    let cut = dir.path().join("cut.gguf");
    let whole = gguf(10_000, 62);
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let err = pull(&home, &catalog, cut.to_str().unwrap(), &Silent).unwrap_err();
    assert_not_gguf(&err);
    assert!(err.to_string().contains("past the end"), "{err}");

    assert!(list_installed(&home).unwrap().is_empty());
    assert!(
        files_under(home.root()).is_empty(),
        "{:?}",
        files_under(home.root())
    );
}

#[test]
fn failed_pull_leaves_no_partial() {
    let (_dir, home) = home();
    let catalog = Catalog::builtin();
    let leftovers = |home: &Home| files_under(home.root());

    // A 404 for a name with an escaped path in it.
    let server = serving(gguf(10_000, 63));
    let err = pull(
        &home,
        &catalog,
        &format!("{}/gone/..%2F..%2Fetc%2Fmodel.gguf", server.base),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert!(leftovers(&home).is_empty(), "{:?}", leftovers(&home));

    // A server that is not there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = pull(
        &home,
        &catalog,
        &format!("http://127.0.0.1:{port}/..%2Fx.gguf"),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot reach the server"), "{err}");
    assert!(leftovers(&home).is_empty(), "{:?}", leftovers(&home));

    // A server that answers and then sends no byte of the body, every time.
    let mute = Server::start(
        gguf(10_000, 64),
        Behavior {
            honor_range: true,
            drop_after: Some((0, 100)),
        },
    );
    let err = pull(&home, &catalog, &mute.url("mute.gguf"), &Silent).unwrap_err();
    assert!(!err.to_string().contains("kept"), "{err}");
    assert!(leftovers(&home).is_empty(), "{:?}", leftovers(&home));
}
