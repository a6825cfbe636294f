//! Building an ONNX graph one node at a time: each call adds a node and returns the name of
//! its output, so that model code reads like the forward pass it encodes.

use super::proto::{Attribute, Dim, ElemType, Node, Tensor, TensorData, ValueInfo};
use half::f16;

/// The element type of weights and activations in the encoder's layers.
pub use simcse_core::Precision;

/// The ONNX element type of `precision`.
pub fn elem_type(precision: Precision) -> ElemType {
    match precision {
        Precision::F32 => ElemType::Float,
        Precision::F16 => ElemType::Float16,
        Precision::Bf16 => ElemType::Bfloat16,
    }
}

pub const MS_DOMAIN: &str = "com.microsoft";

#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    counter: usize,
}

pub fn int(v: i64) -> Attribute {
    Attribute::Int(v)
}

pub fn ints(v: &[i64]) -> Attribute {
    Attribute::Ints(v.to_vec())
}

pub fn float(v: f32) -> Attribute {
    Attribute::Float(v)
}

/// Encodes f32 values as the bytes of `precision`.
pub fn encode_floats(values: &[f32], precision: Precision) -> Vec<u8> {
    match precision {
        Precision::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Precision::F16 => values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
        Precision::Bf16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
    }
}

impl Graph {
    fn fresh(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{op}_{}", self.counter)
    }

    pub fn input(&mut self, name: &str, elem_type: ElemType, dims: Vec<Dim>) -> String {
        self.inputs.push(ValueInfo { name: name.into(), elem_type, dims });
        name.into()
    }

    /// Declares `value` a graph output under `name`.
    pub fn output(&mut self, value: &str, name: &str, elem_type: ElemType, dims: Vec<Dim>) {
        let value = if value == name { value.to_string() } else { self.named_op("Identity", &[value], vec![], name) };
        self.outputs.push(ValueInfo { name: value, elem_type, dims });
    }

    /// A floating-point initializer stored in `precision`.
    pub fn weight(&mut self, name: &str, dims: &[usize], values: Vec<f32>, precision: Precision) -> String {
        match precision {
            Precision::F32 => self.float_initializer(name, dims, values),
            Precision::F16 | Precision::Bf16 => {
                self.raw_initializer(name, elem_type(precision), dims, encode_floats(&values, precision))
            }
        }
    }

    /// An f32 initializer that takes ownership of its values (no copy for the large ones).
    pub fn float_initializer(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        debug_assert_eq!(values.len(), dims.iter().product::<usize>(), "{name}");
        self.initializers.push(Tensor {
            name: name.into(),
            elem_type: ElemType::Float,
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: TensorData::Floats(values),
        });
        name.into()
    }

    pub fn raw_initializer(&mut self, name: &str, elem_type: ElemType, dims: &[usize], bytes: Vec<u8>) -> String {
        debug_assert_eq!(bytes.len(), dims.iter().product::<usize>() * elem_type.size(), "{name}");
        self.initializers.push(Tensor {
            name: name.into(),
            elem_type,
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: TensorData::Raw(bytes),
        });
        name.into()
    }

    /// A constant int64 tensor (shapes, axes, indices).
    pub fn ints(&mut self, values: &[i64], dims: &[usize]) -> String {
        let name = self.fresh("const_i64");
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw_initializer(&name, ElemType::Int64, dims, bytes)
    }

    /// A scalar constant of the given float precision.
    pub fn scalar(&mut self, value: f32, precision: Precision) -> String {
        let name = self.fresh("const");
        self.raw_initializer(&name, elem_type(precision), &[], encode_floats(&[value], precision))
    }

    pub fn op(&mut self, op_type: &str, inputs: &[&str], attributes: Vec<(&str, Attribute)>) -> String {
        let name = self.fresh(op_type);
        self.named_op(op_type, inputs, attributes, &name)
    }

    fn named_op(&mut self, op_type: &str, inputs: &[&str], attributes: Vec<(&str, Attribute)>, output: &str) -> String {
        self.node("", op_type, inputs, &[output], attributes);
        output.to_string()
    }

    /// An op with several outputs; `None` leaves an optional output unused.
    pub fn op_outputs(
        &mut self,
        domain: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[bool],
        attributes: Vec<(&str, Attribute)>,
    ) -> Vec<String> {
        let names: Vec<String> =
            outputs.iter().map(|&used| if used { self.fresh(op_type) } else { String::new() }).collect();
        // Trailing unused optional outputs are simply left off.
        let last_used = outputs.iter().rposition(|&u| u).map_or(0, |i| i + 1);
        let declared: Vec<&str> = names[..last_used].iter().map(String::as_str).collect();
        self.node(domain, op_type, inputs, &declared, attributes);
        names
    }

    /// A com.microsoft contrib op with one output.
    pub fn ms_op(&mut self, op_type: &str, inputs: &[&str], attributes: Vec<(&str, Attribute)>) -> String {
        self.op_outputs(MS_DOMAIN, op_type, inputs, &[true], attributes).remove(0)
    }

    fn node(&mut self, domain: &str, op_type: &str, inputs: &[&str], outputs: &[&str], attributes: Vec<(&str, Attribute)>) {
        let name = format!("{}/{op_type}", outputs.first().copied().unwrap_or("node"));
        self.nodes.push(Node {
            op_type: op_type.into(),
            domain: domain.into(),
            name,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: attributes.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
    }

    pub fn uses_domain(&self, domain: &str) -> bool {
        self.nodes.iter().any(|n| n.domain == domain)
    }
}
