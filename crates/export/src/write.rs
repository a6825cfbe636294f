//! Serializing the graph to `model.onnx`, moving the weights to `model.onnx.data` when the
//! model would pass protobuf's 2 GB limit. Each file is written whole or not at all
//! (`simcse_core::atomic`).

use crate::onnx::graph::{Graph, MS_DOMAIN};
use crate::onnx::proto::{encode, Model, TensorData};
use crate::ExportError;
use simcse_core::atomic;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ONNX_FILE: &str = "model.onnx";
/// Opset 17 has LayerNormalization; ONNX Runtime 1.31 and tract 0.23 run it.
pub const OPSET: i64 = 17;
/// IR version 8 goes with opset 17.
const IR_VERSION: i64 = 8;
/// Protobuf cannot serialize 2 GB; past this much weight data, weights go to an external file.
const EXTERNAL_DATA_THRESHOLD: u64 = 1_800_000_000;
/// Small tensors (shapes, scalars) stay inline even then.
const EXTERNAL_MIN_BYTES: usize = 1024;
const EXTERNAL_ALIGNMENT: u64 = 64;

pub struct Written {
    pub bytes: u64,
    pub external_data: Option<PathBuf>,
}

/// `external`: move the weights out even below the threshold.
pub fn write_model(mut graph: Graph, metadata: Vec<(String, String)>, path: &Path, external: bool) -> Result<Written, ExportError> {
    let weight_bytes: u64 = graph
        .initializers
        .iter()
        .map(|t| match &t.data {
            TensorData::External { len, .. } => *len,
            inline => inline.bytes().map_or(0, |b| b.len() as u64),
        })
        .sum();
    let data_path = PathBuf::from(format!("{}.data", path.display()));
    let mut external_data = None;
    let mut total = 0;
    if external || weight_bytes > EXTERNAL_DATA_THRESHOLD {
        let location = data_path.file_name().unwrap().to_string_lossy().into_owned();
        let mut offset = 0u64;
        atomic::write_file(&data_path, |file| {
            for tensor in &mut graph.initializers {
                let Some(bytes) = tensor.data.bytes() else { continue };
                if bytes.len() < EXTERNAL_MIN_BYTES {
                    continue;
                }
                let padding = offset.next_multiple_of(EXTERNAL_ALIGNMENT) - offset;
                file.write_all(&vec![0; padding as usize])?;
                offset += padding;
                file.write_all(bytes)?;
                let len = bytes.len() as u64;
                tensor.data = TensorData::External { location: location.clone(), offset, len };
                offset += len;
            }
            Ok(())
        })?;
        total += offset;
        external_data = Some(data_path);
    }
    let mut opsets = vec![(String::new(), OPSET)];
    if graph.uses_domain(MS_DOMAIN) {
        opsets.push((MS_DOMAIN.to_string(), 1));
    }
    let model = Model {
        ir_version: IR_VERSION,
        opsets,
        producer_name: "simcse-rs".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph_name: "simcse_encoder".into(),
        nodes: graph.nodes,
        initializers: graph.initializers,
        inputs: graph.inputs,
        outputs: graph.outputs,
        metadata,
    };
    atomic::write_file(path, |file| encode(&model, file))?;
    total += std::fs::metadata(path).map_err(|error| ExportError::Io { path: path.to_path_buf(), error })?.len();
    Ok(Written { bytes: total, external_data })
}
