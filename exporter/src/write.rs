//! Serializing the graph to `model.onnx`, moving the weights to `model.onnx.data` when the
//! model would pass protobuf's 2 GB limit. Files are written under temporary names and
//! renamed, so a failure never leaves a half-written model.

use crate::onnx::graph::{Graph, MS_DOMAIN};
use crate::onnx::proto::{encode, Model, TensorData};
use crate::ExportError;
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
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, error: source }
    };
    let weight_bytes: u64 = graph
        .initializers
        .iter()
        .map(|t| match &t.data {
            TensorData::External { len, .. } => *len,
            inline => inline.bytes().map_or(0, |b| b.len() as u64),
        })
        .sum();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let data_path = PathBuf::from(format!("{}.data", path.display()));
    let mut external_data = None;
    let mut total = 0;
    if external || weight_bytes > EXTERNAL_DATA_THRESHOLD {
        let location = data_path.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = temporary(&data_path);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
        let mut offset = 0u64;
        for tensor in &mut graph.initializers {
            let Some(bytes) = tensor.data.bytes() else { continue };
            if bytes.len() < EXTERNAL_MIN_BYTES {
                continue;
            }
            let padding = offset.next_multiple_of(EXTERNAL_ALIGNMENT) - offset;
            file.write_all(&vec![0; padding as usize]).map_err(io(&tmp))?;
            offset += padding;
            file.write_all(bytes).map_err(io(&tmp))?;
            let len = bytes.len() as u64;
            tensor.data = TensorData::External { location: location.clone(), offset, len };
            offset += len;
        }
        file.into_inner().map_err(|e| ExportError::Io { path: tmp.clone(), error: e.into_error() })?;
        std::fs::rename(&tmp, &data_path).map_err(io(&data_path))?;
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
    let tmp = temporary(path);
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(io(&tmp))?);
    let written = encode(&model, &mut file).and_then(|_| file.flush());
    drop(file);
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ExportError::Io { path: tmp, error });
    }
    total += std::fs::metadata(&tmp).map_err(io(&tmp))?.len();
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(Written { bytes: total, external_data })
}

fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}
