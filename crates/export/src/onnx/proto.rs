//! The ONNX protobuf messages this exporter writes, encoded by hand: a few message types and
//! the protobuf wire format (varints and length-delimited fields) are all it takes, and it
//! keeps the exporter free of code generation. Field numbers are those of `onnx/onnx.proto`.

use std::io::{self, Write};

/// `TensorProto.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    Float = 1,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
    Bfloat16 = 16,
}

impl ElemType {
    pub fn size(self) -> usize {
        match self {
            ElemType::Float | ElemType::Int32 => 4,
            ElemType::Int64 => 8,
            ElemType::Bool => 1,
            ElemType::Float16 | ElemType::Bfloat16 => 2,
        }
    }
}

/// Where encoded bytes go: a counter (to learn a nested message's length before writing it)
/// or the output itself. Writing every message twice, once to count and once for real, lets
/// the model stream to disk without assembling it in memory: nothing is copied but the bytes.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
}

#[derive(Default)]
pub struct Counter(pub u64);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
}

impl<W: Write> Sink for W {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

/// Writes protobuf fields.
pub struct Writer<'s> {
    sink: &'s mut dyn Sink,
}

const VARINT: u64 = 0;
const FIXED32: u64 = 5;
const LEN: u64 = 2;

type Fields<'f> = &'f dyn Fn(&mut Writer) -> io::Result<()>;

impl<'s> Writer<'s> {
    pub fn new(sink: &'s mut dyn Sink) -> Writer<'s> {
        Writer { sink }
    }

    fn varint(&mut self, mut v: u64) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        self.sink.put(&buf[..=n])
    }

    fn key(&mut self, field: u32, wire: u64) -> io::Result<()> {
        self.varint(((field as u64) << 3) | wire)
    }

    pub fn int(&mut self, field: u32, v: i64) -> io::Result<()> {
        self.key(field, VARINT)?;
        self.varint(v as u64)
    }

    pub fn float(&mut self, field: u32, v: f32) -> io::Result<()> {
        self.key(field, FIXED32)?;
        self.sink.put(&v.to_le_bytes())
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> io::Result<()> {
        self.key(field, LEN)?;
        self.varint(v.len() as u64)?;
        self.sink.put(v)
    }

    pub fn string(&mut self, field: u32, v: &str) -> io::Result<()> {
        self.bytes(field, v.as_bytes())
    }

    /// A nested message: its fields are written once to count them, then for real.
    pub fn message(&mut self, field: u32, fields: Fields) -> io::Result<()> {
        let mut counter = Counter::default();
        fields(&mut Writer::new(&mut counter))?;
        self.key(field, LEN)?;
        self.varint(counter.0)?;
        fields(self)
    }

    /// A packed `repeated int64`.
    pub fn packed_ints(&mut self, field: u32, values: &[i64]) -> io::Result<()> {
        self.message(field, &|w| values.iter().try_for_each(|&v| w.varint(v as u64)))
    }
}

/// One dimension of a graph input or output: fixed, or named and dynamic.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: ElemType,
    pub dims: Vec<Dim>,
}

#[derive(Debug, Clone)]
pub enum Attribute {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    String(String),
    Tensor(Tensor),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub op_type: String,
    pub domain: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, Attribute)>,
}

/// Where a tensor's bytes are written.
#[derive(Debug, Clone)]
pub enum TensorData {
    Raw(Vec<u8>),
    /// f32 values, written as their little-endian bytes without a copy.
    Floats(Vec<f32>),
    /// In the external data file: (offset, length).
    External { location: String, offset: u64, len: u64 },
}

impl TensorData {
    /// The inline bytes (little-endian), or `None` for external data.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            TensorData::Raw(bytes) => Some(bytes),
            TensorData::Floats(values) => Some(bytemuck::cast_slice(values)),
            TensorData::External { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub elem_type: ElemType,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

pub struct Model {
    pub ir_version: i64,
    /// (domain, version); "" is the default ONNX domain.
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub graph_name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub metadata: Vec<(String, String)>,
}

fn write_value_info(w: &mut Writer, info: &ValueInfo) -> io::Result<()> {
    w.string(1, &info.name)?;
    w.message(2, &|type_proto| {
        type_proto.message(1, &|tensor_type| {
            tensor_type.int(1, info.elem_type as i64)?;
            tensor_type.message(2, &|shape| {
                info.dims.iter().try_for_each(|dim| {
                    shape.message(1, &|d| match dim {
                        Dim::Fixed(v) => d.int(1, *v),
                        Dim::Named(name) => d.string(2, name),
                    })
                })
            })
        })
    })
}

pub fn write_tensor(w: &mut Writer, t: &Tensor) -> io::Result<()> {
    w.packed_ints(1, &t.dims)?;
    w.int(2, t.elem_type as i64)?;
    w.string(8, &t.name)?;
    match &t.data {
        TensorData::Raw(_) | TensorData::Floats(_) => w.bytes(9, t.data.bytes().expect("inline data")),
        TensorData::External { location, offset, len } => {
            for (key, value) in [("location", location.clone()), ("offset", offset.to_string()), ("length", len.to_string())] {
                w.message(13, &|entry| {
                    entry.string(1, key)?;
                    entry.string(2, &value)
                })?;
            }
            w.int(14, 1) // data_location = EXTERNAL
        }
    }
}

fn write_attribute(w: &mut Writer, name: &str, attribute: &Attribute) -> io::Result<()> {
    w.string(1, name)?;
    // The value's field, then AttributeProto.type.
    match attribute {
        Attribute::Float(v) => {
            w.float(2, *v)?;
            w.int(20, 1)
        }
        Attribute::Int(v) => {
            w.int(3, *v)?;
            w.int(20, 2)
        }
        Attribute::String(v) => {
            w.string(4, v)?;
            w.int(20, 3)
        }
        Attribute::Tensor(t) => {
            w.message(5, &|m| write_tensor(m, t))?;
            w.int(20, 4)
        }
        Attribute::Ints(values) => {
            w.packed_ints(8, values)?;
            w.int(20, 7)
        }
    }
}

fn write_node(w: &mut Writer, node: &Node) -> io::Result<()> {
    node.inputs.iter().try_for_each(|input| w.string(1, input))?;
    node.outputs.iter().try_for_each(|output| w.string(2, output))?;
    w.string(3, &node.name)?;
    w.string(4, &node.op_type)?;
    node.attributes.iter().try_for_each(|(name, a)| w.message(5, &|m| write_attribute(m, name, a)))?;
    if !node.domain.is_empty() {
        w.string(7, &node.domain)?;
    }
    Ok(())
}

fn write_graph(g: &mut Writer, model: &Model) -> io::Result<()> {
    model.nodes.iter().try_for_each(|node| g.message(1, &|n| write_node(n, node)))?;
    g.string(2, &model.graph_name)?;
    model.initializers.iter().try_for_each(|tensor| g.message(5, &|t| write_tensor(t, tensor)))?;
    model.inputs.iter().try_for_each(|input| g.message(11, &|v| write_value_info(v, input)))?;
    model.outputs.iter().try_for_each(|output| g.message(12, &|v| write_value_info(v, output)))
}

/// Writes the `ModelProto` to `sink`.
pub fn encode(model: &Model, sink: &mut dyn Sink) -> io::Result<()> {
    let mut w = Writer::new(sink);
    w.int(1, model.ir_version)?;
    w.string(2, &model.producer_name)?;
    w.string(3, &model.producer_version)?;
    w.message(7, &|g| write_graph(g, model))?;
    for (domain, version) in &model.opsets {
        w.message(8, &|o| {
            o.string(1, domain)?;
            o.int(2, *version)
        })?;
    }
    for (key, value) in &model.metadata {
        w.message(14, &|e| {
            e.string(1, key)?;
            e.string(2, value)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(write: impl Fn(&mut Writer) -> io::Result<()>) -> Vec<u8> {
        let mut buf = Vec::new();
        write(&mut Writer::new(&mut buf)).unwrap();
        buf
    }

    #[test]
    fn varints_and_negative_ints_follow_protobuf() {
        assert_eq!(encoded(|w| w.int(1, 300)), vec![0x08, 0xac, 0x02]);
        let minus_one = encoded(|w| w.int(1, -1)); // int64 -1 is ten bytes on the wire
        assert_eq!(minus_one.len(), 11);
        assert_eq!(minus_one[10], 0x01);
    }

    #[test]
    fn nested_messages_are_prefixed_with_their_length() {
        let bytes = encoded(|w| w.message(2, &|inner| inner.string(1, "abc")));
        assert_eq!(bytes, vec![0x12, 5, 0x0a, 3, b'a', b'b', b'c']);
    }
}
