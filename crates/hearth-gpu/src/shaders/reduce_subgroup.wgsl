    // With subgroups: each subgroup adds its lanes, then the subgroups' sums are added in
    // subgroup order, in workgroup memory.
    for (var i = 0u; i < RT; i++) {
        let v = subgroupAdd(acc[i]);
        if (sg_lane == 0u) {
            red[i * WG + sg_id] = v;
        }
    }
    workgroupBarrier();
    var total = 0.0;
    if (lid < RT) {
        for (var k = 0u; k < sg_count; k++) {
            total += red[lid * WG + k];
        }
    }
