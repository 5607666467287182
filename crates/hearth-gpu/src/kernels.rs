//! The host side of each kernel: buffers, bind groups and dispatch sizes. The `Gpu` methods
//! here take and return host data (one submission each), for the self-test and the tests; the
//! layers on the device will record the same dispatches into one command buffer per step.

use wgpu::util::DeviceExt;

use hearth_gguf::GgmlType;
use hearth_kernels::{activation_type, row_bytes};

use crate::device::Gpu;
use crate::shaders::{self, MatmulVariant, MATMUL_WG};
use crate::{Error, Result};

/// At most this many workgroups along one dispatch dimension (WebGPU's limit); more are
/// folded into a second dimension.
const MAX_GROUPS: u32 = 65535;

/// A weight matrix on the device: `rows` rows of `cols` elements in the GGUF type, cut into
/// pieces of whole rows, each within the device's largest storage binding (128 MiB on
/// lavapipe; a 128k-token vocabulary's output matrix needs several).
#[derive(Debug)]
pub struct GpuMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pieces: Vec<(wgpu::Buffer, usize, usize)>,
}

impl GpuMatrix {
    /// Bytes on the device.
    pub fn bytes(&self) -> u64 {
        self.pieces.iter().map(|(b, _, _)| b.size()).sum()
    }

    /// How many pieces the matrix was cut into.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }
}

/// How RoPE pairs dimensions (as `hearth_model::config::RopeStyle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// `(2i, 2i + 1)`, llama's GGUF layout.
    Interleaved,
    /// `(i, i + d/2)`, NeoX: Qwen, Gemma.
    Halves,
}

fn groups_2d(n: u32) -> (u32, u32) {
    if n <= MAX_GROUPS {
        (n.max(1), 1)
    } else {
        (MAX_GROUPS, n.div_ceil(MAX_GROUPS))
    }
}

impl Gpu {
    fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // wgpu binds whole 4-byte words: pad the tail.
        let mut padded;
        let contents = if !bytes.len().is_multiple_of(4) || bytes.is_empty() {
            padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
            &padded[..]
        } else {
            bytes
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Refuses, in words, a buffer larger than one binding.
    fn fits(&self, what: &str, bytes: usize) -> Result<()> {
        if bytes as u64 > self.max_binding {
            return Err(Error::Shape(format!(
                "{what} is {bytes} bytes, more than this GPU binds at once ({} bytes); split it",
                self.max_binding
            )));
        }
        Ok(())
    }

    fn output(&self, floats: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output"),
            size: (floats.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn bind(&self, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        (x, y, z): (u32, u32, u32),
    ) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }

    /// Uploads a weight matrix (`data`: `rows` rows of `cols` elements of `ty`, row-major as
    /// in the GGUF file).
    pub fn upload_matrix(
        &self,
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<GpuMatrix> {
        let per_piece = (self.max_binding / row_bytes(ty, cols).max(1) as u64).max(1) as usize;
        self.upload_matrix_in_pieces(ty, data, rows, cols, per_piece)
    }

    /// [`Gpu::upload_matrix`] with at most `per_piece` rows per piece (the tests cut small
    /// matrices the way the binding limit cuts large ones).
    #[doc(hidden)]
    pub fn upload_matrix_in_pieces(
        &self,
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
        per_piece: usize,
    ) -> Result<GpuMatrix> {
        if !shaders::MATMUL_TYPES.contains(&ty) {
            return Err(Error::Unsupported { ty });
        }
        hearth_kernels::QMatrix::new(ty, data, rows, cols)?;
        let rb = row_bytes(ty, cols);
        if rb as u64 > self.max_binding {
            return Err(Error::Shape(format!(
                "one row of {cols} {} values is {rb} bytes, more than this GPU binds at once ({} bytes)",
                ty.name(),
                self.max_binding
            )));
        }
        let per_piece = per_piece
            .max(1)
            .min((self.max_binding / rb.max(1) as u64) as usize);
        let pieces = self.scoped("weight upload", || {
            let mut pieces = Vec::new();
            let mut r = 0;
            while r < rows {
                let n = per_piece.min(rows - r);
                pieces.push((self.storage("weights", &data[r * rb..(r + n) * rb]), r, n));
                r += n;
            }
            Ok(pieces)
        })?;
        Ok(GpuMatrix {
            ty,
            rows,
            cols,
            pieces,
        })
    }

    /// `tokens` outputs of `m.rows` floats (token-major): each token's activation row of `x`
    /// (encoded as `activation_type(m.ty)`, as the CPU's `vec_dot` takes it) times every
    /// weight row. `tile` is (rows, tokens) per workgroup, one of [`shaders::TILES`] or any
    /// with `rows * tokens <= 32`; every tile gives the same bits.
    pub fn matmul(
        &self,
        m: &GpuMatrix,
        x: &[u8],
        tokens: usize,
        tile: (u32, u32),
    ) -> Result<Vec<f32>> {
        let xty = activation_type(m.ty)?;
        let xrb = row_bytes(xty, m.cols);
        if x.len() != tokens * xrb {
            return Err(Error::Shape(format!(
                "{} activation bytes for {tokens} tokens of {} {} values",
                x.len(),
                m.cols,
                xty.name()
            )));
        }
        let (tr, tt) = tile;
        if tr * tt > MATMUL_WG || tr * tt == 0 {
            return Err(Error::Shape(format!(
                "tile {tr}x{tt} is larger than {MATMUL_WG}"
            )));
        }
        let v = MatmulVariant {
            ty: m.ty,
            rows: tr,
            tokens: tt,
            subgroups: self.uses_subgroups(),
        };
        let key = format!("{v:?}");
        let pipeline = self.pipeline(&key, || shaders::matmul_source(v).expect("checked type"))?;
        let wrb = row_bytes(m.ty, m.cols);
        // Tokens per submission: activations and outputs each within one binding, and the
        // token groups within one dispatch dimension.
        let out_row = m.rows as u64 * 4;
        let chunk = (self.max_binding / (xrb as u64).max(1))
            .min(self.max_binding / out_row.max(1))
            .min(u64::from(MAX_GROUPS) * u64::from(tt)) as usize;
        if chunk == 0 {
            return Err(Error::Shape(format!(
                "one token's {xrb} activation bytes or {out_row} output bytes are more than \
                 this GPU binds at once ({} bytes)",
                self.max_binding
            )));
        }
        let mut y = Vec::with_capacity(tokens * m.rows);
        for t0 in (0..tokens.max(1)).step_by(chunk) {
            let n_tok = chunk.min(tokens - t0);
            let xs = &x[t0 * xrb..(t0 + n_tok) * xrb];
            let part = self.scoped("matrix kernel", || {
                let xbuf = self.storage("activations", xs);
                let out = self.output(n_tok * m.rows);
                let mut encoder = self.device.create_command_encoder(&Default::default());
                for (wbuf, row0, n) in &m.pieces {
                    let (gx, gz) = groups_2d((*n as u32).div_ceil(tr));
                    let params = self.uniform(&[
                        *n as u32,
                        m.cols as u32,
                        n_tok as u32,
                        wrb as u32,
                        xrb as u32,
                        gx,
                        m.rows as u32,
                        *row0 as u32,
                    ]);
                    let group = self.bind(&pipeline, &[wbuf, &xbuf, &out, &params]);
                    self.dispatch(
                        &mut encoder,
                        &pipeline,
                        &group,
                        (gx, (n_tok as u32).div_ceil(tt), gz),
                    );
                }
                self.submit_and_wait(encoder)?;
                let mut part = self.read_f32(&out)?;
                part.truncate(n_tok * m.rows);
                Ok(part)
            })?;
            y.extend_from_slice(&part);
        }
        Ok(y)
    }

    /// RMS norm of each row of `n` values of `x`, times `weight`.
    pub fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32) -> Result<Vec<f32>> {
        let n = weight.len();
        if n == 0 || !x.len().is_multiple_of(n) {
            return Err(Error::Shape(format!(
                "{} values are not rows of {n}",
                x.len()
            )));
        }
        self.fits("rms norm input", x.len() * 4)?;
        let pipeline = self.pipeline("rms_norm", || shaders::RMS_NORM.to_string())?;
        let rows = (x.len() / n) as u32;
        let (gx, gy) = groups_2d(rows);
        self.scoped("rms norm", || {
            let xb = self.storage("x", bytemuck::cast_slice(x));
            let wb = self.storage("norm", bytemuck::cast_slice(weight));
            let out = self.output(x.len());
            let params = self.uniform(&[n as u32, eps.to_bits(), gx, rows]);
            let group = self.bind(&pipeline, &[&xb, &wb, &out, &params]);
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.dispatch(&mut encoder, &pipeline, &group, (gx, gy, 1));
            self.submit_and_wait(encoder)?;
            let mut y = self.read_f32(&out)?;
            y.truncate(x.len());
            Ok(y)
        })
    }

    /// Rotates `x` (per token: `heads` heads of `head_dim`) for each token's position, over
    /// the first `rot_dim` dimensions of each head, as `hearth_model::ops::Rope` does.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        x: &[f32],
        positions: &[u32],
        heads: usize,
        head_dim: usize,
        rot_dim: usize,
        base: f32,
        freq_scale: f32,
        layout: RopeLayout,
    ) -> Result<Vec<f32>> {
        let tokens = positions.len();
        if x.len() != tokens * heads * head_dim || rot_dim > head_dim || !rot_dim.is_multiple_of(2)
        {
            return Err(Error::Shape(format!(
                "rope: {} values for {tokens} tokens x {heads} heads x {head_dim} (rotating {rot_dim})",
                x.len()
            )));
        }
        let half = rot_dim / 2;
        let cs = rope_table(positions, rot_dim, base, freq_scale);
        self.fits("rope input", x.len() * 4)?;
        self.fits("rope table", cs.len() * 4)?;
        let pipeline = self.pipeline("rope", || shaders::ROPE.to_string())?;
        self.scoped("rope", || {
            let xb = self.storage("x", bytemuck::cast_slice(x));
            let csb = self.storage("cos sin", bytemuck::cast_slice(&cs));
            let n = (tokens * heads * half) as u32;
            let (gx, gy) = groups_2d(n.div_ceil(64));
            let params = self.uniform(&[
                tokens as u32,
                heads as u32,
                head_dim as u32,
                half as u32,
                u32::from(layout == RopeLayout::Halves),
                gx,
                0,
                0,
            ]);
            let group = self.bind(&pipeline, &[&xb, &csb, &params]);
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.dispatch(&mut encoder, &pipeline, &group, (gx, gy, 1));
            self.submit_and_wait(encoder)?;
            let mut y = self.read_f32(&xb)?;
            y.truncate(x.len());
            Ok(y)
        })
    }

    /// `act(gate) * up` elementwise: SiLU (SwiGLU) or, with `gelu`, GELU in its tanh form.
    pub fn glu(&self, gate: &[f32], up: &[f32], gelu: bool) -> Result<Vec<f32>> {
        if gate.len() != up.len() {
            return Err(Error::Shape("gate and up differ in length".into()));
        }
        self.fits("glu input", gate.len() * 4)?;
        let pipeline = self.pipeline("glu", || shaders::GLU.to_string())?;
        self.scoped("glu", || {
            let gb = self.storage("gate", bytemuck::cast_slice(gate));
            let ub = self.storage("up", bytemuck::cast_slice(up));
            let (gx, gy) = groups_2d((gate.len() as u32).div_ceil(64));
            let params = self.uniform(&[gate.len() as u32, u32::from(gelu), gx, 0]);
            let group = self.bind(&pipeline, &[&gb, &ub, &params]);
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.dispatch(&mut encoder, &pipeline, &group, (gx, gy, 1));
            self.submit_and_wait(encoder)?;
            let mut y = self.read_f32(&gb)?;
            y.truncate(gate.len());
            Ok(y)
        })
    }

    /// Softmax of each row of `n` values.
    pub fn softmax(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        if n == 0 || !x.len().is_multiple_of(n) {
            return Err(Error::Shape(format!(
                "{} values are not rows of {n}",
                x.len()
            )));
        }
        self.fits("softmax input", x.len() * 4)?;
        let pipeline = self.pipeline("softmax", || shaders::SOFTMAX.to_string())?;
        let rows = (x.len() / n) as u32;
        let (gx, gy) = groups_2d(rows);
        self.scoped("softmax", || {
            let xb = self.storage("x", bytemuck::cast_slice(x));
            let params = self.uniform(&[n as u32, gx, rows, 0]);
            let group = self.bind(&pipeline, &[&xb, &params]);
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.dispatch(&mut encoder, &pipeline, &group, (gx, gy, 1));
            self.submit_and_wait(encoder)?;
            let mut y = self.read_f32(&xb)?;
            y.truncate(x.len());
            Ok(y)
        })
    }
}

/// Each token's cosines then sines of `theta_i = pos * freq_scale * base^(-2i / rot_dim)`,
/// built by repeated multiplication with Hearth's own sin/cos, exactly as the CPU's RoPE.
pub(crate) fn rope_table(
    positions: &[u32],
    rot_dim: usize,
    base: f32,
    freq_scale: f32,
) -> Vec<f32> {
    let half = rot_dim / 2;
    let theta_scale = hearth_kernels::math::pow_f32(base, -2.0 / rot_dim as f32);
    let mut cs = vec![0f32; positions.len() * rot_dim];
    for (t, &pos) in positions.iter().enumerate() {
        let row = &mut cs[t * rot_dim..(t + 1) * rot_dim];
        let mut theta = pos as f32 * freq_scale;
        for i in 0..half {
            let (s, c) = hearth_kernels::math::sin_cos_f32(theta);
            row[i] = c;
            row[half + i] = s;
            theta *= theta_scale;
        }
    }
    cs
}
