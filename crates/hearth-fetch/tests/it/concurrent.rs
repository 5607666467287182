//! Several Hearth processes (or threads) at once on one data directory.

use hearth_fetch::index::{self, Installed};
use hearth_fetch::Home;

#[test]
fn concurrent_index_writes_keep_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    std::fs::create_dir_all(home.models_dir()).unwrap();
    // Two pulls finishing together each read the index, add their model and write it back; without
    // a lock around that, one of them silently drops the other's entry.
    const THREADS: usize = 8;
    const EACH: usize = 20;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let home = &home;
            s.spawn(move || {
                for i in 0..EACH {
                    let name = format!("m{t}-{i}");
                    index::record(
                        home,
                        &Installed {
                            path: format!("models/{name}.gguf"),
                            name,
                            sha256: "0".repeat(64),
                            size: 1,
                            source: "test".into(),
                            pulled_at: "2026-01-01T00:00:00Z".into(),
                            verified: None,
                        },
                    )
                    .unwrap();
                }
            });
        }
    });
    let names = index::load(&home).unwrap().len();
    assert_eq!(names, THREADS * EACH);
}

#[test]
fn a_second_holder_of_the_data_directory_is_told_who_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let held = home.lock("hearth serve --listen 127.0.0.1:4314").unwrap();
    assert_eq!(held.path(), home.lock_path());

    // Another open of the lock file conflicts even inside one process, as another process would.
    let err = home.lock("hearth serve --listen 0.0.0.0:4314").unwrap_err();
    assert!(
        matches!(err, hearth_fetch::Error::HomeInUse { .. }),
        "{err}"
    );
    let msg = err.to_string();
    let expected = format!(
        "another Hearth (pid {}, `hearth serve --listen 127.0.0.1:4314`) is using {}; stop it first, or set HEARTH_HOME to another directory",
        std::process::id(),
        home.root().display()
    );
    assert_eq!(msg, expected);

    // Released on drop (and by the system when a process dies, however it dies).
    drop(held);
    let again = home.lock("hearth serve --listen 0.0.0.0:4314").unwrap();
    drop(again);
}
