//! The header parser: magic, version, key/value table, tensor index.
//!
//! Every read goes through [`Reader`], which checks the bytes are there before touching them,
//! and every count read from the file (string lengths, array lengths, the number of keys and
//! tensors) is checked against the bytes that remain *before* anything is allocated for it: a
//! count of `n` items of at least `m` bytes each needs `n * m` bytes, so a corrupt count fails
//! fast instead of reserving terabytes. Allocations are therefore bounded by a small multiple of
//! the input length.

use std::collections::HashSet;

use crate::value::{type_id, Array, Metadata, Value};
use crate::{Error, GgmlType, Header, Result, TensorInfo};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";

/// Alignment of the tensor data when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Deepest nesting of arrays inside arrays that is accepted. Real files never nest; the limit
/// keeps a crafted file from recursing until the stack runs out.
pub const MAX_ARRAY_DEPTH: u32 = 8;

/// Largest header [`Header::parse`] will ask for when given only a prefix of a file. Real headers
/// are a few MB even with 262k-token vocabularies; a length field that needs more than this is
/// corrupt, and saying so is better than telling an HTTP caller to fetch 2^60 bytes.
pub const MAX_HEADER_BYTES: u64 = 1 << 30;

/// Bytes each item of a counted sequence takes at least, used to bound counts.
const MIN_KV_BYTES: u64 = 8 + 4 + 1; // key length, value type, smallest value
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8; // name length, n_dims, type, offset

/// A cursor over the bytes available.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// True when `buf` is the whole file, false when it may be a prefix of it.
    whole_file: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// Takes the next `n` bytes, or reports how many bytes the file would need.
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.short(n, what));
        }
        // `n <= remaining`, which is a `usize`, so the cast is lossless.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// The error for needing `n` more bytes than remain.
    fn short(&self, n: u64, what: &dyn Fn() -> String) -> Error {
        let needed = (self.pos as u64).saturating_add(n);
        if !self.whole_file && needed > MAX_HEADER_BYTES {
            return Error::HeaderTooLarge {
                what: what(),
                needed,
                limit: MAX_HEADER_BYTES,
            };
        }
        Error::Truncated {
            what: what(),
            needed,
            available: self.buf.len() as u64,
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what remains.
    fn check_count(&self, count: u64, min_size: u64, what: &dyn Fn() -> String) -> Result<()> {
        let needed = count.saturating_mul(min_size);
        if needed <= self.remaining() {
            return Ok(());
        }
        if self.whole_file {
            Err(Error::CountTooLarge {
                what: what(),
                count,
                available: self.remaining(),
            })
        } else {
            Err(self.short(needed, what))
        }
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        self.check_count(len, 1, what)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::InvalidUtf8 {
                what: what(),
                offset: (self.pos - bytes.len() + e.valid_up_to()) as u64,
            }),
        }
    }

    /// One value of type `ty` for key `key`; `depth` counts the arrays around it.
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        let what = || format!("value of key {key:?}");
        Ok(match ty {
            type_id::U8 => Value::U8(u8::from_le_bytes(self.array(&what)?)),
            type_id::I8 => Value::I8(i8::from_le_bytes(self.array(&what)?)),
            type_id::U16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            type_id::I16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            type_id::U32 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            type_id::I32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            type_id::F32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            type_id::U64 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            type_id::I64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            type_id::F64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            type_id::BOOL => {
                let [b] = self.array(&what)?;
                Value::Bool(to_bool(b, key)?)
            }
            type_id::STRING => Value::String(self.string(&what)?),
            type_id::ARRAY => Value::Array(self.array_value(key, depth + 1)?),
            id => {
                return Err(Error::UnknownValueType {
                    key: key.to_string(),
                    id,
                })
            }
        })
    }

    /// An array (element type, count, elements) at nesting level `depth` (1 = outermost).
    fn array_value(&mut self, key: &str, depth: u32) -> Result<Array> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Error::ArrayTooDeep {
                key: key.to_string(),
                limit: MAX_ARRAY_DEPTH,
            });
        }
        let what = || format!("array of key {key:?}");
        let elem = self.u32(&what)?;
        let count = self.u64(&what)?;

        /// Reads `count` fixed-size little-endian scalars in one bounds check.
        macro_rules! scalars {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                self.check_count(count, SIZE as u64, &what)?;
                let bytes = self.take(count * SIZE as u64, &what)?;
                Array::$variant(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| {
                            let mut a = [0u8; SIZE];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            }};
        }

        Ok(match elem {
            type_id::U8 => scalars!(U8, u8),
            type_id::I8 => scalars!(I8, i8),
            type_id::U16 => scalars!(U16, u16),
            type_id::I16 => scalars!(I16, i16),
            type_id::U32 => scalars!(U32, u32),
            type_id::I32 => scalars!(I32, i32),
            type_id::F32 => scalars!(F32, f32),
            type_id::U64 => scalars!(U64, u64),
            type_id::I64 => scalars!(I64, i64),
            type_id::F64 => scalars!(F64, f64),
            type_id::BOOL => {
                self.check_count(count, 1, &what)?;
                let bytes = self.take(count, &what)?;
                Array::Bool(
                    bytes
                        .iter()
                        .map(|&b| to_bool(b, key))
                        .collect::<Result<_>>()?,
                )
            }
            type_id::STRING => {
                self.check_count(count, 8, &what)?;
                // The check above bounds `count` by the input length, so this cast is lossless.
                let mut out = Vec::with_capacity(count as usize);
                for i in 0..count {
                    out.push(self.string(&|| format!("element {i} of array {key:?}"))?);
                }
                Array::String(out)
            }
            type_id::ARRAY => {
                self.check_count(count, 4 + 8, &what)?;
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(self.array_value(key, depth + 1)?);
                }
                Array::Array(out)
            }
            id => {
                return Err(Error::UnknownValueType {
                    key: key.to_string(),
                    id,
                })
            }
        })
    }
}

fn to_bool(b: u8, key: &str) -> Result<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(Error::InvalidBool {
            key: key.to_string(),
            value,
        }),
    }
}

/// Parses a header from `buf`. When `whole_file` is false, `buf` may be a prefix of the file and
/// running out of bytes is reported as [`Error::Truncated`] with a lower bound on what is needed.
pub(crate) fn parse_header(buf: &[u8], whole_file: bool) -> Result<Header> {
    let mut r = Reader {
        buf,
        pos: 0,
        whole_file,
    };
    let magic: [u8; 4] = r.array(&|| "magic".to_string())?;
    if magic != MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let version = r.u32(&|| "version".to_string())?;
    match version {
        2 | 3 => {}
        // A big-endian file has its version byte-swapped: say so rather than "version 50331648".
        v if v & 0xffff == 0 && matches!(v.swap_bytes(), 2 | 3) => {
            return Err(Error::BigEndian {
                version: v.swap_bytes(),
            })
        }
        v => return Err(Error::UnsupportedVersion(v)),
    }
    let n_tensors = r.u64(&|| "tensor count".to_string())?;
    let n_kv = r.u64(&|| "key/value count".to_string())?;
    r.check_count(n_tensors, MIN_TENSOR_INFO_BYTES, &|| {
        "tensor infos".to_string()
    })?;
    r.check_count(n_kv, MIN_KV_BYTES, &|| "key/value pairs".to_string())?;

    let mut metadata = Metadata::new();
    for i in 0..n_kv {
        let key = r.string(&|| format!("key #{i}"))?;
        let ty = r.u32(&|| format!("type of key {key:?}"))?;
        let value = r.value(ty, &key, 0)?;
        metadata.insert(key, value)?;
    }

    let alignment = match metadata.opt_u32("general.alignment")? {
        None => DEFAULT_ALIGNMENT,
        Some(a) if a.is_power_of_two() => u64::from(a),
        Some(a) => return Err(Error::BadAlignment(u64::from(a))),
    };

    // Bounded by `check_count` above.
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = r.string(&|| format!("name of tensor #{i}"))?;
        let what = || format!("info of tensor {name:?}");
        let n_dims = r.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::BadDimCount {
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let type_id = r.u32(&what)?;
        let offset = r.u64(&what)?;
        let Some(ty) = GgmlType::from_id(type_id) else {
            return Err(Error::UnknownTensorType {
                tensor: name,
                id: type_id,
            });
        };
        let n_bytes = tensor_size(&name, &dims, ty)?;
        if offset % alignment != 0 {
            return Err(Error::MisalignedTensor {
                name,
                offset,
                alignment,
            });
        }
        if offset.checked_add(n_bytes).is_none() {
            return Err(Error::TensorEndOverflow {
                name,
                offset,
                n_bytes,
            });
        }
        if !names.insert(name.clone()) {
            return Err(Error::DuplicateTensor(name));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
    }

    // The header ends well inside a `usize` buffer, and the alignment is at most 2^31, so
    // rounding up cannot overflow a u64.
    let data_offset = (r.pos as u64).next_multiple_of(alignment);
    let header = Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    };
    // `offset + n_bytes` was checked per tensor; the data offset can still push the end past 2^64.
    if let Some(t) = header
        .tensors
        .iter()
        .find(|t| data_offset.checked_add(t.offset + t.n_bytes).is_none())
    {
        return Err(Error::TensorEndOverflow {
            name: t.name.clone(),
            offset: data_offset.saturating_add(t.offset),
            n_bytes: t.n_bytes,
        });
    }
    Ok(header)
}

/// Validates a tensor's shape and returns its size in bytes.
fn tensor_size(name: &str, dims: &[u64], ty: GgmlType) -> Result<u64> {
    if dims.contains(&0) {
        return Err(Error::ZeroDim {
            tensor: name.to_string(),
            dims: dims.to_vec(),
        });
    }
    // ggml keeps element counts in an i64, so that is the limit, as in llama.cpp.
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64);
    let Some(n_elements) = n_elements else {
        return Err(Error::ElementCountOverflow {
            tensor: name.to_string(),
            dims: dims.to_vec(),
        });
    };
    // Blocks never straddle rows, so the row length itself must be a whole number of blocks.
    let block = ty.block_size() as u64;
    if dims[0] % block != 0 {
        return Err(Error::NotBlockMultiple {
            tensor: name.to_string(),
            ty,
            ne0: dims[0],
            block_size: block,
        });
    }
    ty.bytes_for(n_elements)
        .ok_or_else(|| Error::ElementCountOverflow {
            tensor: name.to_string(),
            dims: dims.to_vec(),
        })
}
