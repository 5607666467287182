//! Times `Embedder::embed` on a batch of ~20-word sentences.
//!
//! ```text
//! cargo run --release -p hearth-embed --example embed-bench -- [--threads N] [--count N] [DIR]
//! ```
//!
//! DIR is the model directory; without it the test model is used (`hearth_fetch::test_model`,
//! which honours `HEARTH_TEST_HOME`). Prints the best of five runs after one warm-up.

use std::path::PathBuf;
use std::time::Instant;

use hearth_embed::Embedder;
use hearth_kernels::ThreadPool;

const SENTENCES: [&str; 8] = [
    "The heating in the living room turns itself off every evening at ten, even though nobody changed the schedule.",
    "Could you remind me which day the recycling is collected and whether glass bottles go in the same bin?",
    "My grandmother's apple cake recipe needs four eggs, two cups of flour, sugar, cinnamon and three sour apples.",
    "The children want to build a treehouse this summer, so we need planks, screws, rope and a good ladder.",
    "Please summarise the letter from the insurance company about the water damage in the basement last spring.",
    "We are planning a weekend trip to the mountains and need a list of warm clothes, snacks and maps.",
    "The washing machine makes a loud knocking noise during the spin cycle when the drum is only half full.",
    "How long should I boil potatoes for a salad, and should they be peeled before or after cooking them?",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut threads = 2;
    let mut count = 32;
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--count" => count = args.next().ok_or("--count needs a value")?.parse()?,
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => hearth_fetch::test_model("all-minilm-l6-v2")?,
    };
    let embedder = Embedder::open(&dir)?;
    let pool = ThreadPool::new(threads);
    let texts: Vec<String> = (0..count)
        .map(|i| format!("{} (note {i})", SENTENCES[i % SENTENCES.len()]))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs
        .iter()
        .map(|t| embedder.count_tokens(t))
        .sum::<Result<usize, _>>()?;
    embedder.embed(&refs, &pool)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        let out = embedder.embed(&refs, &pool)?;
        best = best.min(t0.elapsed().as_secs_f64());
        assert_eq!(out.len(), count);
    }
    println!(
        "{count} sentences, {tokens} tokens, {threads} threads: {:.1} ms ({:.0} tokens/s, {:.2} ms/sentence)",
        best * 1e3,
        tokens as f64 / best,
        best * 1e3 / count as f64
    );
    Ok(())
}
