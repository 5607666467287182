use std::cell::RefCell;
use std::io::{Seek, SeekFrom, Write};
use std::time::SystemTime;

use super::*;

/// Counts the phases started, to tell whether a file was read.
#[derive(Default)]
struct Phases(RefCell<Vec<String>>);

impl Progress for Phases {
    fn start(&self, label: &str, _total: Option<u64>) {
        self.0.borrow_mut().push(label.to_string());
    }
    fn set(&self, _done: u64) {}
    fn finish(&self, _message: &str) {}
}

fn defaults() -> GenDefaults {
    GenDefaults {
        context: 4096,
        temperature: f32_decimal(0.8),
        top_k: 40,
        top_p: f32_decimal(0.95),
        min_p: f32_decimal(0.05),
        repeat_penalty: 1.0,
        penalty_last_n: 64,
    }
}

fn pins(template: &str) -> Pins {
    Pins {
        template: Some(TemplateLock::new(template, TemplateSource::Gguf)),
        defaults: defaults(),
    }
}

/// A data directory with one model file of 64 KiB.
fn home_with_model() -> (tempfile::TempDir, Home, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::at(dir.path());
    let models = home.models_dir();
    std::fs::create_dir_all(&models).expect("mkdir");
    let path = models.join("tiny.gguf");
    let bytes: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, bytes).expect("write");
    (dir, home, path)
}

fn served(path: &Path) -> Vec<ServedFile> {
    vec![ServedFile {
        path: path.to_path_buf(),
        known_sha256: None,
    }]
}

/// Serves `path` once as `tiny`, so the lock has an entry for it.
fn lock_it(home: &Home, path: &Path) -> ModelLock {
    match check_served(home, "tiny", &served(path), &Phases::default()).expect("check") {
        Checked::New { files } => {
            record_new(home, "tiny", files, pins("{{ messages }}")).expect("record")
        }
        other => panic!("expected a new entry, got {other:?}"),
    }
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

/// Changes one byte in place: same size, same inode.
fn flip_byte(path: &Path, at: u64) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let old = std::fs::read(path).expect("read")[at as usize];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&[old ^ 0xff]).expect("write");
}

#[test]
fn first_serve_records_digest_stamp_pins_and_version() {
    let (_dir, home, path) = home_with_model();
    let entry = lock_it(&home, &path);
    let file = &entry.files["models/tiny.gguf"];
    let (sha, _) = crate::store::hash_file(&path, &crate::Silent).expect("hash");
    assert_eq!(file.sha256, sha);
    assert_eq!(Some(file.stamp()), FileStamp::of(&path));
    assert_eq!(entry.hearth, hearth_version());
    assert_eq!(entry.pins(), pins("{{ messages }}"));
    assert_eq!(load(&home).expect("load").models["tiny"], entry);
}

#[test]
fn the_index_digest_is_reused_instead_of_hashing_again() {
    let (_dir, home, path) = home_with_model();
    let phases = Phases::default();
    let files = vec![ServedFile {
        path: path.clone(),
        known_sha256: Some("ab".repeat(32)),
    }];
    let Checked::New { files } = check_served(&home, "tiny", &files, &phases).expect("check")
    else {
        panic!("expected a new entry");
    };
    assert!(
        phases.0.borrow().is_empty(),
        "hashed: {:?}",
        phases.0.borrow()
    );
    assert_eq!(files["models/tiny.gguf"].sha256, "ab".repeat(32));
}

#[test]
fn serve_trusts_an_unchanged_stamp_without_hashing() {
    let (_dir, home, path) = home_with_model();
    lock_it(&home, &path);
    let phases = Phases::default();
    let checked = check_served(&home, "tiny", &served(&path), &phases).expect("check");
    assert!(matches!(checked, Checked::Locked { ref rehashed, .. } if rehashed.is_empty()));
    assert!(
        phases.0.borrow().is_empty(),
        "hashed: {:?}",
        phases.0.borrow()
    );
}

#[test]
fn a_changed_mtime_makes_serve_rehash_and_record_the_new_stamp() {
    let (_dir, home, path) = home_with_model();
    lock_it(&home, &path);
    set_mtime(&path, mtime(&path) + std::time::Duration::from_secs(3600));
    let phases = Phases::default();
    let checked = check_served(&home, "tiny", &served(&path), &phases).expect("same bytes");
    let Checked::Locked { rehashed, entry } = checked else {
        panic!("expected the locked entry");
    };
    assert_eq!(rehashed, vec!["models/tiny.gguf".to_string()]);
    assert!(
        phases
            .0
            .borrow()
            .iter()
            .any(|p| p.contains("modification time")),
        "{:?}",
        phases.0.borrow()
    );
    assert_eq!(
        Some(entry.files["models/tiny.gguf"].stamp()),
        FileStamp::of(&path)
    );
    // Recorded: the next start reads nothing.
    let again = Phases::default();
    check_served(&home, "tiny", &served(&path), &again).expect("check");
    assert!(again.0.borrow().is_empty(), "{:?}", again.0.borrow());
}

#[test]
fn serve_refuses_a_changed_file_whose_stamp_changed() {
    let (_dir, home, path) = home_with_model();
    lock_it(&home, &path);
    flip_byte(&path, 100);
    set_mtime(&path, mtime(&path) + std::time::Duration::from_secs(5));
    let err = check_served(&home, "tiny", &served(&path), &Phases::default())
        .expect_err("a changed file must be refused");
    let msg = err.to_string();
    for needle in [
        "tiny",
        "models/tiny.gguf",
        "sha256",
        "hearth verify",
        "hearth lock accept tiny",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    // Refused, not re-pinned: the lock still holds the old digest.
    let entry = &load(&home).expect("load").models["tiny"];
    assert_ne!(
        entry.files["models/tiny.gguf"].sha256,
        crate::store::hash_file(&path, &crate::Silent)
            .expect("hash")
            .0
    );
}

#[test]
fn verify_catches_a_changed_byte_with_the_same_size_and_a_restored_mtime() {
    let (_dir, home, path) = home_with_model();
    let entry = lock_it(&home, &path);
    let before = mtime(&path);
    flip_byte(&path, 40_000);
    set_mtime(&path, before);
    let key = "models/tiny.gguf";
    let locked = &entry.files[key];
    assert_eq!(
        FileStamp::of(&path),
        Some(locked.stamp()),
        "the stamp was restored"
    );
    let phases = Phases::default();
    let state = verify_file(&home, "tiny", key, locked, &phases).expect("verify");
    assert!(matches!(state, FileState::Differs { .. }), "{state:?}");
    assert_eq!(
        phases.0.borrow().len(),
        1,
        "progress is reported while hashing"
    );
}

#[test]
fn verify_says_ok_and_missing() {
    let (_dir, home, path) = home_with_model();
    let entry = lock_it(&home, &path);
    let key = "models/tiny.gguf";
    let locked = &entry.files[key];
    assert_eq!(
        verify_file(&home, "tiny", key, locked, &crate::Silent).expect("verify"),
        FileState::Ok
    );
    std::fs::remove_file(&path).expect("rm");
    assert_eq!(
        verify_file(&home, "tiny", key, locked, &crate::Silent).expect("verify"),
        FileState::Missing
    );
    let err = check_served(&home, "tiny", &served(&path), &Phases::default()).expect_err("missing");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn serve_refuses_another_file_under_a_locked_name() {
    let (_dir, home, path) = home_with_model();
    lock_it(&home, &path);
    let other = home.models_dir().join("other.gguf");
    std::fs::copy(&path, &other).expect("copy");
    let err =
        check_served(&home, "tiny", &served(&other), &Phases::default()).expect_err("another file");
    assert!(err.to_string().contains("models/other.gguf"), "{err}");
}

#[test]
fn a_changed_template_is_reported_and_the_locked_one_kept() {
    let (_dir, home, path) = home_with_model();
    let entry = lock_it(&home, &path);
    let mut now = pins("{{ messages }} and a newer template");
    now.defaults.temperature = f32_decimal(0.6);
    let (serve_with, pending) = served_pins(&entry, &now);
    assert_eq!(serve_with, entry.pins(), "the locked pins are served");
    let what: Vec<&str> = pending.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(what, ["template", "temperature"]);
    assert_eq!(pending[1].locked, "0.8");
    assert_eq!(pending[1].now, "0.6");
    // Until the keeper accepts it, the lock is unchanged.
    assert_eq!(load(&home).expect("load").models["tiny"], entry);
    let accepted = accept(&home, "tiny", now.clone(), None).expect("accept");
    assert_eq!(accepted, pending);
    let after = &load(&home).expect("load").models["tiny"];
    assert_eq!(after.pins(), now);
    assert!(served_pins(after, &now).1.is_empty());
}

#[test]
fn accepting_changed_bytes_pins_the_new_digest() {
    let (_dir, home, path) = home_with_model();
    let entry = lock_it(&home, &path);
    flip_byte(&path, 7);
    set_mtime(&path, mtime(&path) + std::time::Duration::from_secs(5));
    let files = rehash_changed(&home, &entry, &crate::Silent).expect("rehash");
    let changes = accept(&home, "tiny", entry.pins(), Some(files)).expect("accept");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].what, "file models/tiny.gguf");
    check_served(&home, "tiny", &served(&path), &Phases::default()).expect("accepted");
    assert!(accept(&home, "nothing", entry.pins(), None).is_err());
}

#[test]
fn the_lockfile_is_sorted_readable_toml_written_whole() {
    let (_dir, home, path) = home_with_model();
    let mut catalog = pins("{% for m in messages %}{{ m.content }}\n{% endfor %}");
    catalog.template = Some(TemplateLock::new(
        "{% for m in messages %}{{ m.content }}\n{% endfor %}",
        TemplateSource::Catalog,
    ));
    for name in ["zeta", "alpha"] {
        let Checked::New { files } =
            check_served(&home, name, &served(&path), &Phases::default()).expect("check")
        else {
            panic!("new");
        };
        record_new(&home, name, files, catalog.clone()).expect("record");
    }
    let text = std::fs::read_to_string(path_of(&home)).expect("read");
    let alpha = text.find("[models.alpha").expect("alpha");
    let zeta = text.find("[models.zeta").expect("zeta");
    assert!(alpha < zeta, "{text}");
    assert!(text.contains("temperature = 0.8\n"), "{text}");
    assert!(text.contains("source = \"catalog\""), "{text}");
    assert!(
        text.contains("{{ m.content }}"),
        "the catalog's template is kept: {text}"
    );
    assert!(text.starts_with("# "), "{text}");
    // Nothing but the lockfile (and the index lock) is left beside it.
    let names: Vec<String> = std::fs::read_dir(home.root())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    assert_eq!(load(&home).expect("load").models.len(), 2);
}

#[test]
fn a_damaged_lockfile_is_an_error_that_says_what_to_do() {
    let (_dir, home, _path) = home_with_model();
    std::fs::write(path_of(&home), "version = 1\n[models.x]\nhearth = 3\n").expect("write");
    let err = load(&home).expect_err("damaged");
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    assert!(err.to_string().contains("move it away"), "{err}");
}

fn path_of(home: &Home) -> PathBuf {
    super::path(home)
}
