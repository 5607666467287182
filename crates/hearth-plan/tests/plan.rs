//! The plan's arithmetic against the engine's own structures and against hand counts.

use hearth_gguf::{GgmlType, Gguf, Header, Value};
use hearth_model::kv::KvCache;
use hearth_model::testing::TinySpec;
use hearth_plan::{
    kv_bytes, kv_bytes_per_token, kv_read_bytes, plan, KvType, Machine, ModelFacts, Profiles,
    Request,
};

fn facts(spec: &TinySpec) -> ModelFacts {
    let bytes = spec.build();
    ModelFacts::from_header(&Header::parse(&bytes).unwrap()).unwrap()
}

fn gemma_like(window: usize) -> TinySpec {
    let mut spec = TinySpec::new("gemma3");
    spec.window = window;
    spec.ctx = 8192;
    spec
}

#[test]
fn kv_bytes_equal_what_the_engine_cache_reserves() {
    let mut smol = TinySpec::new("llama");
    smol.ctx = 8192;
    let specs = [smol, gemma_like(4), gemma_like(64), gemma_like(1024)];
    let mut checked_swa = false;
    for spec in &specs {
        let f = facts(spec);
        checked_swa |= f.config.layer_is_swa.iter().any(|s| *s);
        for ctx in [1, 16, 17, 100, 512, 1000, 4096] {
            for users in [1, 3] {
                for chunk in [1, 16, 64, 256] {
                    let cache = KvCache::new(&f.config, ctx, users, chunk);
                    assert_eq!(
                        kv_bytes(&f.config, ctx, users, chunk, KvType::F16),
                        cache.capacity_bytes() as u64,
                        "{} window {} ctx {ctx} users {users} chunk {chunk}",
                        spec.arch,
                        spec.window
                    );
                }
            }
        }
    }
    assert!(checked_swa, "no spec had sliding-window layers");
}

#[test]
fn kv_per_token_is_layers_times_heads_times_dims() {
    let spec = TinySpec::new("llama");
    let f = facts(&spec);
    let per_token = (spec.n_layer * spec.n_kv_head * spec.head_dim * 2 * 2) as u64;
    assert_eq!(kv_bytes_per_token(&f.config, KvType::F16), per_token);
    // q8_0: 34 bytes per 32 values.
    assert_eq!(
        kv_bytes_per_token(&f.config, KvType::Q8_0),
        per_token / 2 / 32 * 34
    );
    // Full attention reads every position; a sliding window caps what is read.
    assert_eq!(
        kv_read_bytes(&f.config, 1000, KvType::F16),
        per_token * 1000
    );
    let g = facts(&gemma_like(64));
    let full_ctx = kv_bytes_per_token(&g.config, KvType::F16) * 1000;
    assert!(kv_read_bytes(&g.config, 1000, KvType::F16) < full_ctx);
}

#[test]
fn weights_are_the_sum_of_tensor_bytes() {
    let bytes = TinySpec::new("llama").build();
    let gguf = Gguf::from_bytes(bytes).unwrap();
    let f = ModelFacts::from_header(gguf.header()).unwrap();
    let sum: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    assert_eq!(f.weights_bytes, sum);
    let params: u64 = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    assert_eq!(f.n_params, params);
}

#[test]
fn a_step_reads_every_matrix_and_one_row_of_an_untied_embedding() {
    // The tiny llama by hand: 6 layers of 7 matrices cycling through Q8_0, Q4_0, Q4_K, Q6_K,
    // F16, Q5_0 (bytes per 256 values: 272, 144, 144, 210, 512, 176), two f32 norms of 256
    // per layer, the output norm, and a Q8_0 embedding of 300 rows of 256 (272 bytes a row).
    let spec = TinySpec::new("llama");
    let per_256 = [272u64, 144, 144, 210, 512, 176];
    let shapes = [
        256 * 256, // attn_q: 4 heads of 64
        256 * 128, // attn_k: 2 heads of 64
        256 * 128, // attn_v
        256 * 256, // attn_output
        256 * 512, // ffn_gate
        256 * 512, // ffn_up
        512 * 256, // ffn_down
    ];
    let mut matrices = 0u64;
    for (i, n) in shapes.iter().cycle().take(6 * 7).enumerate() {
        matrices += n / 256 * per_256[i % per_256.len()];
    }
    let norms = (6 * 2 * 256 + 256) * 4;
    let embd = 300 * 272;
    let mut header = Header::parse(&spec.build()).unwrap();
    // Tied: the output head is the embedding table, read whole each step.
    let tied = ModelFacts::from_header(&header).unwrap();
    assert_eq!(tied.weights_bytes, matrices + norms + embd);
    assert_eq!(tied.read_bytes_per_token, matrices + norms + embd);
    // Untied: a Q4_K output head of 300 × 256 (144 bytes a row) is read whole, and of the
    // embedding only the one row the step looks up.
    let mut output = header.tensors[0].clone();
    output.name = "output.weight".to_string();
    output.ty = hearth_gguf::GgmlType::Q4_K;
    output.n_bytes = 300 * 144;
    header.tensors.push(output);
    let untied = ModelFacts::from_header(&header).unwrap();
    assert_eq!(untied.weights_bytes, matrices + norms + embd + 300 * 144);
    assert_eq!(
        untied.read_bytes_per_token,
        matrices + norms + 300 * 144 + 272
    );
}

#[test]
fn the_table_coded_4_bit_types_count_their_block_bytes() {
    // The tiny llama of the test above with every matrix in one type. Per 256 values: IQ4_NL
    // 8 blocks of 18 bytes, IQ4_XS one block of 136, MXFP4 8 blocks of 17 (one E8M0 byte).
    use hearth_gguf::GgmlType::*;
    for (ty, per_256) in [(IQ4_NL, 144u64), (IQ4_XS, 136), (MXFP4, 136)] {
        let spec = TinySpec {
            weight_types: vec![ty],
            ..TinySpec::new("llama")
        };
        let per_layer = 256 * 256 + 2 * 256 * 128 + 256 * 256 + 3 * 256 * 512;
        let matrices = 6 * per_layer / 256 * per_256;
        let norms = (6 * 2 * 256 + 256) * 4;
        let embd = 300 * 272;
        let f = facts(&spec);
        assert_eq!(f.weights_bytes, matrices + norms + embd, "{ty}");
        assert_eq!(f.read_bytes_per_token, matrices + norms + embd, "{ty}");
    }
}

#[test]
fn fit_and_limits_follow_the_memory() {
    let f = facts(&TinySpec::new("llama"));
    let req = Request::new(512, 2);
    let big = Machine::custom(1 << 30, 100e9, 1e12);
    let p = plan(&f, &big, &req).unwrap();
    assert!(p.fits);
    assert_eq!(
        p.total_bytes,
        p.weights_bytes + p.header_bytes + p.kv_bytes + p.compute_bytes + p.runtime_bytes
    );
    assert_eq!(p.header_bytes + p.weights_bytes, f.file_bytes);
    assert_eq!(p.runtime_bytes, hearth_plan::RUNTIME_BYTES + f.text_bytes);
    assert_eq!(p.headroom_bytes, (1i64 << 30) - p.total_bytes as i64);
    assert_eq!(p.kv_bytes, 2 * p.kv_bytes_per_user);
    // Limited by the training context, not memory, on a big machine.
    assert_eq!(p.max_ctx_per_user, f.config.ctx_train);
    assert!(p.max_users_at_ctx >= 2);
    assert!(p.advice.is_empty());

    // Exactly the total fits; one byte less does not.
    let exact = Machine::custom(p.total_bytes, 100e9, 1e12);
    assert!(plan(&f, &exact, &req).unwrap().fits);
    let short = Machine::custom(p.total_bytes - 1, 100e9, 1e12);
    let q = plan(&f, &short, &req).unwrap();
    assert!(!q.fits);
    assert_eq!(q.headroom_bytes, -1);
    assert!(q.max_ctx_per_user < 512 && q.max_ctx_per_user > 0);
    assert_eq!(q.max_users_at_ctx, 1);
    assert!(!q.advice.is_empty());
    // The limits it reports do fit, and one step more does not.
    let at_limit = plan(&f, &short, &Request::new(q.max_ctx_per_user, 2)).unwrap();
    assert!(at_limit.fits);
    let past = plan(&f, &short, &Request::new(q.max_ctx_per_user + 16, 2)).unwrap();
    assert!(!past.fits);
}

#[test]
fn speed_is_bandwidth_over_bytes_read() {
    let f = facts(&TinySpec::new("llama"));
    let req = Request::new(256, 1);
    let m = Machine::custom(1 << 30, 100e9, 2e12);
    let p = plan(&f, &m, &req).unwrap();
    let read = f.read_bytes_per_token + kv_read_bytes(&f.config, 256, KvType::F16);
    let tg = 100e9 * req.tg_efficiency / read as f64;
    assert!((p.est_tg_tok_s - tg).abs() < 1e-6 * tg);
    let pp = 2e12 * req.pp_efficiency / (2.0 * f.n_matmul_params as f64);
    assert!((p.est_pp_tok_s - pp).abs() < 1e-6 * pp);
    // Twice the bandwidth, twice the speed; more users, slower each.
    let m2 = Machine::custom(1 << 30, 200e9, 2e12);
    let p2 = plan(&f, &m2, &req).unwrap();
    assert!((p2.est_tg_tok_s / p.est_tg_tok_s - 2.0).abs() < 1e-9);
    let p4 = plan(&f, &m, &Request::new(256, 4)).unwrap();
    assert!(p4.est_tg_tok_s < p.est_tg_tok_s);
    assert!(!p.speed_is_gpu_estimate);
    let gpu = Profiles::builtin().get("rtx-4090").unwrap().clone();
    assert!(plan(&f, &gpu, &req).unwrap().speed_is_gpu_estimate);
}

#[test]
fn q8_kv_is_smaller_and_bad_requests_are_refused() {
    let f = facts(&TinySpec::new("llama"));
    let mut req = Request::new(1024, 1);
    let m = Machine::custom(1 << 30, 1e11, 1e12);
    let f16 = plan(&f, &m, &req).unwrap();
    req.kv_type = KvType::Q8_0;
    let q8 = plan(&f, &m, &req).unwrap();
    assert!(q8.kv_bytes < f16.kv_bytes);
    assert_eq!(q8.kv_bytes * 64, f16.kv_bytes * 34);
    assert!(plan(&f, &m, &Request::new(0, 1)).is_err());
    assert!(plan(&f, &m, &Request::new(16, 0)).is_err());
    assert!(KvType::parse("q4").is_err());
}

#[test]
fn advice_offers_a_smaller_quantization_of_the_same_model() {
    let mut spec = TinySpec::new("llama");
    spec.weight_types = vec![hearth_gguf::GgmlType::F16];
    let f = facts(&spec);
    let req = Request::new(256, 1);
    let roomy = plan(&f, &Machine::custom(1 << 30, 1e11, 1e12), &req).unwrap();
    let rest = roomy.total_bytes - f.weights_bytes;
    // Room for everything but the weights, and the weights at Q8_0.
    let q8 = hearth_plan::weights_at(f.n_params, 8.52);
    assert!(q8 < f.weights_bytes);
    let p = plan(&f, &Machine::custom(rest + q8, 1e11, 1e12), &req).unwrap();
    assert!(!p.fits);
    let text = p.advice.join("\n");
    assert!(
        text.contains("a smaller quantization of the same model fits: Q8_0"),
        "{text}"
    );
    // No room for any weights: no quantization helps, and none is offered.
    let p = plan(&f, &Machine::custom(rest, 1e11, 1e12), &req).unwrap();
    assert!(!p
        .advice
        .join("\n")
        .contains("smaller quantization of the same"));
}

#[test]
fn smollm2_plan() {
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
    let gguf = Gguf::open(&path).unwrap();
    let f = ModelFacts::from_header(gguf.header()).unwrap();
    let sum: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    assert_eq!(f.weights_bytes, sum);
    // SmolLM2-135M: 30 layers, 3 KV heads of 64: 30 × 3 × 64 × 2 × 2 = 23040 bytes per token.
    assert_eq!(kv_bytes_per_token(&f.config, KvType::F16), 23040);
    let pc16 = Profiles::builtin().get("pc-16").unwrap().clone();
    let p = plan(&f, &pc16, &Request::new(2048, 1)).unwrap();
    assert!(p.fits);
    assert!(
        p.est_tg_tok_s > 10.0 && p.est_tg_tok_s < 10_000.0,
        "{}",
        p.est_tg_tok_s
    );
}

#[test]
fn compute_buffers_follow_the_documented_formula() {
    let spec = TinySpec::new("llama");
    let f = facts(&spec);
    let c = &f.config;
    let (ctx, users, chunk, batch, threads) = (1000, 3, 256, 512, 4);
    let per_token = 3 * spec.n_embd
        + spec.n_head * 2 * spec.head_dim
        + 2 * spec.n_kv_head * spec.head_dim
        + 2 * spec.n_ff;
    // Three users' chunks, but one batch carries at most 512 tokens.
    let tokens = batch;
    let expected = 4 * tokens * per_token
        + 4 * tokens * spec.n_embd.max(spec.n_ff)
        + 4 * spec.n_vocab * users
        + threads * (4 * (ctx + 2 * spec.head_dim) + (2 << 20));
    assert_eq!(
        hearth_plan::compute_bytes(c, ctx, users, chunk, batch, threads),
        expected as u64
    );
    // One user: one chunk. More users than the batch holds tokens: one token each.
    assert!(
        hearth_plan::compute_bytes(c, ctx, 1, chunk, batch, threads)
            < hearth_plan::compute_bytes(c, ctx, users, chunk, batch, threads)
    );
    assert!(
        hearth_plan::compute_bytes(c, ctx, 1024, chunk, batch, threads)
            > hearth_plan::compute_bytes(c, ctx, 512, chunk, batch, threads)
    );
}

/// `block_count = 2^31` made `hearth plan` spin for over a minute: the header is now refused
/// before anything is computed from it, naming the key, the value and the layers present.
#[test]
fn the_planner_refuses_a_file_that_lies_about_its_shape() {
    for (key, value, says) in [
        (
            "llama.block_count",
            hearth_gguf::Value::U32(1 << 31),
            "llama.block_count = 2147483648, but the file has tensors for 6 layers",
        ),
        (
            "llama.embedding_length",
            hearth_gguf::Value::U32(4096),
            "llama.embedding_length = 4096, but token_embd.weight is 256 wide",
        ),
    ] {
        let spec = TinySpec {
            metadata_overrides: vec![(key.to_string(), value)],
            ..TinySpec::new("llama")
        };
        let header = Header::parse(&spec.build()).unwrap();
        let e = ModelFacts::from_header(&header)
            .err()
            .unwrap_or_else(|| panic!("{key} should be refused"));
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn a_draft_model_is_counted_with_its_own_cache_and_scratch() {
    let target = facts(&TinySpec::new("llama"));
    let mut small = TinySpec::new("llama");
    small.ctx = 256;
    let draft = facts(&small);
    let big = Machine::custom(1 << 30, 100e9, 1e12);
    let alone = plan(&target, &big, &Request::new(512, 2)).unwrap();
    let mut req = Request::new(512, 2);
    req.draft = Some(std::sync::Arc::new(draft.clone()));
    let both = plan(&target, &big, &req).unwrap();
    // The draft's file, text tables, KV cache (one context per user, at most its own trained
    // context: the engine's drafter caps it so) and scratch, and the binary only once.
    let draft_kv = KvCache::new(&draft.config, 256, 2, req.chunk).capacity_bytes() as u64;
    let draft_compute =
        hearth_plan::compute_bytes(&draft.config, 256, 2, req.chunk, req.batch, req.threads);
    let expected = draft.file_bytes + draft.text_bytes + draft_kv + draft_compute;
    assert_eq!(both.draft_bytes, expected);
    assert_eq!(both.total_bytes, alone.total_bytes + expected);
    assert_eq!(alone.draft_bytes, 0);
    // Fits alone, not with the draft: the plan says so, and that it fits without it.
    let tight = Machine::custom(alone.total_bytes, 100e9, 1e12);
    assert!(plan(&target, &tight, &Request::new(512, 2)).unwrap().fits);
    let p = plan(&target, &tight, &req).unwrap();
    assert!(!p.fits);
    assert!(
        p.advice
            .iter()
            .any(|a| a.contains("without the draft model")),
        "{:?}",
        p.advice
    );
    // The limits it reports count the draft too.
    assert!(p.max_ctx_per_user < 512);
}

/// A mixture of experts counts all its experts for memory and the routed ones for speed: a token
/// reads `expert_used_count` of `expert_count` experts, and every other tensor whole.
#[test]
fn a_mixture_of_experts_counts_active_weights_for_speed_and_all_for_memory() {
    let spec = TinySpec::new("qwen3moe");
    let header = Header::parse(&spec.build()).unwrap();
    let f = ModelFacts::from_header(&header).unwrap();
    let x = f.config.experts.clone().expect("experts");
    assert_eq!((x.n_expert, x.n_used, x.n_ff), (8, 2, 256));
    let bytes = |pick: &dyn Fn(&str) -> bool| -> u64 {
        header
            .tensors
            .iter()
            .filter(|t| pick(&t.name))
            .map(|t| t.n_bytes)
            .sum()
    };
    let experts = bytes(&|n| n.ends_with("_exps.weight"));
    let rest = bytes(&|n| !n.ends_with("_exps.weight"));
    assert!(experts > 0);
    assert_eq!(f.expert_bytes, experts);
    assert_eq!(f.weights_bytes, experts + rest);
    // Tied embeddings: everything else is read whole; 2 of 8 experts.
    assert_eq!(f.read_bytes_per_token, rest + experts / 4);
    let params = |pick: &dyn Fn(&str) -> bool| -> u64 {
        header
            .tensors
            .iter()
            .filter(|t| pick(&t.name))
            .map(|t| t.n_elements())
            .sum()
    };
    let expert_params = params(&|n| n.ends_with("_exps.weight"));
    assert_eq!(
        f.n_params,
        expert_params + params(&|n| !n.ends_with("_exps.weight"))
    );
    assert_eq!(
        f.n_matmul_params,
        f.n_params - expert_params + expert_params / 4
    );
    // Tied embeddings: every parameter but the idle experts' takes part in a product.
    assert_eq!(f.n_active_params, f.n_matmul_params);
    // So generation is estimated on the active bytes.
    let machine = Machine::custom(1 << 30, 100e9, 2e12);
    let req = Request::new(256, 1);
    let p = plan(&f, &machine, &req).unwrap();
    let read = f.read_bytes_per_token + kv_read_bytes(&f.config, 256, KvType::F16);
    let tg = 100e9 * req.tg_efficiency / read as f64;
    assert!((p.est_tg_tok_s - tg).abs() < 1e-6 * tg);
    let pp = 2e12 * req.pp_efficiency / (2.0 * f.n_matmul_params as f64);
    assert!((p.est_pp_tok_s - pp).abs() < 1e-6 * pp);
}

/// The committed tiny random-weight files of the newer architectures and RoPE scalings (see
/// hearth-model's `tests/data/tiny`).
fn tiny_file(name: &str) -> ModelFacts {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-model/tests/data/tiny")
        .join(name);
    let gguf = Gguf::open(&path).expect("tiny model");
    ModelFacts::from_header(gguf.header()).expect("plannable")
}

#[test]
fn newer_architectures_headers_read_for_the_plan() {
    // Gemma 2: a 4-token window on alternate layers, two KV heads of 16.
    let g2 = tiny_file("tiny-gemma2.gguf");
    assert_eq!(g2.config.arch, "gemma2");
    assert_eq!(g2.config.ctx_train, 256);
    assert_eq!(g2.config.sliding_window, Some(4));
    assert_eq!(g2.config.layer_is_swa, [true, false, true, false]);
    assert_eq!((g2.config.n_kv_head, g2.config.head_dim), (2, 16));
    // Phi-3: Q, K and V in one tensor, split by the head counts; four KV heads of 16.
    let phi = tiny_file("tiny-phi3.gguf");
    assert_eq!(phi.config.arch, "phi3");
    assert_eq!((phi.config.n_kv_head, phi.config.head_dim), (4, 16));
    assert_eq!(phi.config.n_ff, 128);
    assert!(phi.config.layer_is_swa.iter().all(|s| !s));
    // Mistral 3: YaRN from an original 64 to its trained 256.
    let m3 = tiny_file("tiny-mistral3.gguf");
    assert_eq!(m3.config.arch, "mistral3");
    assert_eq!((m3.config.ctx_train, m3.config.max_ctx()), (256, 256));
    for f in [&g2, &phi, &m3] {
        for (ctx, users) in [(1, 1), (100, 2), (256, 3)] {
            let cache = KvCache::new(&f.config, ctx, users, 16);
            assert_eq!(
                kv_bytes(&f.config, ctx, users, 16, KvType::F16),
                cache.capacity_bytes() as u64,
                "{} ctx {ctx} users {users}",
                f.config.arch
            );
        }
    }
}

#[test]
fn declared_rope_scaling_lets_the_plan_go_past_the_trained_context() {
    let big = Machine::custom(64 << 30, 100e9, 1e12);
    // Trained for 64 positions, YaRN factor 4: up to 256.
    let yarn = tiny_file("tiny-qwen2-yarn.gguf");
    assert_eq!(yarn.config.ctx_train, 64);
    let p = plan(&yarn, &big, &Request::new(200, 1)).unwrap();
    assert_eq!(p.max_ctx_per_user, 256);
    // No scaling: the training context is the limit.
    let plain = tiny_file("tiny-llama.gguf");
    let p = plan(&plain, &big, &Request::new(200, 1)).unwrap();
    assert_eq!(p.max_ctx_per_user, plain.config.ctx_train);
}

/// Several users' tokens are routed independently, so a step reads the union of their experts:
/// for `U` tokens each picking `k` of `E` experts, `E·(1−(1−k/E)^U)` per layer are expected,
/// not `k`. One user reads `k`, as before.
#[test]
fn several_users_read_the_union_of_their_experts() {
    let f = facts(&TinySpec::new("qwen3moe"));
    let (k, e) = (2.0f64, 8.0f64);
    let machine = Machine::custom(1 << 30, 100e9, 2e12);
    // Everything but the experts, which a step reads whole, plus one token's 2 of 8 experts.
    let dense = f.read_bytes_per_token - f.expert_bytes / 4;
    for users in [1usize, 2, 4, 16] {
        let req = Request::new(256, users);
        let p = plan(&f, &machine, &req).unwrap();
        let union = 1.0 - (1.0 - k / e).powi(users as i32);
        let read = dense as f64
            + f.expert_bytes as f64 * union
            + users as f64 * kv_read_bytes(&f.config, 256, KvType::F16) as f64;
        let tg = 100e9 * req.tg_efficiency / read;
        assert!(
            (p.est_tg_tok_s - tg).abs() < 1e-6 * tg,
            "{users} users: {} tokens/s estimated, {tg} expected",
            p.est_tg_tok_s
        );
    }
}

/// `header` with `key` left out.
fn without_key(header: &Header, key: &str) -> Header {
    let mut metadata = hearth_gguf::Metadata::new();
    for (k, v) in header.metadata.iter().filter(|(k, _)| *k != key) {
        metadata.insert(k.to_string(), v.clone()).unwrap();
    }
    Header {
        metadata,
        ..header.clone()
    }
}

/// Gives tensor `name` of `header` the dims `dims` (and the type `ty`, if given), sizing its
/// bytes as the parser would.
fn reshape(header: &mut Header, name: &str, dims: &[u64], ty: Option<GgmlType>) {
    let t = header
        .tensors
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    t.dims = dims.to_vec();
    t.ty = ty.unwrap_or(t.ty);
    t.n_bytes = t.ty.bytes_for(t.n_elements()).expect("a valid size");
}

/// A header read alone (a URL, a file's first megabytes) is never checked against real bytes,
/// so its shapes may be anything the format allows (element counts up to 2^63). Every such lie
/// gives an error or a saturated number, never a sum that wraps into a plan that fits (or, in a
/// debug build, an overflow panic).
#[test]
fn a_hostile_header_gives_an_error_or_a_saturated_number() {
    let base = Header::parse(&TinySpec::new("qwen3moe").build()).unwrap();
    let n = base.tensors.len();
    // Experts 2^40 wide, which no width key contradicts: refused, naming the width.
    let mut wide = without_key(&base, "qwen3moe.expert_feed_forward_length");
    for i in 0..n {
        let t = &wide.tensors[i];
        if t.name.contains("_exps.") {
            let name = t.name.clone();
            let dims = if name.contains("ffn_down") {
                [1 << 40, 256, 8]
            } else {
                [256, 1 << 40, 8]
            };
            reshape(&mut wide, &name, &dims, None);
        }
    }
    let e = ModelFacts::from_header(&wide).expect_err("experts 2^40 wide");
    let e = e.to_string();
    assert!(
        e.contains("qwen3moe.expert_feed_forward_length = 1099511627776"),
        "{e}"
    );
    // The shared expert's width likewise.
    let mut shared = Header::parse(&TinySpec::new("qwen2moe").build()).unwrap();
    for name in ["blk.0.ffn_gate_shexp.weight", "blk.0.ffn_up_shexp.weight"] {
        reshape(&mut shared, name, &[256, 1 << 40], None);
    }
    reshape(
        &mut shared,
        "blk.0.ffn_down_shexp.weight",
        &[1 << 40, 256],
        None,
    );
    let e = ModelFacts::from_header(&shared).expect_err("a shared expert 2^40 wide");
    let e = e.to_string();
    assert!(
        e.contains("qwen2moe.expert_shared_feed_forward_length = 1099511627776"),
        "{e}"
    );
    // Layers past the first are not checked against the hyper-parameters: four tensors of 2^62
    // elements hold more bytes (and parameters) than a u64 counts.
    let mut huge = base.clone();
    for i in 1..5 {
        let name = format!("blk.{i}.ffn_down_exps.weight");
        reshape(&mut huge, &name, &[1 << 62], Some(GgmlType::Q8_0));
    }
    let e = ModelFacts::from_header(&huge).expect_err("more bytes than a u64 holds");
    assert!(e.to_string().contains("blk."), "{e}");
    // Every expert used, and an expert tensor's count past 2^53, where an f64 rounds it up:
    // nothing is idle, exactly.
    let spec = TinySpec {
        metadata_overrides: vec![("qwen3moe.expert_used_count".into(), Value::U32(8))],
        ..TinySpec::new("qwen3moe")
    };
    let mut all = Header::parse(&spec.build()).unwrap();
    reshape(
        &mut all,
        "blk.1.ffn_down_exps.weight",
        &[(1 << 54) - 1],
        Some(GgmlType::F32),
    );
    let f = ModelFacts::from_header(&all).unwrap();
    assert_eq!(f.n_active_params, f.n_params);
    assert_eq!(f.read_bytes_per_token, f.weights_bytes);
    // Scratch for a model as wide as the keys allow, as many users and as long a context as a
    // request may ask, saturates; and such a plan does not fit.
    let mut f = facts(&TinySpec::new("qwen3moe"));
    f.config.n_embd = u32::MAX as usize;
    let x = f.config.experts.as_mut().unwrap();
    (x.n_expert, x.n_used, x.n_ff) = (512, 512, u32::MAX as usize);
    let c = &f.config;
    assert_eq!(
        hearth_plan::compute_bytes(c, 1 << 30, 1 << 30, 1 << 30, usize::MAX, 1 << 20),
        u64::MAX
    );
    let machine = Machine::custom(1 << 40, 100e9, 2e12);
    let p = plan(&f, &machine, &Request::new(256, 1 << 30)).unwrap();
    assert!(!p.fits);
    assert_eq!(p.total_bytes, u64::MAX);
    assert!(p.headroom_bytes < 0, "{}", p.headroom_bytes);
}

/// The pool's split holds every expert of a mixture of experts (memory) but reads and multiplies
/// only the routed share per token (speed), as the single-machine plan does.
#[test]
fn a_pool_split_of_a_mixture_of_experts_reads_the_routed_share() {
    let spec = TinySpec::new("qwen3moe");
    let header = Header::parse(&spec.build()).unwrap();
    let f = ModelFacts::from_header(&header).unwrap();
    let m = hearth_plan::pool::PoolModel::from_header(&header, &f, &Request::new(512, 1)).unwrap();
    let layers: u64 = m.layer_bytes.iter().sum();
    // Tied embeddings: the table is held by the first stage and again by the last.
    assert_eq!(
        layers + m.embed_bytes + m.output_bytes - m.embed_bytes,
        f.weights_bytes
    );
    let active: u64 = m.layer_params.iter().sum::<u64>() + m.output_params;
    assert_eq!(active, f.n_active_params);
    // A step reads the routed experts and every other layer tensor, each layer rounded alone.
    let read: u64 = m.layer_read_bytes.iter().sum::<u64>() + m.output_bytes;
    let off = read.abs_diff(f.read_bytes_per_token);
    assert!(
        off <= 4 * m.n_layer() as u64,
        "{read} vs {}",
        f.read_bytes_per_token
    );
    assert!(read < layers);
}
