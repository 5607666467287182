//! (being written)
use crate::{GgmlType, Result};

pub(crate) fn dequantize(_ty: GgmlType, _src: &[u8], _dst: &mut [f32]) {
    todo!()
}

pub(crate) fn quantize(_ty: GgmlType, _src: &[f32], _dst: &mut [u8]) -> Result<()> {
    todo!()
}

pub(crate) fn vec_dot(_ty: GgmlType, _n: usize, _w: &[u8], _x: &[u8]) -> f32 {
    todo!()
}
