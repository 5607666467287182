//! Metadata values and the key/value table, with typed getters that name the key on failure.

use std::collections::HashMap;

use crate::{Error, Result};

/// The value-type ids used in the file (`gguf_type`).
pub(crate) mod type_id {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array value. Arrays of arrays may mix element types between the inner arrays,
/// as the format allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Value {
    /// The type's name as the file format calls it, lower case (`"u32"`, `"string"`, `"array"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }

    /// The file's id for this value's type.
    pub(crate) fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => type_id::U8,
            Value::I8(_) => type_id::I8,
            Value::U16(_) => type_id::U16,
            Value::I16(_) => type_id::I16,
            Value::U32(_) => type_id::U32,
            Value::I32(_) => type_id::I32,
            Value::F32(_) => type_id::F32,
            Value::Bool(_) => type_id::BOOL,
            Value::String(_) => type_id::STRING,
            Value::Array(_) => type_id::ARRAY,
            Value::U64(_) => type_id::U64,
            Value::I64(_) => type_id::I64,
            Value::F64(_) => type_id::F64,
        }
    }

    /// The value as an `i128` when it is an integer of any width (wide enough for every one).
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A short description for error messages: the type, and the value when it is a scalar.
    fn describe(&self) -> String {
        match self {
            Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
            Value::String(s) => format!("string of {} bytes", s.len()),
            Value::Array(a) => format!("array of {} {}", a.len(), a.type_name()),
            Value::F32(v) => format!("f32 {v}"),
            Value::F64(v) => format!("f64 {v}"),
            Value::Bool(v) => format!("bool {v}"),
            other => match other.as_integer() {
                Some(i) => format!("{} {i}", other.type_name()),
                None => other.type_name().to_string(),
            },
        }
    }
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name, as [`Value::type_name`] spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "u8",
            Array::I8(_) => "i8",
            Array::U16(_) => "u16",
            Array::I16(_) => "i16",
            Array::U32(_) => "u32",
            Array::I32(_) => "i32",
            Array::F32(_) => "f32",
            Array::Bool(_) => "bool",
            Array::String(_) => "string",
            Array::Array(_) => "array",
            Array::U64(_) => "u64",
            Array::I64(_) => "i64",
            Array::F64(_) => "f64",
        }
    }

    /// The file's id for the element type.
    pub(crate) fn elem_type_id(&self) -> u32 {
        match self {
            Array::U8(_) => type_id::U8,
            Array::I8(_) => type_id::I8,
            Array::U16(_) => type_id::U16,
            Array::I16(_) => type_id::I16,
            Array::U32(_) => type_id::U32,
            Array::I32(_) => type_id::I32,
            Array::F32(_) => type_id::F32,
            Array::Bool(_) => type_id::BOOL,
            Array::String(_) => type_id::STRING,
            Array::Array(_) => type_id::ARRAY,
            Array::U64(_) => type_id::U64,
            Array::I64(_) => type_id::I64,
            Array::F64(_) => type_id::F64,
        }
    }

    /// The elements as `i64` when this is an array of integers and every element fits.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        fn conv<T: Copy + TryInto<i64>>(v: &[T]) -> Option<Vec<i64>> {
            v.iter().map(|&x| x.try_into().ok()).collect()
        }
        match self {
            Array::U8(v) => conv(v),
            Array::I8(v) => conv(v),
            Array::U16(v) => conv(v),
            Array::I16(v) => conv(v),
            Array::U32(v) => conv(v),
            Array::I32(v) => conv(v),
            Array::U64(v) => conv(v),
            Array::I64(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// The key/value table, in file order, with a hash index for lookups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// An empty table.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Appends an entry; a key already present is refused with [`Error::DuplicateKey`].
    pub fn insert(&mut self, key: String, value: Value) -> Result<()> {
        if self.index.contains_key(&key) {
            return Err(Error::DuplicateKey(key));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Every entry, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    fn integer_as<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T> {
        let v = self.require(key)?;
        v.as_integer()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| wrong_type(key, expected, v))
    }

    /// An integer of any width whose value fits `u32`.
    pub fn u32(&self, key: &str) -> Result<u32> {
        self.integer_as(key, "an integer that fits u32")
    }

    /// An integer of any width whose value fits `u64`.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.integer_as(key, "an integer that fits u64")
    }

    /// An integer of any width whose value fits `i64`.
    pub fn i64(&self, key: &str) -> Result<i64> {
        self.integer_as(key, "an integer that fits i64")
    }

    /// An `f32`; `f64` values are narrowed and integers converted, since converters are not
    /// consistent about which they write (e.g. `rope.freq_base`).
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        match *v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            _ => v
                .as_integer()
                .map(|i| i as f32)
                .ok_or_else(|| wrong_type(key, "a number", v)),
        }
    }

    /// A `bool`.
    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(wrong_type(key, "bool", v)),
        }
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(wrong_type(key, "string", v)),
        }
    }

    /// The raw array stored under `key`.
    pub fn array(&self, key: &str) -> Result<&Array> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(wrong_type(key, "array", v)),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn strings(&self, key: &str) -> Result<&[String]> {
        match self.array(key)? {
            Array::String(s) => Ok(s),
            a => Err(wrong_array(key, "array of string", a)),
        }
    }

    /// An array of `f32` (e.g. `tokenizer.ggml.scores`).
    pub fn f32s(&self, key: &str) -> Result<&[f32]> {
        match self.array(key)? {
            Array::F32(s) => Ok(s),
            a => Err(wrong_array(key, "array of f32", a)),
        }
    }

    /// An array of `i32` (e.g. `tokenizer.ggml.token_type`).
    pub fn i32s(&self, key: &str) -> Result<&[i32]> {
        match self.array(key)? {
            Array::I32(s) => Ok(s),
            a => Err(wrong_array(key, "array of i32", a)),
        }
    }

    /// Integers as `i64`, from either a scalar integer (one element) or an array of integers
    /// of any width. Made for per-layer hyper-parameters such as `*.attention.head_count`,
    /// which some files store as one number and others as one number per layer.
    pub fn ints(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.require(key)?;
        let expected = "an integer or an array of integers that fit i64";
        match v {
            Value::Array(a) => a.to_i64s().ok_or_else(|| wrong_type(key, expected, v)),
            _ => v
                .as_integer()
                .and_then(|i| i64::try_from(i).ok())
                .map(|i| vec![i])
                .ok_or_else(|| wrong_type(key, expected, v)),
        }
    }

    /// Like [`Metadata::u32`], but an absent key is `Ok(None)`.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.optional(key, Metadata::u32)
    }

    /// Like [`Metadata::u64`], but an absent key is `Ok(None)`.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.optional(key, Metadata::u64)
    }

    /// Like [`Metadata::f32`], but an absent key is `Ok(None)`.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.optional(key, Metadata::f32)
    }

    /// Like [`Metadata::bool`], but an absent key is `Ok(None)`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.optional(key, Metadata::bool)
    }

    /// Like [`Metadata::str`], but an absent key is `Ok(None)`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        if self.contains_key(key) {
            self.str(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Metadata, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `general.architecture`, the key every other model key is prefixed with.
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> Error {
    Error::WrongType {
        key: key.to_string(),
        expected,
        found: found.describe(),
    }
}

fn wrong_array(key: &str, expected: &'static str, found: &Array) -> Error {
    Error::WrongType {
        key: key.to_string(),
        expected,
        found: format!("array of {} {}", found.len(), found.type_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Metadata {
        let mut m = Metadata::new();
        m.insert("a.u8".into(), Value::U8(7)).unwrap();
        m.insert("a.i32neg".into(), Value::I32(-1)).unwrap();
        m.insert("a.big".into(), Value::U64(1 << 40)).unwrap();
        m.insert("a.f64".into(), Value::F64(0.5)).unwrap();
        m.insert("a.s".into(), Value::String("x".into())).unwrap();
        m.insert("a.heads".into(), Value::Array(Array::U32(vec![4, 8])))
            .unwrap();
        m
    }

    #[test]
    fn integer_getters_accept_any_width_that_fits() {
        let m = table();
        assert_eq!(m.u32("a.u8").unwrap(), 7);
        assert_eq!(m.u64("a.big").unwrap(), 1 << 40);
        assert!(matches!(m.u32("a.big"), Err(Error::WrongType { .. })));
        assert!(matches!(m.u32("a.i32neg"), Err(Error::WrongType { .. })));
        assert_eq!(m.i64("a.i32neg").unwrap(), -1);
        assert!(matches!(m.u32("a.s"), Err(Error::WrongType { .. })));
        assert!(matches!(m.u32("nope"), Err(Error::MissingKey(k)) if k == "nope"));
    }

    #[test]
    fn float_and_optional_getters() {
        let m = table();
        assert_eq!(m.f32("a.f64").unwrap(), 0.5);
        assert_eq!(m.f32("a.u8").unwrap(), 7.0);
        assert_eq!(m.opt_f32("none").unwrap(), None);
        assert!(m.opt_f32("a.s").is_err());
        assert_eq!(m.opt_str("a.s").unwrap(), Some("x"));
        assert_eq!(m.opt_u32("a.u8").unwrap(), Some(7));
    }

    #[test]
    fn ints_reads_scalars_and_arrays() {
        let m = table();
        assert_eq!(m.ints("a.heads").unwrap(), vec![4, 8]);
        assert_eq!(m.ints("a.u8").unwrap(), vec![7]);
        assert!(m.ints("a.s").is_err());
    }

    #[test]
    fn wrong_type_message_names_key_and_value() {
        let err = table().u32("a.big").unwrap_err().to_string();
        assert!(err.contains("a.big"), "{err}");
        assert!(err.contains("1099511627776"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused_and_order_is_kept() {
        let mut m = table();
        assert!(matches!(
            m.insert("a.u8".into(), Value::U8(1)),
            Err(Error::DuplicateKey(_))
        ));
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys[0], "a.u8");
        assert_eq!(keys[5], "a.heads");
    }
}
