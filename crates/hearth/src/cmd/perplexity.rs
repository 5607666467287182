//! `hearth perplexity`: how well a model predicts a text, by llama.cpp's `llama-perplexity`
//! method so the two programs' figures compare directly.
//!
//! The text is tokenized once (with BOS where the model adds one) and cut into non-overlapping
//! chunks of `--ctx` tokens. Each chunk is evaluated from an empty cache, its first token
//! replaced by BOS, and only its second half is scored: every position there has at least half a
//! context behind it. Perplexity is exp of the mean negative log-likelihood of the next token,
//! with the uncertainty of that mean.
//!
//! `--kl-divergence-base F` saves each scored position's log-probabilities to F in
//! llama-perplexity's own format (16 bits per token); with `--kl-divergence` it reads such a
//! file, made by Hearth or by llama.cpp, evaluates the same tokens, and reports the KL divergence
//! from the base's distribution and how often both put the same token first.

mod score;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, Workspace};
use serde_json::json;

use crate::load::{self, GenOptions};
use score::{base_row_len, encode_base_row, mean_and_error, nll, percentile, Kld};

/// The magic at the start of a base file, as llama.cpp writes it.
const BASE_MAGIC: &[u8; 8] = b"_logits_";
/// Most tokens in one forward pass.
const BATCH: usize = 512;

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// A catalog name, an installed name or a path to a .gguf.
    pub model: String,
    /// A UTF-8 text file to score (read but not needed with --kl-divergence, whose base file
    /// holds the tokens; when given, its tokens are compared with the base's).
    pub file: Option<PathBuf>,
    /// Tokens per chunk; the second half of each is scored. With --kl-divergence, the base's.
    #[arg(short = 'c', long)]
    pub ctx: Option<usize>,
    /// Score at most this many chunks (default: all the text holds).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads (default: physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// A base file of log-probabilities (llama-perplexity's format): written by this run, or,
    /// with --kl-divergence, read and compared against.
    #[arg(long, value_name = "F")]
    pub kl_divergence_base: Option<PathBuf>,
    /// Compare against --kl-divergence-base instead of writing it.
    #[arg(long, requires = "kl_divergence_base")]
    pub kl_divergence: bool,
    /// Print one JSON object instead of sentences.
    #[arg(long)]
    pub json: bool,
}

/// What a base file starts with.
struct BaseHeader {
    n_ctx: usize,
    n_vocab: usize,
    n_chunk: usize,
    tokens: Vec<u32>,
}

pub fn run(a: PerplexityArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (loaded, model) = load::load(Some(&a.model), &GenOptions::defaults())?;
    let tok = &loaded.tokenizer;
    let n_vocab = model.config().n_vocab;

    // The tokens, and where the base comes from or goes.
    let text_tokens = match &a.file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {} as UTF-8 text", f.display()))?;
            Some(tok.encode(&text, true, false))
        }
        None => None,
    };
    let mut base_in = None;
    let mut base_out = None;
    let (tokens, n_ctx, n_chunk) = match (&a.kl_divergence_base, a.kl_divergence) {
        (Some(path), true) => {
            let (reader, header) = open_base(path)?;
            if header.n_vocab != n_vocab {
                bail!(
                    "{} was made with a vocabulary of {} tokens, but {} has {n_vocab}: compare models with the same tokenizer",
                    path.display(),
                    header.n_vocab,
                    loaded.name
                );
            }
            if let Some(c) = a.ctx.filter(|&c| c != header.n_ctx) {
                bail!(
                    "{} was made with --ctx {}; leave --ctx out or give {} (not {c})",
                    path.display(),
                    header.n_ctx,
                    header.n_ctx
                );
            }
            if let Some(t) = &text_tokens {
                let n = header.tokens.len().min(t.len());
                match (0..n).find(|&i| header.tokens[i] != t[i]) {
                    Some(i) => eprintln!(
                        "note: {} tokenizes differently from the base from token {i} on; the base's tokens are used",
                        a.file.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
                    ),
                    None => eprintln!("the text's tokens are the base's"),
                }
            }
            let n_chunk = a.chunks.map_or(header.n_chunk, |c| c.min(header.n_chunk));
            base_in = Some(reader);
            (header.tokens, header.n_ctx, n_chunk)
        }
        (base, _) => {
            let Some(tokens) = text_tokens else {
                bail!("give a text file to score (or --kl-divergence with a base file)");
            };
            let n_ctx = a.ctx.unwrap_or(512);
            if n_ctx < 16 {
                bail!("--ctx {n_ctx} is too short to score; use 16 or more (llama.cpp's usual is 512)");
            }
            if n_ctx > model.config().max_ctx() {
                bail!(
                    "--ctx {n_ctx} is longer than {} was trained for ({} tokens){}",
                    loaded.name,
                    model.config().ctx_train,
                    if model.config().max_ctx() > model.config().ctx_train {
                        format!(
                            ", and its RoPE scaling reaches only {}",
                            model.config().max_ctx()
                        )
                    } else {
                        String::new()
                    }
                );
            }
            if tokens.len() < 2 * n_ctx {
                bail!(
                    "the text is {} tokens long; scoring with --ctx {n_ctx} needs at least {} (twice the context): use a longer text or a smaller --ctx",
                    tokens.len(),
                    2 * n_ctx
                );
            }
            let most = tokens.len() / n_ctx;
            let n_chunk = a.chunks.map_or(most, |c| c.min(most)).max(1);
            if let Some(path) = base {
                if path.exists() {
                    bail!(
                        "{} already exists: add --kl-divergence to compare against it, or remove it to save a new base",
                        path.display()
                    );
                }
                let mut w = BufWriter::new(
                    File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                );
                w.write_all(BASE_MAGIC)?;
                w.write_all(&(n_ctx as u32).to_le_bytes())?;
                w.write_all(&(n_vocab as i32).to_le_bytes())?;
                w.write_all(&(n_chunk as i32).to_le_bytes())?;
                for &t in &tokens[..n_chunk * n_ctx] {
                    w.write_all(&(t as i32).to_le_bytes())?;
                }
                base_out = Some(w);
            }
            (tokens, n_ctx, n_chunk)
        }
    };

    let threads = a
        .threads
        .unwrap_or_else(hearth_kernels::pool::physical_cores)
        .max(1);
    let pool = ThreadPool::new(threads);
    let first = n_ctx / 2;
    let scored = n_ctx - 1 - first;
    let row_len = base_row_len(n_vocab);
    let mut row = vec![0u16; row_len * scored];
    let (mut sum, mut sum2, mut count) = (0f64, 0f64, 0usize);
    let mut kld = base_in.as_ref().map(|_| Kld::default());
    let mut eval = Evaluator::new(&model, n_ctx);
    eprintln!(
        "scoring {n_chunk} chunk(s) of {n_ctx} tokens ({} in all) with {threads} thread(s)",
        n_chunk * n_ctx
    );
    for c in 0..n_chunk {
        let chunk = &tokens[c * n_ctx..(c + 1) * n_ctx];
        let mut input = chunk.to_vec();
        if let Some(bos) = tok.bos().filter(|_| tok.add_bos()) {
            input[0] = bos;
        }
        let logits = eval.run(&model, &input, first, &pool)?;
        if let Some(r) = base_in.as_mut() {
            let mut bytes = vec![0u8; row.len() * 2];
            r.read_exact(&mut bytes)
                .with_context(|| format!("the base file ends before chunk {}", c + 1))?;
            for (v, b) in row.iter_mut().zip(bytes.chunks_exact(2)) {
                *v = u16::from_le_bytes([b[0], b[1]]);
            }
        }
        for i in 0..scored {
            let l = &logits[i * n_vocab..(i + 1) * n_vocab];
            let next = chunk[first + i + 1] as usize;
            let r = &mut row[i * row_len..(i + 1) * row_len];
            let v = match (&mut kld, &base_out) {
                (Some(k), _) => {
                    k.add(l, r, next);
                    nll(l, next)
                }
                (None, Some(_)) => encode_base_row(l, next, r),
                (None, None) => nll(l, next),
            };
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        if let Some(w) = base_out.as_mut() {
            let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        let (mean, _) = mean_and_error(sum, sum2, count);
        eprintln!("[{}/{n_chunk}] perplexity so far {:.4}", c + 1, mean.exp());
    }
    if let Some(mut w) = base_out {
        w.flush()?;
    }

    let (mean, err) = mean_and_error(sum, sum2, count);
    let ppl = mean.exp();
    let ppl_err = ppl * err;
    let secs = started.elapsed().as_secs_f64();
    let mut out = json!({
        "model": loaded.name,
        "ctx": n_ctx,
        "chunks": n_chunk,
        "scored_tokens": count,
        "ppl": ppl,
        "ppl_error": ppl_err,
        "seconds": secs,
    });
    if let Some(k) = kld.as_mut() {
        k.values.sort_by(f32::total_cmp);
        let (kl, kl_err) = mean_and_error(k.sum_kld, k.sum_kld2, k.count);
        let (base_mean, base_err) = mean_and_error(k.sum_nll_base, k.sum_nll_base2, k.count);
        let same = k.same_top as f64 / k.count.max(1) as f64;
        out["base_ppl"] = json!(base_mean.exp());
        out["base_ppl_error"] = json!(base_mean.exp() * base_err);
        out["mean_kld"] = json!(kl);
        out["mean_kld_error"] = json!(kl_err);
        out["median_kld"] = json!(percentile(&k.values, 0.5));
        out["kld_99"] = json!(percentile(&k.values, 0.99));
        out["max_kld"] = json!(percentile(&k.values, 1.0));
        out["same_top"] = json!(same);
    }
    if a.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: perplexity {ppl:.4} ± {ppl_err:.4} over {count} tokens ({n_chunk} chunk(s) of {n_ctx}), {secs:.1} s",
        loaded.name
    );
    if kld.is_some() {
        println!(
            "against the base: base perplexity {:.4}, mean KL divergence {:.6} ± {:.6}, median {:.6}, 99th percentile {:.6}, the same most likely token {:.2}% of the time",
            out["base_ppl"].as_f64().unwrap_or_default(),
            out["mean_kld"].as_f64().unwrap_or_default(),
            out["mean_kld_error"].as_f64().unwrap_or_default(),
            out["median_kld"].as_f64().unwrap_or_default(),
            out["kld_99"].as_f64().unwrap_or_default(),
            100.0 * out["same_top"].as_f64().unwrap_or_default(),
        );
    }
    Ok(())
}

/// Opens a base file and reads its header and tokens; the reader is left at the first chunk's
/// log-probabilities.
fn open_base(path: &Path) -> anyhow::Result<(BufReader<File>, BaseHeader)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = BufReader::new(f);
    let not_base = || {
        format!(
            "{} is not a base file of log-probabilities (made by `hearth perplexity --kl-divergence-base` or llama-perplexity's)",
            path.display()
        )
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).with_context(not_base)?;
    if &magic != BASE_MAGIC {
        bail!(not_base());
    }
    let mut word = [0u8; 4];
    let mut next = |r: &mut BufReader<File>| -> anyhow::Result<u32> {
        r.read_exact(&mut word).with_context(not_base)?;
        Ok(u32::from_le_bytes(word))
    };
    let n_ctx = next(&mut r)? as usize;
    let n_vocab = next(&mut r)? as usize;
    let n_chunk = next(&mut r)? as usize;
    if n_ctx < 16 || n_vocab == 0 || n_chunk == 0 || n_ctx.saturating_mul(n_chunk) > 1 << 28 {
        bail!(not_base());
    }
    let mut tokens = Vec::with_capacity(n_ctx * n_chunk);
    for _ in 0..n_ctx * n_chunk {
        let t = next(&mut r)?;
        if t as usize >= n_vocab {
            bail!("{}: token {t} is outside its vocabulary", path.display());
        }
        tokens.push(t);
    }
    Ok((
        r,
        BaseHeader {
            n_ctx,
            n_vocab,
            n_chunk,
            tokens,
        },
    ))
}

/// Evaluates chunks from an empty cache, keeping the logits of the scored positions.
struct Evaluator {
    kv: KvCache,
    ws: Workspace,
    logits: Vec<f32>,
}

impl Evaluator {
    fn new(model: &Model, n_ctx: usize) -> Evaluator {
        Evaluator {
            kv: KvCache::new(model.config(), n_ctx, 1, BATCH),
            ws: Workspace::new(),
            logits: Vec::new(),
        }
    }

    /// The logits of positions `first..len - 1` of `input`, one row of the vocabulary each.
    fn run(
        &mut self,
        model: &Model,
        input: &[u32],
        first: usize,
        pool: &ThreadPool,
    ) -> anyhow::Result<&[f32]> {
        let mut seq = self.kv.new_seq();
        self.logits.clear();
        let want = input.len() - 1;
        for start in (0..input.len()).step_by(BATCH) {
            let end = (start + BATCH).min(input.len());
            self.kv.reserve(&mut seq, end)?;
            let batch: Vec<BatchItem> = (start..end)
                .map(|pos| BatchItem {
                    token: input[pos],
                    pos,
                    seq: 0,
                    logits: pos >= first && pos < want,
                })
                .collect();
            let out = model.forward(&batch, &[&seq], &mut self.kv, &mut self.ws, pool)?;
            self.logits.extend_from_slice(out);
            seq.set_len(end);
        }
        self.kv.release(&mut seq);
        Ok(&self.logits)
    }
}
