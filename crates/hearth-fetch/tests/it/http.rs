//! `hearth pull URL` against a local server: resume with Range, servers that ignore Range, and
//! digest checks.

use hearth_fetch::{pull, store, Catalog, Error, Home, Silent};

use crate::support::{content, gguf, sha256, Behavior, Server};

const MB: usize = 1 << 20;

fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    (dir, home)
}

#[test]
fn dropped_connection_is_resumed_with_range_in_the_same_pull() {
    let body = gguf(3 * MB + 123, 1);
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: true,
            drop_after: Some((MB, 1)),
        },
    );
    let (_dir, home) = home();
    let got = pull(
        &home,
        &Catalog::builtin(),
        &server.url("tiny.gguf"),
        &Silent,
    )
    .unwrap();
    assert_eq!(got.name, "tiny");
    assert_eq!(got.sha256, sha256(&body));
    assert_eq!(got.size, body.len() as u64);
    let path = home.models_dir().join("tiny.gguf");
    assert_eq!(got.full_path(&home), path);
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!store::partial_path(&path).exists());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={MB}-").as_str())
    );
    assert_eq!(seen[1].status, 206);
    // Recorded, so the name resolves offline.
    let listed = hearth_fetch::list_installed(&home).unwrap();
    assert_eq!(listed, vec![got.clone()]);
    let resolved = hearth_fetch::resolve(&home, &Catalog::builtin(), "tiny").unwrap();
    assert_eq!(resolved.path, path);
}

#[test]
fn failed_pull_keeps_partial_and_next_pull_resumes() {
    let body = gguf(6 * MB, 2);
    // Every response breaks after 1 MB: four attempts get 4 MB, then the pull gives up.
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: true,
            drop_after: Some((MB, 100)),
        },
    );
    let (_dir, home) = home();
    let url = server.url("big.gguf");
    let err = pull(&home, &Catalog::builtin(), &url, &Silent).unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    let path = home.models_dir().join("big.gguf");
    assert!(!path.exists(), "nothing may appear under the final name");
    let partial = store::partial_path(&path);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 4 * MB as u64);

    server.set(Behavior {
        honor_range: true,
        drop_after: None,
    });
    let got = pull(&home, &Catalog::builtin(), &url, &Silent).unwrap();
    assert_eq!(got.sha256, sha256(&body));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!partial.exists());
    let last = server.seen().pop().unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={}-", 4 * MB).as_str())
    );
    assert_eq!(last.status, 206);
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let body = gguf(2 * MB + 7, 3);
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: false,
            drop_after: Some((MB / 2, 1)),
        },
    );
    let (_dir, home) = home();
    let got = pull(&home, &Catalog::builtin(), &server.url("m.gguf"), &Silent).unwrap();
    assert_eq!(got.sha256, sha256(&body));
    assert_eq!(
        std::fs::read(home.models_dir().join("m.gguf")).unwrap(),
        body
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].range.is_some(), "the client asked to resume");
    assert_eq!(seen[1].status, 200, "the server sent everything again");
}

#[test]
fn complete_partial_file_is_finished_on_416() {
    let body = gguf(MB, 4);
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: true,
            drop_after: None,
        },
    );
    let (_dir, home) = home();
    std::fs::create_dir_all(home.models_dir()).unwrap();
    let path = home.models_dir().join("done.gguf");
    std::fs::write(store::partial_path(&path), &body).unwrap();
    let got = pull(
        &home,
        &Catalog::builtin(),
        &server.url("done.gguf"),
        &Silent,
    )
    .unwrap();
    assert_eq!(got.sha256, sha256(&body));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(server.seen()[0].status, 416);
}

fn url_catalog(name: &str, url: &str, sha: &str, size: usize) -> Catalog {
    Catalog::from_toml(&format!(
        "[[model]]\nname = \"{name}\"\nsha256 = \"{sha}\"\nsize = {size}\n[model.source]\nkind = \"url\"\nurl = \"{url}\"\n"
    ))
    .unwrap()
}

#[test]
fn catalog_url_entry_is_verified_and_named() {
    let body = content(MB + 1, 5);
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: true,
            drop_after: Some((1000, 1)),
        },
    );
    let (_dir, home) = home();
    let url = server.url("pinned-q4.gguf");
    let catalog = url_catalog("pinned", &url, &sha256(&body), body.len());
    let got = pull(&home, &catalog, "pinned", &Silent).unwrap();
    assert_eq!(got.name, "pinned");
    assert_eq!(got.path, "models/pinned-q4.gguf");
    // Pulling by the URL finds the same catalog entry; it is installed already.
    let again = pull(&home, &catalog, &url, &Silent).unwrap();
    assert_eq!(again, got);
    assert_eq!(server.seen().len(), 2, "the second pull must not download");
}

#[test]
fn sha256_mismatch_names_both_digests_and_removes_the_file() {
    let body = content(MB, 6);
    let server = Server::start(
        body.clone(),
        Behavior {
            honor_range: true,
            drop_after: None,
        },
    );
    let (_dir, home) = home();
    let wrong = "0".repeat(64);
    let catalog = url_catalog("bad", &server.url("bad.gguf"), &wrong, body.len());
    let err = pull(&home, &catalog, "bad", &Silent).unwrap_err();
    match &err {
        Error::ShaMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256(&body));
        }
        other => panic!("expected a sha256 mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&wrong) && msg.contains(&sha256(&body)),
        "{msg}"
    );
    let path = home.models_dir().join("bad.gguf");
    assert!(!path.exists());
    assert!(!store::partial_path(&path).exists());
    assert!(hearth_fetch::list_installed(&home).unwrap().is_empty());
}

#[test]
fn http_errors_and_unreachable_servers_are_reported() {
    let server = Server::start(
        Vec::new(),
        Behavior {
            honor_range: true,
            drop_after: None,
        },
    );
    let (_dir, home) = home();
    let err = pull(
        &home,
        &Catalog::builtin(),
        &format!("{}/missing", server.base),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = pull(
        &home,
        &Catalog::builtin(),
        &format!("http://127.0.0.1:{port}/x.gguf"),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot reach the server"), "{err}");
}
