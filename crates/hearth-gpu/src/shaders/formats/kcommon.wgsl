// Q8_K activations: d: f32, 256 x i8 codes at 4, 16 x i16 sums of 16 codes at 260.
// A unit is 32 elements of one 256-element super-block.

// Scale and min of 32-element group j of a Q4_K / Q5_K super-block (12 bytes at `so`).
fn scale_min_k4(so: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(wb(so + j) & 63u, wb(so + j + 4u) & 63u);
    }
    let sc = (wb(so + j + 4u) & 15u) | ((wb(so + j - 4u) >> 6u) << 4u);
    let m = (wb(so + j + 4u) >> 4u) | ((wb(so + j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

fn q8k_group_sum(xo: u32, j: u32) -> i32 {
    return xi16(xo + 260u + 4u * j) + xi16(xo + 262u + 4u * j);
}
