//! Every GPU kernel against the CPU scalar reference, on the machine's GPU or, in CI, Mesa's
//! lavapipe (`--device gpu` takes a CPU-type adapter when it is the only one). Each check runs
//! twice where the adapter has subgroups: once on the subgroup path and once on the path every
//! adapter has. The bounds are stated in `hearth_gpu::selftest`.

use hearth_gguf::GgmlType;
use hearth_gpu::selftest::{self, Check};
use hearth_gpu::{DeviceChoice, Gpu, GpuOptions, RopeLayout, MATMUL_TYPES};

fn open(subgroups: bool) -> Gpu {
    Gpu::open(DeviceChoice::Gpu, GpuOptions { subgroups })
        .expect("a Vulkan adapter (scripts/gpu-drivers installs lavapipe)")
        .expect("--device gpu always opens an adapter")
}

/// The device without subgroups, and with them where the adapter has them.
fn devices() -> Vec<Gpu> {
    let plain = open(false);
    assert!(!plain.uses_subgroups());
    let with = open(true);
    if with.uses_subgroups() {
        vec![plain, with]
    } else {
        vec![plain]
    }
}

fn assert_all(checks: Vec<(String, Check)>) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, c)| !c.passed)
        .map(|(path, c)| format!("{} [{path}]: {}", c.name, c.detail))
        .collect();
    for (path, c) in &checks {
        eprintln!("{} [{path}]: {}", c.name, c.detail);
    }
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

fn path(gpu: &Gpu) -> String {
    if gpu.uses_subgroups() {
        "subgroups".into()
    } else {
        "no subgroups".into()
    }
}

fn over_types(seeds: &[u64], f: fn(&Gpu, GgmlType, u64) -> hearth_gpu::Result<Check>) {
    let mut out = Vec::new();
    for gpu in devices() {
        for ty in MATMUL_TYPES {
            for &seed in seeds {
                out.push((path(&gpu), f(&gpu, ty, seed).expect("kernel ran")));
            }
        }
    }
    assert_all(out);
}

#[test]
fn matrix_kernels_sum_exactly_like_the_cpu() {
    over_types(&[1, 2], selftest::matmul_exact);
}

#[test]
fn matrix_kernels_stay_within_the_bound() {
    over_types(&[1, 2], selftest::matmul_bound);
}

#[test]
fn matrix_kernels_give_the_same_bits_for_every_tile_batch_and_piece() {
    over_types(&[1], selftest::matmul_tiles);
}

#[test]
fn per_token_operations_match_the_cpu() {
    let mut out = Vec::new();
    for gpu in devices() {
        for seed in [1, 2] {
            out.push((path(&gpu), selftest::rms_norm_check(&gpu, seed).unwrap()));
            out.push((
                path(&gpu),
                selftest::rope_check(&gpu, RopeLayout::Interleaved, seed).unwrap(),
            ));
            out.push((
                path(&gpu),
                selftest::rope_check(&gpu, RopeLayout::Halves, seed).unwrap(),
            ));
            out.push((path(&gpu), selftest::swiglu_check(&gpu, seed).unwrap()));
            out.push((path(&gpu), selftest::gelu_check(&gpu, seed).unwrap()));
            out.push((path(&gpu), selftest::softmax_check(&gpu, seed).unwrap()));
        }
    }
    assert_all(out);
}

/// Each check fails when its kernel is broken: one small change per kernel (a code offset, a
/// nibble, a scale, a sign), applied to the shader source, must make the check report a
/// failure. A check that cannot fail proves nothing.
#[test]
fn every_check_fails_on_a_broken_kernel() {
    use GgmlType::*;
    type Run = Box<dyn Fn(&Gpu) -> Check>;
    let exact =
        |ty: GgmlType| -> Run { Box::new(move |g| selftest::matmul_exact(g, ty, 1).unwrap()) };
    let bound =
        |ty: GgmlType| -> Run { Box::new(move |g| selftest::matmul_bound(g, ty, 1).unwrap()) };
    let tiles =
        |ty: GgmlType| -> Run { Box::new(move |g| selftest::matmul_tiles(g, ty, 1).unwrap()) };
    let cases: Vec<(&str, &str, &str, Run)> = vec![
        (
            "f32 product",
            "fma(wf32(wr + 4u * u), xf32",
            "fma(1.0001 * wf32(wr + 4u * u), xf32",
            exact(F32),
        ),
        (
            "f16 element",
            "wf16(wr + 2u * u)",
            "wf16(wr + 2u * (u ^ 1u))",
            exact(F16),
        ),
        (
            "bf16 element",
            "w16(wr + 2u * u) << 16u",
            "w16(wr + 2u * (u ^ 1u)) << 16u",
            bound(BF16),
        ),
        (
            "q4_0 offset",
            "(i32(b >> 4u) - 8i)",
            "(i32(b >> 4u) - 7i)",
            exact(Q4_0),
        ),
        (
            "q4_1 min",
            "fma(wf16(wo + 2u), xf16(xo + 2u), a)",
            "fma(wf16(wo), xf16(xo + 2u), a)",
            bound(Q4_1),
        ),
        (
            "q5_0 fifth bit",
            "((qh >> (j + 16u)) & 1u)",
            "((qh >> j) & 1u)",
            exact(Q5_0),
        ),
        (
            "q8_0 code",
            "wi8(wo + 2u + j) * xi8",
            "wi8(wo + 3u + j) * xi8",
            bound(Q8_0),
        ),
        ("q4_k scale", "i32(sm.x) * s", "i32(sm.y) * s", exact(Q4_K)),
        (
            "K-quant scale of groups 4 to 7",
            "let sc = (wb(so + j + 4u) & 15u)",
            "let sc = (wb(so + j + 4u) & 7u)",
            exact(Q4_K),
        ),
        (
            "q5_0 low fifth bit",
            "(((qh >> j) & 1u) << 4u)",
            "(((qh >> (j ^ 1u)) & 1u) << 4u)",
            exact(Q5_0),
        ),
        (
            "q5_k fifth bit",
            "(((wb(wo + 16u + l) >> j) & 1u) << 4u)",
            "(((wb(wo + 16u + l) >> (j ^ 1u)) & 1u) << 4u)",
            bound(Q5_K),
        ),
        (
            "q6_k code offset",
            "(i32(q1) - 32i)",
            "(i32(q1) - 31i)",
            exact(Q6_K),
        ),
        (
            "q6_k scale",
            "wi8(sc + 1u) * s1",
            "wi8(sc) * s1",
            bound(Q6_K),
        ),
        (
            "K-quant min sums",
            "xi16(xo + 262u + 4u * j)",
            "xi16(xo + 264u + 4u * j)",
            exact(Q4_K),
        ),
        (
            "tree reduction",
            "red[i * WG + me] += red[i * WG + me + s];",
            "red[i * WG + me] = red[i * WG + me] + red[i * WG + me + s] * 1.0000001;",
            exact(Q8_0),
        ),
        (
            "tile output",
            "let tok = tok0 + lid % T;",
            "let tok = tok0 + (lid + 1u) % T;",
            tiles(Q4_K),
        ),
        (
            "rms norm",
            "/ f32(p.n) + p.eps",
            "/ f32(p.n - 1u) + p.eps",
            Box::new(|g| selftest::rms_norm_check(g, 1).unwrap()),
        ),
        (
            "rope interleaved pair",
            "var b = a + 1u;",
            "var b = a + 3u;",
            Box::new(|g| selftest::rope_check(g, RopeLayout::Interleaved, 1).unwrap()),
        ),
        (
            "rope halves pair",
            "b = base + i + p.half;",
            "b = base + i + p.half - 1u;",
            Box::new(|g| selftest::rope_check(g, RopeLayout::Halves, 1).unwrap()),
        ),
        (
            "rope sign",
            "x0 * c - x1 * s",
            "x0 * c + x1 * s",
            Box::new(|g| selftest::rope_check(g, RopeLayout::Halves, 1).unwrap()),
        ),
        (
            "swiglu",
            "g / (1.0 + exp(-g))",
            "g / (1.0 + exp(-1.001 * g))",
            Box::new(|g| selftest::swiglu_check(g, 1).unwrap()),
        ),
        (
            "gelu",
            "0.044715",
            "0.046",
            Box::new(|g| selftest::gelu_check(g, 1).unwrap()),
        ),
        (
            "softmax",
            "let inv = 1.0 / red[0];",
            "let inv = 1.0001 / red[0];",
            Box::new(|g| selftest::softmax_check(g, 1).unwrap()),
        ),
    ];
    // The subgroup reduction, on the device that runs it.
    let subgroup_cases: Vec<(&str, &str, &str, Run)> = vec![
        (
            "subgroup shuffle sum",
            "v += subgroupShuffleXor(v, k);",
            "v += subgroupShuffleXor(v, k) * 1.0000001;",
            exact(Q8_0),
        ),
        (
            "subgroup shuffle partner",
            "v += subgroupShuffleXor(v, k);",
            "v += subgroupShuffleXor(v, k >> 1u);",
            exact(Q4_K),
        ),
    ];
    let sources: String = hearth_gpu::all_sources()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let mut survived = Vec::new();
    let plain = open(false);
    let with = open(true);
    let mut runs: Vec<(&Gpu, _)> = cases.iter().map(|c| (&plain, c)).collect();
    if with.uses_subgroups() {
        runs.extend(subgroup_cases.iter().map(|c| (&with, c)));
    } else {
        eprintln!("this adapter has no subgroups: the subgroup mutations are not run");
    }
    for (gpu, (what, from, to, run)) in runs {
        assert!(
            sources.contains(from),
            "{what}: {from:?} is not in any shader"
        );
        gpu.set_source_patch(None);
        assert!(run(gpu).passed, "{what}: the unbroken kernel must pass");
        gpu.set_source_patch(Some((from, to)));
        let c = run(gpu);
        eprintln!("{what} broken: {} -> {}", c.name, c.detail);
        if c.passed {
            survived.push(*what);
        }
        gpu.set_source_patch(None);
    }
    assert!(
        survived.is_empty(),
        "checks that passed a broken kernel: {survived:?}"
    );
}

#[test]
fn wrong_shapes_are_refused_in_words() {
    let gpu = open(false);
    let w = vec![0u8; 4 * 34];
    assert!(gpu.upload_matrix(GgmlType::Q8_0, &w, 4, 30).is_err());
    let m = gpu.upload_matrix(GgmlType::Q8_0, &w, 4, 32).unwrap();
    let err = gpu
        .matmul(&m, &[0u8; 33], 1, (1, 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("33 activation bytes"), "{err}");
    let err = gpu
        .upload_matrix(GgmlType::Q2_K, &[0u8; 84], 1, 256)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no Q2_K kernel"), "{err}");
}

/// More rows or tokens than one dispatch dimension takes (65535 workgroups) are folded or
/// split on the host, not handed to wgpu (whose validation error would end the process), and
/// each row's result is the one it gets alone.
#[test]
fn work_past_the_dispatch_limit_is_folded_or_split() {
    let gpu = open(false);
    let rows = 70_000usize;
    let x: Vec<f32> = (0..rows * 2).map(|i| (i % 7) as f32 - 3.0).collect();
    let last = &x[(rows - 1) * 2..];
    let norm = gpu
        .rms_norm(&x, &[1.5, 0.5], 1e-5)
        .expect("rms norm of 70000 rows");
    let alone = gpu.rms_norm(last, &[1.5, 0.5], 1e-5).unwrap();
    assert_eq!(norm[(rows - 1) * 2..], alone[..]);
    let soft = gpu.softmax(&x, 2).expect("softmax of 70000 rows");
    assert_eq!(soft[(rows - 1) * 2..], gpu.softmax(last, 2).unwrap()[..]);

    let tokens = 65_537usize;
    let w: Vec<u8> = (0..32)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    let m = gpu.upload_matrix(GgmlType::F32, &w, 1, 32).unwrap();
    let xs: Vec<u8> = (0..tokens * 32)
        .flat_map(|i| ((i % 5) as f32).to_le_bytes())
        .collect();
    let y = gpu
        .matmul(&m, &xs, tokens, (1, 1))
        .expect("65537 tokens in one call");
    let one = gpu
        .matmul(&m, &xs[(tokens - 1) * 128..], 1, (1, 1))
        .unwrap();
    assert_eq!(y.len(), tokens);
    assert_eq!(y[tokens - 1].to_bits(), one[0].to_bits());
}

/// The subgroup path sums in the same tree as the path every adapter has, whatever subgroup
/// size the driver picks for each pipeline, so matrix-vector and matrix-matrix (and the two
/// paths) give the same bits.
#[test]
fn subgroup_sums_give_the_same_bits_as_the_shared_tree() {
    let plain = open(false);
    let with = open(true);
    if !with.uses_subgroups() {
        eprintln!("this adapter has no subgroups: nothing to compare");
        return;
    }
    let mut out = Vec::new();
    for ty in MATMUL_TYPES {
        out.push((
            "subgroups vs shared".to_string(),
            selftest::matmul_paths_agree(&plain, &with, ty, 3).expect("kernel ran"),
        ));
    }
    assert_all(out);
}

/// Past one binding: a row that does not fit is refused in words, inputs of the per-token ops
/// too, and a matrix product whose activations or outputs do not fit is split by tokens with
/// the same bits as one token at a time.
#[test]
fn buffers_past_one_binding_are_split_or_refused_in_words() {
    let mut gpu = open(false);
    gpu.limit_bindings(4096);
    let err = gpu
        .upload_matrix(GgmlType::Q8_0, &vec![0u8; 34 * 128], 1, 4096)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than this GPU binds at once"), "{err}");
    let err = gpu
        .rms_norm(&vec![1.0; 2048], &[1.0; 2], 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rms norm input is 8192 bytes"), "{err}");
    let err = gpu.softmax(&vec![1.0; 2048], 2).unwrap_err().to_string();
    assert!(err.contains("softmax input is 8192 bytes"), "{err}");

    // 300 rows of 32 F32 columns: 1200 output bytes a token, so 3 tokens a submission, and
    // 128 activation bytes a token.
    let (rows, cols, tokens) = (300usize, 32usize, 10usize);
    let w: Vec<u8> = (0..rows * cols)
        .flat_map(|i| ((i % 13) as f32 * 0.5 - 3.0).to_le_bytes())
        .collect();
    let x: Vec<u8> = (0..tokens * cols)
        .flat_map(|i| ((i % 7) as f32 - 2.5).to_le_bytes())
        .collect();
    let m = gpu.upload_matrix(GgmlType::F32, &w, rows, cols).unwrap();
    assert_eq!(m.pieces(), rows.div_ceil(4096 / (cols * 4)));
    let y = gpu.matmul(&m, &x, tokens, (4, 8)).unwrap();
    for t in 0..tokens {
        let one = gpu
            .matmul(&m, &x[t * cols * 4..(t + 1) * cols * 4], 1, (1, 1))
            .unwrap();
        let same = y[t * rows..(t + 1) * rows]
            .iter()
            .zip(&one)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "token {t} differs from its product alone");
    }
    let err = gpu
        .matmul(
            &gpu.upload_matrix(GgmlType::F32, &vec![0u8; 1100 * 4], 1100, 1)
                .unwrap(),
            &[0u8; 4],
            1,
            (1, 1),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output bytes are more than this GPU binds"),
        "{err}"
    );
}
