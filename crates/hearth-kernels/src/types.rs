//! The types every other module of the crate builds on: errors, the weight types and their
//! activation formats, a weight matrix view ([`QMatrix`]), and the operands of a multi-token
//! kernel ([`Tile`], [`SharedOut`]). This module imports nothing from the rest of the crate, so
//! block formats, instruction-set kernels and the drivers above them can all use it without
//! importing each other.

use hearth_gguf::GgmlType;

/// Errors from the kernel entry points.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tensor type has no kernel here.
    #[error("tensor type {0} is not supported (supported: {list})", list = supported_list())]
    Unsupported(GgmlType),
    /// A row length is not a whole number of blocks of its type.
    #[error("{n} elements is not a multiple of the {ty} block size {block}")]
    BadLength {
        ty: GgmlType,
        n: usize,
        block: usize,
    },
    /// A byte buffer has the wrong size for its element count.
    #[error("{ty} buffer holds {got} bytes; {n} elements need {want}")]
    BadBuffer {
        ty: GgmlType,
        n: usize,
        got: usize,
        want: usize,
    },
    /// A matrix shape or type that cannot be packed (see `packed::packable`).
    #[error("a {rows} x {cols} {ty} matrix cannot be packed (it needs a Q4_0, Q4_1, Q5_0, Q8_0, Q4_K or Q6_K type, a multiple of 8 rows and at most 1024 blocks per row)")]
    NotPackable {
        ty: GgmlType,
        rows: usize,
        cols: usize,
    },
    /// An activation buffer is not a whole number of rows.
    #[error("{len} activation values are not a whole number of rows of {cols}")]
    NotWholeRows { len: usize, cols: usize },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The weight types Hearth computes with.
pub const SUPPORTED: [GgmlType; 20] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
];

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `ty` can be used as a weight type.
pub fn is_supported(ty: GgmlType) -> bool {
    SUPPORTED.contains(&ty)
}

/// The format activations are converted to before a dot product with weights of type `weight`
/// (the pairing llama.cpp uses, so results agree with it closely).
pub fn activation_type(weight: GgmlType) -> Result<GgmlType> {
    use GgmlType::*;
    Ok(match weight {
        F32 => F32,
        F16 => F16,
        BF16 => BF16,
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | MXFP4 => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | IQ4_XS => Q8_K,
        IQ2_XXS | IQ2_XS | IQ3_XXS | IQ3_S => Q8_K,
        other => return Err(Error::Unsupported(other)),
    })
}

pub(crate) fn check(ty: GgmlType, n: usize, bytes: usize) -> Result<()> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(Error::BadLength { ty, n, block });
    }
    let want = n / block * ty.type_size();
    if bytes != want {
        return Err(Error::BadBuffer {
            ty,
            n,
            got: bytes,
            want,
        });
    }
    Ok(())
}

/// Bytes one row of `n` elements of `ty` takes (`n` must be a multiple of the block size).
pub fn row_bytes(ty: GgmlType, n: usize) -> usize {
    n / ty.block_size() * ty.type_size()
}

/// A weight matrix in its GGUF type: `rows` rows of `cols` elements (GGUF `ne0 = cols`,
/// `ne1 = rows`), stored row-major, or `packed` in groups of eight interleaved rows
/// ([`crate::packed::pack_into`]).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    pub packed: bool,
}

impl<'a> QMatrix<'a> {
    /// A matrix view, checking that `ty` is supported, `cols` is a whole number of blocks and
    /// `data` holds exactly `rows` rows.
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<QMatrix<'a>> {
        activation_type(ty)?;
        let block = ty.block_size();
        if !cols.is_multiple_of(block) {
            return Err(Error::BadLength { ty, n: cols, block });
        }
        let want = rows * row_bytes(ty, cols);
        if data.len() != want {
            return Err(Error::BadBuffer {
                ty,
                n: rows * cols,
                got: data.len(),
                want,
            });
        }
        Ok(QMatrix {
            ty,
            data,
            rows,
            cols,
            packed: false,
        })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.ty, self.cols)
    }

    /// The encoded bytes of row `r` of a row-major matrix.
    ///
    /// # Panics
    /// If the matrix is packed (its rows are interleaved; see [`QMatrix::dequantize_row`]).
    pub fn row(&self, r: usize) -> &'a [u8] {
        assert!(!self.packed, "QMatrix::row on a packed matrix");
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// One tile's operands for the multi-token kernels: weight rows and activation rows at fixed
/// byte strides, and output element `(r, t)` at `out + t * ostride + r`.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub w: *const u8,
    pub wrb: usize,
    pub x: *const u8,
    pub xrb: usize,
    pub out: *mut f32,
    pub ostride: usize,
}

impl Tile {
    /// The same tile moved by `r` rows and `t` tokens (pointer arithmetic only; the kernels
    /// dereference within the caller's ranges).
    #[inline(always)]
    pub fn at(&self, r: usize, t: usize) -> Tile {
        Tile {
            w: self.w.wrapping_add(r * self.wrb),
            x: self.x.wrapping_add(t * self.xrb),
            out: self.out.wrapping_add(t * self.ostride + r),
            ..*self
        }
    }
}

/// The output pointer shared by the threads of one matmul (each writes disjoint elements).
pub(crate) struct SharedOut(pub(crate) *mut f32);
// SAFETY: threads write disjoint elements through it (see `matmul::matmul` and
// `packed::run`), and the pointee outlives the `run` call that uses it.
unsafe impl Sync for SharedOut {}
