    // With subgroups: the same halving tree as without them, over the same slots `me`, so
    // the bits do not depend on the subgroup size the driver picks for this pipeline. Levels
    // wider than a subgroup go through workgroup memory; the rest are xor shuffles inside
    // subgroup 0, where lane i adds lane i ^ s: the tree's own pair, and IEEE addition is
    // commutative.
    for (var i = 0u; i < RT; i++) {
        red[i * WG + me] = acc[i];
    }
    workgroupBarrier();
    var s = WG / 2u;
    for (; s >= sg_w; s >>= 1u) {
        if (me < s) {
            for (var i = 0u; i < RT; i++) {
                red[i * WG + me] += red[i * WG + me + s];
            }
        }
        workgroupBarrier();
    }
    if (me < sg_w) {
        for (var i = 0u; i < RT; i++) {
            var v = red[i * WG + me];
            for (var k = s; k > 0u; k >>= 1u) {
                v += subgroupShuffleXor(v, k);
            }
            if (me == 0u) {
                red[i * WG] = v;
            }
        }
    }
    workgroupBarrier();
    var total = 0.0;
    if (lid < RT) {
        total = red[lid * WG];
    }
