//! Hand-built files, for the malformed inputs the writer will not produce.

use hearth_gguf::write::{value_type_id, write_string, write_value};
use hearth_gguf::{GgmlType, Value};

/// A byte buffer with GGUF encoding helpers; every method appends.
#[derive(Default)]
pub struct Raw {
    pub out: Vec<u8>,
}

impl Raw {
    /// Magic, version and the two counts.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.out.extend_from_slice(b"GGUF");
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    pub fn u32(&mut self, v: u32) -> &mut Raw {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Raw {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.out.extend_from_slice(b);
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Raw {
        write_string(&mut self.out, s);
        self
    }

    /// A key with a typed value.
    pub fn kv(&mut self, key: &str, value: &Value) -> &mut Raw {
        self.string(key).u32(value_type_id(value));
        write_value(&mut self.out, value);
        self
    }

    /// A tensor-info record with a raw type id.
    pub fn tensor_info(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Raw {
        self.string(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }

    /// A tensor-info record for a known type.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, offset: u64) -> &mut Raw {
        self.tensor_info(name, dims, ty.id(), offset)
    }

    /// Zero padding up to a multiple of `align`, then `n` data bytes.
    pub fn data(&mut self, align: usize, n: usize) -> &mut Raw {
        let len = self.out.len().next_multiple_of(align);
        self.out.resize(len + n, 0);
        self
    }

    pub fn build(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
