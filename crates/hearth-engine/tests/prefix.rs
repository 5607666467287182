//! The prefix cache and the KV budget: a prefix hit gives the same logits, bit for bit, as
//! recomputing; admission waits for blocks instead of failing mid-generation; retained prefixes
//! are evicted when room is needed; every block comes back.

use hearth_engine::{Engine, EngineOptions, Error, Event, KvStats, Request, SeqId};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};

const CTX: usize = 256;

fn model(arch: &'static str, window: usize) -> Model {
    let mut spec = TinySpec::new(arch);
    spec.window = window;
    Model::from_gguf(Gguf::from_bytes(spec.build()).expect("gguf")).expect("model")
}

fn engine_with(
    arch: &'static str,
    window: usize,
    prefix_cache: bool,
    budget: Option<usize>,
) -> Engine {
    Engine::new(
        model(arch, window),
        EngineOptions {
            ctx: CTX,
            threads: 2,
            max_seqs: 3,
            prefill_chunk: 24,
            max_batch_tokens: 64,
            keep_logits: true,
            kv_budget_bytes: budget,
            prefix_cache,
            ..EngineOptions::default()
        },
    )
}

fn tokens(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (i * 37 + seed * 11 + 1) % 300)
        .collect()
}

fn cat(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter().chain(b).copied().collect()
}

fn req(prompt: Vec<u32>, max_tokens: usize) -> Request {
    Request {
        prompt,
        sampler: SamplerConfig::greedy(),
        max_tokens,
        ..Default::default()
    }
}

/// Logits (as bits) behind every generated token, per sequence, stepping until none is active.
fn run_all(e: &mut Engine, ids: &[SeqId]) -> Vec<Vec<Vec<u32>>> {
    let mut out = vec![Vec::new(); ids.len()];
    while e.has_work() {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, .. } = ev {
                if let Some(k) = ids.iter().position(|&id| id == seq) {
                    let l = e.sequence(seq).expect("seq").last_logits();
                    out[k].push(l.iter().map(|x| x.to_bits()).collect());
                }
            }
        }
    }
    out
}

/// What a fresh engine without the prefix cache computes for `prompt`.
fn reference(
    arch: &'static str,
    window: usize,
    prompt: &[u32],
    max_tokens: usize,
) -> Vec<Vec<u32>> {
    let mut e = engine_with(arch, window, false, None);
    let id = e.add(req(prompt.to_vec(), max_tokens)).expect("add");
    let out = run_all(&mut e, &[id]).remove(0);
    assert_eq!(e.sequence(id).expect("seq").reused_tokens(), 0);
    out
}

fn assert_adds_up(s: &KvStats) {
    assert_eq!(
        s.used_blocks + s.cached_blocks + s.free_blocks,
        s.total_blocks,
        "{s:?}"
    );
}

/// Two users with the same system prompt: the second reuses the first's blocks.
fn system_prompt_hit(arch: &'static str, window: usize) {
    let system = tokens(1, 40);
    let a = cat(&system, &tokens(2, 9));
    let b = cat(&system, &tokens(3, 13));
    let mut e = engine_with(arch, window, true, None);
    let id_a = e.add(req(a, 4)).expect("add a");
    run_all(&mut e, &[id_a]);
    e.remove(id_a).expect("remove a");
    assert_eq!(e.kv_stats().used_blocks, 0);
    assert!(e.kv_stats().cached_blocks > 0);

    let id_b = e.add(req(b.clone(), 5)).expect("add b");
    let reused = e.sequence(id_b).expect("b").reused_tokens();
    assert_eq!(
        reused, 32,
        "{arch}: the system prompt's whole blocks are reused"
    );
    let got = run_all(&mut e, &[id_b]).remove(0);
    assert_eq!(got.len(), 5);
    assert_eq!(
        got,
        reference(arch, window, &b, 5),
        "{arch}: a prefix hit changed the logits"
    );
    assert_adds_up(&e.kv_stats());
}

#[test]
fn llama_system_prompt_hit_is_exact() {
    system_prompt_hit("llama", 4);
}

#[test]
fn gemma3_system_prompt_hit_is_exact() {
    // A window wider than what the first user added after the system prompt: the retained
    // sliding-window blocks still cover the shared prefix's end.
    system_prompt_hit("gemma3", 48);
}

/// Turn 2 of a conversation (turn 1, its reply, new text) reuses turn 1's blocks.
fn next_turn_hit(arch: &'static str, window: usize) {
    let mut e = engine_with(arch, window, true, None);
    let id1 = e.add(req(tokens(4, 50), 6)).expect("add turn 1");
    run_all(&mut e, &[id1]);
    let turn1 = e.remove(id1).expect("remove").tokens().to_vec();
    assert_eq!(turn1.len(), 56);
    let turn2 = cat(&turn1, &tokens(5, 7));
    let id2 = e.add(req(turn2.clone(), 4)).expect("add turn 2");
    // 55 positions were computed (the last reply token was never fed back): three whole blocks.
    assert_eq!(e.sequence(id2).expect("turn 2").reused_tokens(), 48);
    let got = run_all(&mut e, &[id2]).remove(0);
    assert_eq!(
        got,
        reference(arch, window, &turn2, 4),
        "{arch}: turn 2 from the cache changed the logits"
    );
}

#[test]
fn llama_next_turn_hit_is_exact() {
    next_turn_hit("llama", 4);
}

#[test]
fn gemma3_next_turn_hit_is_exact() {
    // Window 4: the sequence keeps one block more than its window, so it can be shared at the
    // start of the block holding its end.
    next_turn_hit("gemma3", 4);
}

#[test]
fn gemma3_released_window_falls_back_and_stays_exact() {
    // Window 4: the first user went 60 tokens past the system prompt, so the sliding-window
    // blocks at the system prompt's end are gone; the prefix cannot be shared that far.
    let system = tokens(1, 40);
    let a = cat(&system, &tokens(2, 60));
    let b = cat(&system, &tokens(3, 5));
    let mut e = engine_with("gemma3", 4, true, None);
    let id_a = e.add(req(a, 3)).expect("add a");
    run_all(&mut e, &[id_a]);
    e.remove(id_a).expect("remove a");
    let id_b = e.add(req(b.clone(), 4)).expect("add b");
    assert_eq!(e.sequence(id_b).expect("b").reused_tokens(), 0);
    let got = run_all(&mut e, &[id_b]).remove(0);
    assert_eq!(got, reference("gemma3", 4, &b, 4));
}

/// Two live sequences share a prefix at once; both are exact, and the blocks are held once.
fn live_sharing(arch: &'static str, window: usize) {
    let system = tokens(6, 50);
    let a = cat(&system, &tokens(7, 3));
    let b = cat(&system, &tokens(8, 20));
    let mut e = engine_with(arch, window, true, None);
    let id_a = e.add(req(a.clone(), 8)).expect("add a");
    // Prefill a (53 tokens in chunks of 24) and decode a little: a is live when b arrives.
    let mut a_logits = Vec::new();
    for _ in 0..4 {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, .. } = ev {
                assert_eq!(seq, id_a);
                let l = e.sequence(id_a).expect("a").last_logits();
                a_logits.push(l.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());
            }
        }
    }
    assert!(e.sequence(id_a).expect("a").is_active());
    let used_a = e.kv_stats().used_blocks;
    let id_b = e.add(req(b.clone(), 6)).expect("add b");
    assert_eq!(e.sequence(id_b).expect("b").reused_tokens(), 48);
    // b took only the blocks past the shared three: (70 + 6).div_ceil(16) - 3.
    assert_eq!(e.kv_stats().used_blocks, used_a + 2);
    let rest = run_all(&mut e, &[id_a, id_b]);
    a_logits.extend(rest[0].iter().cloned());
    assert_eq!(
        a_logits,
        reference(arch, window, &a, 8),
        "{arch}: source changed"
    );
    assert_eq!(
        rest[1],
        reference(arch, window, &b, 6),
        "{arch}: sharer changed"
    );
    e.remove(id_a).expect("remove a");
    e.remove(id_b).expect("remove b");
    e.clear_prefix_cache();
    let s = e.kv_stats();
    assert_eq!((s.used_blocks, s.cached_blocks), (0, 0), "{s:?}");
    assert_eq!(s.free_blocks, s.total_blocks);
}

#[test]
fn llama_live_sequences_share_a_prefix() {
    live_sharing("llama", 4);
}

#[test]
fn gemma3_live_sequences_share_a_prefix() {
    live_sharing("gemma3", 64);
}

/// A sequence cut back into a block another sequence shares writes its new tokens elsewhere:
/// both stay exact.
fn continue_into_shared_block(arch: &'static str, window: usize) {
    let a = tokens(9, 40);
    let mut e = engine_with(arch, window, true, None);
    let id_a = e.add(req(a.clone(), 3)).expect("add a");
    run_all(&mut e, &[id_a]);
    let b = cat(&a, &tokens(10, 5));
    let id_b = e.add(req(b.clone(), 5)).expect("add b");
    assert_eq!(e.sequence(id_b).expect("b").reused_tokens(), 32);
    // a's next turn keeps 20 of its tokens: position 20 lies in the block b shares, so a
    // restarts at that block's start.
    let a2 = cat(&a[..20], &tokens(11, 9));
    let reused = e
        .continue_with(id_a, a2.clone(), SamplerConfig::greedy(), 4)
        .expect("continue");
    assert_eq!(reused, 16);
    let got = run_all(&mut e, &[id_a, id_b]);
    assert_eq!(got[0], reference(arch, window, &a2, 4), "{arch}: continued");
    assert_eq!(got[1], reference(arch, window, &b, 5), "{arch}: sharer");
}

#[test]
fn llama_continue_into_a_shared_block() {
    continue_into_shared_block("llama", 4);
}

#[test]
fn gemma3_continue_into_a_shared_block() {
    continue_into_shared_block("gemma3", 48);
}

#[test]
fn budget_admits_waits_and_evicts() {
    let block_bytes = engine_with("llama", 4, true, None).kv_stats().block_bytes;
    let mut e = engine_with("llama", 4, true, Some(10 * block_bytes));
    let s = e.kv_stats();
    assert_eq!(
        (s.total_blocks, s.free_blocks, s.block_bytes),
        (10, 10, block_bytes)
    );
    assert!(e.fits_ever(60, 100));
    assert!(!e.fits_ever(150, 100), "161+ positions need 11 blocks");
    assert!(!e.fits_ever(0, 1));
    assert!(!e.fits_ever(CTX + 1, 1));

    // a reaches 60 + 20 = 80 positions: 5 blocks, taken at once.
    let id_a = e.add(req(tokens(12, 60), 20)).expect("add a");
    assert_eq!(e.kv_stats().used_blocks, 5);
    // b would reach 120 positions: 8 blocks, 5 free.
    let before = e.kv_stats();
    match e.add(req(tokens(13, 60), 60)) {
        Err(Error::NoKvSpace { needed, free }) => assert_eq!((needed, free), (8, 5)),
        other => panic!("expected NoKvSpace, got {other:?}"),
    }
    assert_eq!(e.kv_stats(), before, "a refused add changes nothing");

    // a stops early at a stop token: its unused blocks go back when it finishes.
    let stop = {
        let mut probe = engine_with("llama", 4, false, None);
        let id = probe.add(req(tokens(12, 60), 3)).expect("probe");
        run_all(&mut probe, &[id]);
        probe.sequence(id).expect("probe").generated()[2]
    };
    e.remove(id_a).expect("remove a");
    e.clear_prefix_cache();
    let id_a = e
        .add(Request {
            stop_tokens: vec![stop],
            ..req(tokens(12, 60), 20)
        })
        .expect("add a again");
    run_all(&mut e, &[id_a]);
    let a_len = e.sequence(id_a).expect("a").tokens().len();
    assert!(a_len < 80, "a stopped at its stop token");
    let s = e.kv_stats();
    assert_eq!(s.used_blocks, (a_len - 1).div_ceil(16), "{s:?}");
    assert_adds_up(&s);

    // Removed, a's whole blocks are retained: cached, not used.
    e.remove(id_a).expect("remove a");
    let s = e.kv_stats();
    assert_eq!(
        (s.used_blocks, s.cached_blocks, s.cached_prefixes),
        (0, (a_len - 1) / 16, 1),
        "{s:?}"
    );
    assert_adds_up(&s);

    // b needs 8, 10 - 3 are free: the retained prefix is evicted to make room.
    let id_b = e
        .add(req(tokens(13, 60), 60))
        .expect("add b after eviction");
    let s = e.kv_stats();
    assert_eq!((s.used_blocks, s.cached_prefixes), (8, 0), "{s:?}");
    assert_adds_up(&s);
    // A third request waits until b is removed.
    assert!(matches!(
        e.add(req(tokens(14, 40), 30)),
        Err(Error::NoKvSpace { needed: 5, free: 2 })
    ));
    let got = run_all(&mut e, &[id_b]).remove(0);
    assert_eq!(got, reference("llama", 4, &tokens(13, 60), 60));
    e.remove(id_b).expect("remove b");
    let id_c = e
        .add(req(tokens(14, 40), 30))
        .expect("add c after b is removed");
    run_all(&mut e, &[id_c]);
    e.remove(id_c).expect("remove c");
    e.clear_prefix_cache();
    let s = e.kv_stats();
    assert_eq!((s.used_blocks, s.cached_blocks, s.free_blocks), (0, 0, 10));
}

#[test]
fn gemma3_budget_waits_for_room() {
    // Both groups scale with the budget; whichever is short refuses the request.
    let full = engine_with("gemma3", 4, true, None).kv_capacity_bytes();
    let mut e = engine_with("gemma3", 4, true, Some(full / 3));
    let total = e.kv_stats().total_blocks;
    assert!(total > 0);
    let big = total * 16 - 40; // all but a few blocks of the full-attention group
    assert!(e.fits_ever(30, big - 30));
    let id_a = e.add(req(tokens(15, 30), big - 30)).expect("add a");
    assert!(matches!(
        e.add(req(tokens(16, 30), 30)),
        Err(Error::NoKvSpace { .. })
    ));
    e.cancel(id_a).expect("cancel a");
    // The cancelled sequence's blocks are free or evictable at once.
    let id_b = e.add(req(tokens(16, 30), 30)).expect("add b");
    let got = run_all(&mut e, &[id_b]).remove(0);
    assert_eq!(got, reference("gemma3", 4, &tokens(16, 30), 30));
    e.remove(id_b).expect("remove b");
    e.clear_prefix_cache();
    let s = e.kv_stats();
    assert_eq!(
        (s.used_blocks, s.cached_blocks, s.free_blocks),
        (0, 0, total)
    );
}

#[test]
fn prefix_cache_off_reuses_nothing() {
    let mut e = engine_with("llama", 4, false, None);
    let p = tokens(17, 40);
    let id = e.add(req(p.clone(), 2)).expect("add");
    run_all(&mut e, &[id]);
    e.remove(id).expect("remove");
    assert_eq!(e.kv_stats().cached_blocks, 0);
    let id = e.add(req(p, 2)).expect("add again");
    assert_eq!(e.sequence(id).expect("seq").reused_tokens(), 0);
}

/// A live sequence in [`churn`]: id, prompt, max_tokens, logits so far.
type Tracked = (SeqId, Vec<u32>, usize, Vec<Vec<u32>>);

/// Random adds, steps, removes and cancels over prompts that share system prompts and earlier
/// turns, in a small pool: every finished sequence matches a fresh engine bit for bit, the
/// block counts always add up, and every block comes back at the end.
fn churn(arch: &'static str, window: usize, budget_thirds: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let probe = engine_with(arch, window, true, None);
    let budget = probe.kv_capacity_bytes() / 3 * budget_thirds;
    let mut e = engine_with(arch, window, true, Some(budget));
    let systems: Vec<Vec<u32>> = (0..3)
        .map(|s| tokens(20 + s, 20 + 15 * s as usize))
        .collect();
    let mut history: Vec<Vec<u32>> = Vec::new();
    let mut live: Vec<Tracked> = Vec::new();
    let (mut checked, mut reused, mut refused) = (0, 0, 0);
    for _ in 0..300 {
        match rng.gen_range(0..10) {
            0..=2 => {
                let base = if !history.is_empty() && rng.gen_bool(0.4) {
                    history[rng.gen_range(0..history.len())].clone()
                } else {
                    systems[rng.gen_range(0..systems.len())].clone()
                };
                let suffix = tokens(rng.gen_range(0..1000), rng.gen_range(1..30));
                let prompt = cat(&base, &suffix);
                if prompt.len() > 150 {
                    continue;
                }
                let max_tokens = rng.gen_range(1..12);
                match e.add(req(prompt.clone(), max_tokens)) {
                    Ok(id) => {
                        let r = e.sequence(id).expect("seq").reused_tokens();
                        assert_eq!(r % 16, 0);
                        reused += r;
                        live.push((id, prompt, max_tokens, Vec::new()));
                    }
                    Err(Error::NoKvSpace { .. }) | Err(Error::Busy(_)) => refused += 1,
                    Err(err) => panic!("add: {err}"),
                }
            }
            3..=7 => {
                for ev in e.step().expect("step") {
                    if let Event::Token { seq, .. } = ev {
                        let l = e.sequence(seq).expect("seq").last_logits();
                        let entry = live.iter_mut().find(|s| s.0 == seq).expect("live");
                        entry.3.push(l.iter().map(|x| x.to_bits()).collect());
                    }
                }
            }
            op if !live.is_empty() => {
                // Mostly remove a finished sequence; sometimes cancel one mid-way.
                let done = live
                    .iter()
                    .position(|s| !e.sequence(s.0).expect("seq").is_active());
                let pick = match (op, done) {
                    (8, Some(i)) => i,
                    (9, _) if rng.gen_bool(0.3) => rng.gen_range(0..live.len()),
                    _ => continue,
                };
                let (id, prompt, max_tokens, logits) = live.swap_remove(pick);
                let finished = !e.sequence(id).expect("seq").is_active();
                let seq = e.remove(id).expect("remove");
                if finished {
                    assert_eq!(
                        logits,
                        reference(arch, window, &prompt, max_tokens),
                        "{arch}: sequence {id} (reused {})",
                        seq.reused_tokens()
                    );
                    checked += 1;
                    history.push(seq.tokens().to_vec());
                }
            }
            _ => {}
        }
        assert_adds_up(&e.kv_stats());
    }
    assert!(checked >= 10, "{arch}: only {checked} sequences finished");
    assert!(reused > 0, "{arch}: no prefix was reused");
    assert!(refused > 0, "{arch}: the budget never refused a request");
    for (id, ..) in live {
        e.remove(id).expect("remove");
    }
    e.clear_prefix_cache();
    let s = e.kv_stats();
    assert_eq!((s.used_blocks, s.cached_blocks), (0, 0), "{arch}: {s:?}");
    assert_eq!(s.free_blocks, s.total_blocks);
}

#[test]
fn llama_churn_stays_exact_and_returns_every_block() {
    churn("llama", 4, 1);
}

#[test]
fn gemma3_churn_stays_exact_and_returns_every_block() {
    // Two thirds of the default pool: one third leaves room for a single sequence's window.
    churn("gemma3", 20, 2);
}
