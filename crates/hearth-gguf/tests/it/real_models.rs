//! Opens the real starter models (fetched once through `hearth pull`'s own code,
//! `hearth_fetch::test_model`; a model that cannot be had fails the test) and prints how long the
//! parse takes.

use std::time::Instant;

use hearth_gguf::{Gguf, Header};

#[test]
fn real_models_open_and_parse_fast() {
    let paths: Vec<_> = ["smollm2-135m", "gemma3-270m"]
        .iter()
        .map(|name| {
            hearth_fetch::test_model(name)
                .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"))
        })
        .collect();
    for path in paths {
        let t0 = Instant::now();
        let g = Gguf::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let open_ms = t0.elapsed().as_secs_f64() * 1e3;
        let md = g.metadata();
        let arch = md.architecture().unwrap();
        let n_vocab = md
            .strings("tokenizer.ggml.tokens")
            .map(|t| t.len())
            .unwrap_or(0);
        let blocks = md.u32(&format!("{arch}.block_count")).unwrap();
        assert!(blocks > 0);
        assert!(
            g.tensor("token_embd.weight").is_some(),
            "{}",
            path.display()
        );
        let mut sum = 0u64;
        for t in g.tensors() {
            // Touch one byte per tensor so the mapping is really read.
            sum += u64::from(g.tensor_data(t)[0]);
        }
        // The header alone, as the planner parses it from a ranged download.
        let header_len = g.header().data_offset as usize;
        let bytes = std::fs::read(&path).unwrap();
        // Best of five, so a busy machine does not hide the parser's own speed.
        let mut parse_ms = f64::INFINITY;
        let mut h = None;
        for _ in 0..5 {
            let t1 = Instant::now();
            h = Some(Header::parse(&bytes[..header_len]).unwrap());
            parse_ms = parse_ms.min(t1.elapsed().as_secs_f64() * 1e3);
        }
        let h = h.unwrap();
        assert_eq!(&h, g.header());
        assert_eq!(h.file_bytes_needed(), g.file_size());
        eprintln!(
            "{}: v{} arch {arch}, {} keys, {} tensors, vocab {n_vocab}, header {header_len} bytes; \
             open+validate {open_ms:.1} ms, Header::parse {parse_ms:.1} ms (best of 5) (checksum {sum})",
            path.file_name().unwrap().to_string_lossy(),
            g.version(),
            md.len(),
            g.tensors().len(),
        );
    }
}
