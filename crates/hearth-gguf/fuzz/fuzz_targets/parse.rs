//! Feeds arbitrary bytes to both parsers. Errors are expected; a panic, an abort (a huge
//! allocation fails under libFuzzer's `-rss_limit_mb`) or an inconsistent answer is a bug. Copy
//! any crashing input into `../tests/corpus/` after fixing it.
#![no_main]

use hearth_gguf::{Error, Gguf, Header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Header::parse(data) {
        Ok(h) => assert!(h.data_offset <= h.file_bytes_needed()),
        Err(Error::Truncated { needed, available, .. }) => assert!(needed > available),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(g) = Gguf::from_bytes(data.to_vec()) {
        for t in g.tensors() {
            assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
        }
        let _ = g.metadata().architecture();
    }
});
