    // Without subgroups: a fixed halving tree in workgroup memory.
    for (var i = 0u; i < RT; i++) {
        red[i * WG + lid] = acc[i];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var i = 0u; i < RT; i++) {
                red[i * WG + lid] += red[i * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    var total = 0.0;
    if (lid < RT) {
        total = red[lid * WG];
    }
