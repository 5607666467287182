//! Per-token vector operations of the forward pass (norms, RoPE, activations, softmax).
//!
//! These run once per token per layer on vectors of a few thousand floats: they are simple loops
//! the compiler vectorises. Each works on one token's row, so results never depend on batching.
//! Their sines, cosines, powers and `tanh` are Hearth's own (`hearth_kernels::math`), not the C
//! library's, so a model gives the same bits on every platform.

use std::sync::OnceLock;

use half::f16;
use hearth_kernels::math;

use crate::config::RopeStyle;

/// `out = x / rms(x) * w`. Squares are summed in f64, as llama.cpp does, so the scale agrees
/// with it to the last bit more often than an f32 sum would.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// In-place RMS norm of `x` with weights `w`.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// Rotary position embedding for one configuration (style, rotated width, base, scaling).
///
/// Angles are built as ggml's CPU `rope` builds them: `θ_i = pos · base^(−2i/d)` by repeated
/// multiplication in f32, divided by the frequency factor of pair `i` where the file has them
/// (Llama 3.1's `rope_freqs`, Phi-3's long and short factors), times the position scale
/// (linear scaling); under YaRN mixed with the unscaled angle by a ramp over the correction
/// dimensions. Cosines and sines are then multiplied by the attention factor.
#[derive(Clone, Debug)]
pub struct Rope {
    style: RopeStyle,
    rot_dim: usize,
    theta_scale: f32,
    freq_scale: f32,
    ext_factor: f32,
    /// The factor on cosines and sines, ggml's YaRN magnitude included.
    mscale: f32,
    /// YaRN's ramp: pairs below `corr[0]` keep their angle, pairs above `corr[1]` are
    /// interpolated.
    corr: [f32; 2],
    /// Per-pair frequency divisors (`rot_dim / 2` of them).
    factors: Option<Vec<f32>>,
}

/// Widest rotated head width supported (Gemma 3 uses 256).
pub const MAX_ROPE_DIM: usize = 512;

/// How one kind of layer scales RoPE ([`Rope::scaled`]).
#[derive(Clone, Debug)]
pub struct RopeScaling {
    /// 1 / the linear or YaRN factor.
    pub freq_scale: f32,
    /// YaRN's mix (0 without YaRN).
    pub ext_factor: f32,
    pub attn_factor: f32,
    /// The original training context and YaRN's beta range, for the correction dimensions.
    pub orig_ctx: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
    pub factors: Option<Vec<f32>>,
}

impl RopeScaling {
    /// Plain RoPE with positions times `freq_scale`.
    pub fn linear(freq_scale: f32) -> RopeScaling {
        RopeScaling {
            freq_scale,
            ext_factor: 0.0,
            attn_factor: 1.0,
            orig_ctx: 0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            factors: None,
        }
    }
}

fn ln_f32(x: f32) -> f32 {
    math::ln_f64(f64::from(x)) as f32
}

impl Rope {
    pub fn new(style: RopeStyle, rot_dim: usize, base: f32, scale: f32) -> Rope {
        Rope::scaled(style, rot_dim, base, RopeScaling::linear(scale))
    }

    pub fn scaled(style: RopeStyle, rot_dim: usize, base: f32, s: RopeScaling) -> Rope {
        let rot_dim = rot_dim.min(MAX_ROPE_DIM);
        // ggml_rope_yarn_corr_dims, in f32 as there.
        let corr_dim = |beta: f32| {
            let turns = s.orig_ctx as f32 / (beta * 2.0 * std::f32::consts::PI);
            rot_dim as f32 * ln_f32(turns) / (2.0 * ln_f32(base))
        };
        let corr = if s.ext_factor != 0.0 {
            [
                corr_dim(s.beta_fast).floor().max(0.0),
                corr_dim(s.beta_slow).ceil().min(rot_dim as f32 - 1.0),
            ]
        } else {
            [0.0, 0.0]
        };
        let mscale = if s.ext_factor != 0.0 {
            s.attn_factor * (1.0 + 0.1 * ln_f32(1.0 / s.freq_scale))
        } else {
            s.attn_factor
        };
        Rope {
            style,
            rot_dim,
            theta_scale: math::pow_f32(base, -2.0 / rot_dim as f32),
            freq_scale: s.freq_scale,
            ext_factor: s.ext_factor,
            mscale,
            corr,
            factors: s.factors.filter(|f| f.len() >= rot_dim / 2),
        }
    }

    /// Rotates every head of `x` (rows of `head_dim`) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.rot_dim / 2;
        let mut cos = [0f32; MAX_ROPE_DIM / 2];
        let mut sin = [0f32; MAX_ROPE_DIM / 2];
        // theta_i = pos * base^(-2i/d), built by repeated multiplication in f32 as ggml does.
        let mut theta = pos as f32;
        for i in 0..half {
            let extrap = match &self.factors {
                Some(f) => theta / f[i],
                None => theta,
            };
            let interp = self.freq_scale * extrap;
            let angle = if self.ext_factor != 0.0 {
                let y = (i as f32 - self.corr[0]) / (self.corr[1] - self.corr[0]).max(0.001);
                let mix = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
                interp * (1.0 - mix) + extrap * mix
            } else {
                interp
            };
            let (s, c) = math::sin_cos_f32(angle);
            (sin[i], cos[i]) = (s * self.mscale, c * self.mscale);
            theta *= self.theta_scale;
        }
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match self.style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let x0 = head[a];
                let x1 = head[b];
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// `gate = silu(gate) * up`, through the kernels' exponential (`hearth_kernels::swiglu`),
/// eight lanes at a time.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    hearth_kernels::swiglu(gate, up);
}

/// `gate = gelu_tanh(gate) * up`, with GELU looked up in an f16 table as llama.cpp's CPU backend
/// does (input and GELU output rounded to f16), so logits agree with it closely.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let y = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            table[f16::from_f32(x).to_bits() as usize]
        };
        *g = y * u;
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + math::tanh_f32(SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)))
}

fn gelu_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                f16::from_f32(gelu_tanh(x)).to_f32()
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit() {
        let x = [3.0f32, 4.0];
        let mut out = [0.0; 2];
        rms_norm(&x, &[1.0, 1.0], 0.0, &mut out);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn rope_position_zero_is_identity() {
        let r = Rope::new(RopeStyle::Halves, 4, 10000.0, 1.0);
        let mut x = [1.0, 2.0, 3.0, 4.0];
        r.apply(&mut x, 4, 0);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rope_preserves_norm() {
        for style in [RopeStyle::Halves, RopeStyle::Interleaved] {
            let r = Rope::new(style, 8, 10000.0, 1.0);
            let mut x = [1.0, -2.0, 3.0, 0.5, 0.25, 1.5, -1.0, 2.0];
            let n0: f32 = x.iter().map(|v| v * v).sum();
            r.apply(&mut x, 8, 37);
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
        }
    }

    #[test]
    fn gelu_table_close_to_exact() {
        let mut g = [0.5f32, -1.0, 2.0, 12.0, -12.0];
        geglu(&mut g, &[1.0; 5]);
        assert!((g[0] - gelu_tanh(0.5)).abs() < 1e-3);
        assert!((g[2] - gelu_tanh(2.0)).abs() < 2e-3);
        assert_eq!(g[3], 12.0);
        assert_eq!(g[4], 0.0);
    }
}
