//! Writing ONNX: the protobuf encoding and a small graph builder.

pub mod graph;
pub mod proto;
