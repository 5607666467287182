//! The WGSL sources, assembled from the files in `shaders/`: one matrix kernel template with a
//! format's `unit_dot` and a reduction spliced in, and the per-token operations as they are.

use hearth_gguf::GgmlType;

const MATMUL: &str = include_str!("shaders/matmul.wgsl");
const REDUCE_SHARED: &str = include_str!("shaders/reduce_shared.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("shaders/reduce_subgroup.wgsl");
const KCOMMON: &str = include_str!("shaders/formats/kcommon.wgsl");
pub(crate) const RMS_NORM: &str = include_str!("shaders/rms_norm.wgsl");
pub(crate) const ROPE: &str = include_str!("shaders/rope.wgsl");
pub(crate) const GLU: &str = include_str!("shaders/glu.wgsl");
pub(crate) const SOFTMAX: &str = include_str!("shaders/softmax.wgsl");

/// Weight types with a matrix kernel, in the order the self-test reports them.
pub const MATMUL_TYPES: [GgmlType; 10] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn format_source(ty: GgmlType) -> Option<String> {
    use GgmlType::*;
    Some(match ty {
        F32 => include_str!("shaders/formats/f32.wgsl").to_string(),
        F16 => include_str!("shaders/formats/f16.wgsl").to_string(),
        BF16 => include_str!("shaders/formats/bf16.wgsl").to_string(),
        Q4_0 => include_str!("shaders/formats/q4_0.wgsl").to_string(),
        Q4_1 => include_str!("shaders/formats/q4_1.wgsl").to_string(),
        Q5_0 => include_str!("shaders/formats/q5_0.wgsl").to_string(),
        Q8_0 => include_str!("shaders/formats/q8_0.wgsl").to_string(),
        Q4_K => format!("{KCOMMON}\n{}", include_str!("shaders/formats/q4_k.wgsl")),
        Q5_K => format!("{KCOMMON}\n{}", include_str!("shaders/formats/q5_k.wgsl")),
        Q6_K => format!("{KCOMMON}\n{}", include_str!("shaders/formats/q6_k.wgsl")),
        _ => return None,
    })
}

/// One matrix kernel variant: the weight type, the tile (rows x tokens per workgroup) and
/// whether the workgroup's sums use subgroup operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulVariant {
    pub ty: GgmlType,
    pub rows: u32,
    pub tokens: u32,
    pub subgroups: bool,
}

/// Threads per matrix workgroup; `rows * tokens` of a tile may not exceed it (one thread
/// writes each output).
pub const MATMUL_WG: u32 = 32;

/// The WGSL of a matrix kernel variant, or `None` for a type without a kernel.
pub fn matmul_source(v: MatmulVariant) -> Option<String> {
    assert!(v.rows * v.tokens <= MATMUL_WG && v.rows * v.tokens > 0);
    let format = format_source(v.ty)?;
    let rt = v.rows * v.tokens;
    // naga takes subgroup operations without WGSL's `enable subgroups;` (which it refuses);
    // wgpu checks the device's SUBGROUP feature instead.
    let (reduce, args, me) = if v.subgroups {
        (
            REDUCE_SUBGROUP,
            "@builtin(subgroup_invocation_id) sg_lane: u32,\n    \
             @builtin(subgroup_id) sg_id: u32,\n    \
             @builtin(num_subgroups) sg_count: u32,\n    \
             @builtin(subgroup_size) sg_size: u32,",
            // Subgroup order is a permutation of the workgroup only when the subgroups tile
            // it (one subgroup of at least WG lanes, or full subgroups of fewer); otherwise
            // every level goes through workgroup memory over the local index.
            "    let tiled = (sg_size >= WG && sg_count == 1u) || sg_size * sg_count == WG;\n    \
             let me = select(lid, sg_id * sg_size + sg_lane, tiled);\n    \
             let sg_w = select(1u, min(sg_size, WG), tiled);",
        )
    } else {
        (REDUCE_SHARED, "", "    let me = lid;")
    };
    Some(
        MATMUL
            .replace("{R}", &v.rows.to_string())
            .replace("{T}", &v.tokens.to_string())
            .replace("{RT}", &rt.to_string())
            .replace("{RED}", &(rt * MATMUL_WG).to_string())
            .replace("{FORMAT}", &format)
            .replace("{SUBGROUP_ARGS}", args)
            .replace("{ME}", me)
            .replace("{REDUCE}", reduce),
    )
}

/// The tiles the engine uses: matrix-vector for one token, 4 rows x 8 tokens for more.
pub const TILES: [(u32, u32); 2] = [(1, 1), (4, 8)];

/// Every shader the crate can build, with a name, for the translation test and the
/// self-test.
pub fn all_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ty in MATMUL_TYPES {
        for (rows, tokens) in TILES {
            for subgroups in [false, true] {
                let v = MatmulVariant {
                    ty,
                    rows,
                    tokens,
                    subgroups,
                };
                let name = format!(
                    "matmul {} {rows}x{tokens}{}",
                    ty.name(),
                    if subgroups { " subgroups" } else { "" }
                );
                out.push((
                    name,
                    matmul_source(v).expect("every listed type has a kernel"),
                ));
            }
        }
    }
    for (name, src) in [
        ("rms_norm", RMS_NORM),
        ("rope", ROPE),
        ("glu", GLU),
        ("softmax", SOFTMAX),
    ] {
        out.push((name.to_string(), src.to_string()));
    }
    out
}
