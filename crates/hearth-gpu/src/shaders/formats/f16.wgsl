// F16 weights, F16 activations (as the CPU engine pairs them): the product of two halves is
// exact in f32, so only the sums round.
const UNIT: u32 = 1u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    return fma(wf16(wr + 2u * u), xf16(xr + 2u * u), acc);
}
