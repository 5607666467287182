    // Without subgroups: a fixed halving tree in workgroup memory.
    for (var i = 0u; i < RT; i++) {
        red[i * WG + me] = acc[i];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (me < s) {
            for (var i = 0u; i < RT; i++) {
                red[i * WG + me] += red[i * WG + me + s];
            }
        }
        workgroupBarrier();
    }
    var total = 0.0;
    if (lid < RT) {
        total = red[lid * WG];
    }
