//! Reading GGUF model files: the header (metadata and tensor index) and the tensor bytes.
//!
//! # The format
//!
//! A GGUF file (versions 2 and 3; version 1 and big-endian files are refused) is, all
//! little-endian:
//!
//! ```text
//! "GGUF" | version u32 | n_tensors u64 | n_kv u64
//! n_kv × (key: string, value type u32, value)
//! n_tensors × (name: string, n_dims u32, dims u64 × n_dims, ggml type u32, offset u64)
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_offset + offset, offsets multiples of the alignment
//! ```
//!
//! where a string is a u64 byte length and UTF-8 bytes, and an array value is an element type
//! u32, a u64 count and the elements (arrays of arrays are allowed).
//!
//! # Design
//!
//! - **One validation pass at open.** [`Gguf::open`] maps the file and parses the whole header
//!   with [`Header::parse`]'s parser; it checks every tensor's shape, type, alignment and that its
//!   bytes lie inside the file. After that, [`Gguf::tensor_data`] is a plain slice with no
//!   error path, which is what the loaders want.
//! - **Hostile input is normal input.** Model files come from the internet. Every count read from
//!   the file is bounded by the bytes remaining before anything is allocated (see `parse.rs`), so
//!   a corrupt or crafted file yields an [`Error`] naming what is wrong, never a panic or a huge
//!   allocation. A proptest mutator and a cargo-fuzz target (`fuzz/`) exercise this, and files
//!   they found interesting live in `tests/corpus/`.
//! - **Prefix parsing for remote files.** [`Header::parse`] accepts any prefix of a file; when the
//!   prefix is too short it answers [`Error::Truncated`] with a lower bound on the bytes needed,
//!   so a caller reading over HTTP can fetch more and retry without knowing the format.
//! - **No math here.** This crate knows the byte layout of each [`GgmlType`] (to size tensors)
//!   but never decodes tensor values; that is the kernels' job.
//! - **A writer for tests.** [`write::GgufWriter`] makes small, valid v3 (or v2) files, so tests
//!   across the workspace can build random-weight models without committing model files.
//!
//! The metadata keeps the file's key order ([`Metadata::iter`]) and offers typed getters that
//! name the key in their errors ([`Metadata::u32`], [`Metadata::strings`], ...).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod parse;
mod types;
mod value;
pub mod write;

pub use parse::{DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_HEADER_BYTES};
pub use types::{GgmlType, QK_K};
pub use value::{Array, Metadata, Value};

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can be wrong with a GGUF file, or with a metadata lookup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, sized or mapped.
    #[error("cannot read GGUF file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file does not start with `GGUF`.
    #[error(
        "not a GGUF file: starts with {found:02x?} ({:?}), expected \"GGUF\"",
        String::from_utf8_lossy(found)
    )]
    BadMagic { found: [u8; 4] },
    /// A format version other than 2 or 3.
    #[error("GGUF version {0} is not supported (expected 2 or 3){hint}", hint = version_hint(*.0))]
    UnsupportedVersion(u32),
    /// A big-endian file (its version field reads byte-swapped).
    #[error("big-endian GGUF file (version {version}); only little-endian files are supported")]
    BigEndian { version: u32 },
    /// The bytes end before `what` does. `needed` is a lower bound on the total bytes required.
    #[error("GGUF data ends while reading {what}: need at least {needed} bytes, have {available}")]
    Truncated {
        what: String,
        needed: u64,
        available: u64,
    },
    /// A count or length in the file asks for more items than the rest of the file can hold.
    #[error("{what}: count {count} cannot fit in the {available} bytes left in the file")]
    CountTooLarge {
        what: String,
        count: u64,
        available: u64,
    },
    /// Parsing a prefix would need a header larger than any real one ([`MAX_HEADER_BYTES`]);
    /// some length in it is corrupt.
    #[error("{what} would make the header {needed} bytes long, more than the {limit} bytes any real GGUF header takes")]
    HeaderTooLarge {
        what: String,
        needed: u64,
        limit: u64,
    },
    /// A key, string value or tensor name is not valid UTF-8.
    #[error("{what} is not valid UTF-8 (bad byte at file offset {offset})")]
    InvalidUtf8 { what: String, offset: u64 },
    /// A value-type id the format does not define.
    #[error("key {key:?} has unknown value type {id} (expected 0 to 12)")]
    UnknownValueType { key: String, id: u32 },
    /// A bool stored as something other than 0 or 1.
    #[error("key {key:?} has bool byte {value}, expected 0 or 1")]
    InvalidBool { key: String, value: u8 },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    #[error("key {key:?} nests arrays more than {limit} deep")]
    ArrayTooDeep { key: String, limit: u32 },
    /// The same key appears twice.
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment is {0}; it must be a non-zero power of two")]
    BadAlignment(u64),
    /// A ggml type id this crate does not know.
    #[error("tensor {tensor:?} has unknown ggml type {id}")]
    UnknownTensorType { tensor: String, id: u32 },
    /// A tensor with no dimensions or more than [`MAX_DIMS`].
    #[error("tensor {tensor:?} has {n_dims} dimensions; expected 1 to 4")]
    BadDimCount { tensor: String, n_dims: u32 },
    /// A tensor with a dimension of size zero.
    #[error("tensor {tensor:?} has a zero dimension: {dims:?}")]
    ZeroDim { tensor: String, dims: Vec<u64> },
    /// A tensor whose element count exceeds `i64::MAX` or whose byte size overflows a u64.
    #[error("tensor {tensor:?} with dimensions {dims:?} has too many elements (more than 2^63 or 2^64 bytes)")]
    ElementCountOverflow { tensor: String, dims: Vec<u64> },
    /// A tensor whose row length (`ne0`) is not a whole number of its type's blocks.
    #[error("tensor {tensor:?} of type {ty} has row length {ne0}, not a multiple of the block size {block_size}")]
    NotBlockMultiple {
        tensor: String,
        ty: GgmlType,
        ne0: u64,
        block_size: u64,
    },
    /// A tensor offset that is not a multiple of the file's alignment.
    #[error("tensor {name:?} has offset {offset}, not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        name: String,
        offset: u64,
        alignment: u64,
    },
    /// A tensor whose end offset does not fit in 64 bits.
    #[error("tensor {name:?} at offset {offset} with {n_bytes} bytes ends beyond 2^64")]
    TensorEndOverflow {
        name: String,
        offset: u64,
        n_bytes: u64,
    },
    /// A tensor whose bytes extend past the end of the file.
    #[error("tensor {name:?} ends at byte {end}, past the end of the {file_size}-byte file")]
    TensorOutOfBounds {
        name: String,
        end: u64,
        file_size: u64,
    },
    /// The same tensor name appears twice.
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    /// A metadata key that was required is absent.
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),
    /// A metadata key holds a value of another type (or one out of range).
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
}

fn version_hint(version: u32) -> &'static str {
    if version == 1 {
        "; version 1 files predate August 2023, convert the model again"
    } else {
        ""
    }
}

/// The parsed header: everything before the tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Format version (2 or 3).
    pub version: u32,
    /// The key/value table.
    pub metadata: Metadata,
    /// The tensor index, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the tensor data (`general.alignment`, default 32).
    pub alignment: u64,
    /// Offset of the tensor data from the start of the file.
    pub data_offset: u64,
}

impl Header {
    /// Parses a header from a prefix of a file (or the whole file).
    ///
    /// If `bytes` ends before the header does, this returns [`Error::Truncated`] whose `needed`
    /// is a lower bound on the total bytes required, so a caller reading a remote file can fetch
    /// at least that many and retry. Lengths that would need more than [`MAX_HEADER_BYTES`] give
    /// [`Error::HeaderTooLarge`] instead. Tensor bounds against the file size are not checked
    /// here (the file size is unknown); see [`Header::file_bytes_needed`].
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        parse::parse_header(bytes, false)
    }

    /// Bytes a complete file must have: the data offset plus the end of the last tensor.
    ///
    /// For a file without tensors this is the data offset (the header rounded up to the
    /// alignment), although such a file may end before its padding does.
    pub fn file_bytes_needed(&self) -> u64 {
        // Parsing checked that every tensor end fits in a u64.
        self.tensors
            .iter()
            .map(|t| self.data_offset + t.offset + t.n_bytes)
            .max()
            .unwrap_or(self.data_offset)
    }
}

/// One entry of the tensor index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, `ne0` (the fastest-varying, the row length) first, as in the file.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset of the tensor's bytes from [`Header::data_offset`].
    pub offset: u64,
    /// Size of the tensor's bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (the product of the dimensions; fits an `i64`, checked at parse).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Where the file's bytes live.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An open, validated GGUF file: the header plus access to the tensor bytes.
///
/// Tensor data from [`Gguf::open`] is page-aligned plus the file's offsets, so each tensor
/// starts on a multiple of the file's alignment in memory; data from [`Gguf::from_bytes`] carries
/// whatever alignment the `Vec` had.
pub struct Gguf {
    bytes: Bytes,
    header: Header,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("file_size", &self.file_size())
            .field("version", &self.header.version)
            .field("n_kv", &self.header.metadata.len())
            .field("n_tensors", &self.header.tensors.len())
            .finish()
    }
}

impl Gguf {
    /// Maps the file at `path` and validates it completely.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len == 0 {
            // Mapping an empty file fails on some systems; an empty file is simply too short.
            return Err(Error::Truncated {
                what: "magic".to_string(),
                needed: 4,
                available: 0,
            });
        }
        // SAFETY: the map is read-only and private to this process, but the file itself may be
        // changed by another process while it is mapped; Rust cannot protect against that. We
        // assume model files are not modified or truncated while Hearth has them open (they are
        // written once by the downloader, which writes to a temporary name and renames). If one
        // is modified anyway, tensor bytes may change under readers (wrong output, no memory
        // unsafety in this crate's own checks, which ran at open) and a truncation can raise
        // SIGBUS on access.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Gguf::from_backing(Bytes::Mapped(map))
    }

    /// Validates an in-memory file, as [`Gguf::open`] does (used by tests and small files).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::from_backing(Bytes::Owned(bytes))
    }

    fn from_backing(bytes: Bytes) -> Result<Gguf> {
        let data = bytes.as_slice();
        let header = parse::parse_header(data, true)?;
        let file_size = data.len() as u64;
        for t in &header.tensors {
            let end = header.data_offset + t.offset + t.n_bytes;
            if end > file_size {
                return Err(Error::TensorOutOfBounds {
                    name: t.name.clone(),
                    end,
                    file_size,
                });
            }
        }
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Gguf {
            bytes,
            header,
            by_name,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The key/value table.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// The tensor index, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.header.tensors[i])
    }

    /// The bytes of tensor `t` (`t.n_bytes` long).
    ///
    /// # Panics
    ///
    /// If `t` is not from this file and lies beyond its end (bounds of this file's own tensors
    /// were checked at open).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.header.data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        let bytes = start
            .zip(end)
            .and_then(|(s, e)| Some((usize::try_from(s).ok()?, usize::try_from(e).ok()?)))
            .and_then(|(s, e)| self.bytes.as_slice().get(s..e));
        match bytes {
            Some(bytes) => bytes,
            None => panic!(
                "tensor {:?} (offset {} + {} bytes after the data start {}) is not inside this {}-byte GGUF file",
                t.name,
                t.offset,
                t.n_bytes,
                self.header.data_offset,
                self.file_size()
            ),
        }
    }

    /// Lets go of this process's resident pages of bytes `range` of tensor `index` (the pages
    /// wholly inside it), for a consumer that keeps its own re-laid copy of the tensor: they
    /// no longer count twice in resident memory. The bytes stay readable and unchanged; a later
    /// read faults them back from the file. Best effort: does nothing for in-memory files or
    /// where the system refuses.
    ///
    /// # Panics
    /// If `index` is not a tensor of this file or `range` is not inside it.
    pub fn release_tensor_bytes(&self, index: usize, range: std::ops::Range<usize>) {
        let t = &self.header.tensors[index];
        assert!(
            range.start <= range.end && range.end as u64 <= t.n_bytes,
            "release_tensor_bytes: {range:?} is not inside tensor {:?} of {} bytes",
            t.name,
            t.n_bytes
        );
        #[cfg(unix)]
        if let Bytes::Mapped(map) = &self.bytes {
            const PAGE: usize = 4096;
            // In bounds: checked for every tensor at open (`from_backing`).
            let start = (self.header.data_offset + t.offset) as usize + range.start;
            let end = start + range.len();
            let base = map.as_ptr() as usize;
            // Whole pages only, so the neighbours' pages stay resident.
            let first = (base + start).next_multiple_of(PAGE) - base;
            let last = (base + end) / PAGE * PAGE - base;
            if last > first {
                // SAFETY: the map is a read-only private file mapping that this process never
                // writes, so `MADV_DONTNEED` only drops the page-table entries: the next read
                // of those addresses maps the file's (unchanged) bytes again, and every slice
                // handed out by `tensor_data` keeps seeing the same contents. (memmap2 marks the
                // advice unchecked because on written private pages it would discard the
                // writes; there are none here.)
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        first,
                        last - first,
                    )
                };
            }
        }
    }

    /// The bytes of the tensor named `name`.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        self.tensor(name).map(|t| self.tensor_data(t))
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Gguf>();
    }
}
