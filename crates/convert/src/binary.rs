//! What the readers of single-file model formats (E5S1, GGUF) share: a cursor that checks
//! every read against the file's length, and the writing of the model directory they unpack
//! into (JSON files and one f32 safetensors file).

use crate::ConvertError;
use serde_json::Value;
use std::path::Path;

/// True when the file starts with `magic`.
pub fn starts_with(path: &Path, magic: &[u8; 4]) -> Result<bool, ConvertError> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|error| ConvertError::Io { path: path.into(), error })?;
    Ok(file.read(&mut head).map_err(|error| ConvertError::Io { path: path.into(), error })? == 4 && &head == magic)
}

/// Reads a little-endian file front to back. `format` names the format in errors ("a damaged
/// GGUF file: ...").
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub at: usize,
    pub path: &'a Path,
    pub format: &'static str,
}

impl Cursor<'_> {
    pub fn take(&mut self, n: usize, what: &str) -> Result<&[u8], ConvertError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len()).ok_or_else(|| ConvertError::Truncated {
            path: self.path.into(),
            why: format!("the {what} at byte {} runs past the end of the file ({} bytes)", self.at, self.data.len()),
        })?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, ConvertError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    pub fn f32(&mut self, what: &str) -> Result<f32, ConvertError> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// An i32 that must be a count or index: 0 to `max`.
    pub fn count(&mut self, what: &str, max: usize) -> Result<usize, ConvertError> {
        let value = self.u32(what)? as i32;
        usize::try_from(value).ok().filter(|&v| v <= max).ok_or_else(|| self.bad(format!("{what} is {value}, outside 0..={max}")))
    }
    /// A u64 that must be a count no larger than `max` (and than what is left of the file
    /// at `min_bytes` apiece, so that a damaged count cannot make us allocate the world).
    pub fn count_u64(&mut self, what: &str, max: usize, min_bytes: usize) -> Result<usize, ConvertError> {
        let value = self.u64(what)?;
        let left = (self.data.len() - self.at) / min_bytes.max(1);
        usize::try_from(value)
            .ok()
            .filter(|&v| v <= max && v <= left)
            .ok_or_else(|| self.bad(format!("{what} is {value}, more than the file's {} bytes can hold (is it cut short?)", self.data.len())))
    }
    pub fn bad(&self, why: String) -> ConvertError {
        damaged(self.path, self.format, why)
    }
}

pub fn damaged(path: &Path, format: &str, why: String) -> ConvertError {
    ConvertError::NotACheckpoint { path: path.into(), why: format!("a damaged {format} file: {why}") }
}

/// Writes `value` as pretty JSON to `dir/name`, making `name`'s folders.
pub fn write_json(dir: &Path, name: &str, value: &Value) -> Result<(), ConvertError> {
    write_file(dir, name, &serde_json::to_vec_pretty(value).expect("serializable"))
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ConvertError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| ConvertError::Io { path: parent.into(), error })?;
    }
    std::fs::write(&path, bytes).map_err(|error| ConvertError::Io { path, error })
}

/// Writes `dir/model.safetensors` in f32 from `(name, shape)` pairs whose values `values`
/// computes one at a time; `progress` gets bytes done and the total, and returns false to
/// stop (an interrupt, reported against `source`).
pub fn write_f32_safetensors(
    dir: &Path,
    source: &Path,
    tensors: &[(String, Vec<usize>)],
    values: &dyn Fn(usize) -> Result<Vec<f32>, ConvertError>,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<(), ConvertError> {
    let total: u64 = tensors.iter().map(|(_, shape)| shape.iter().product::<usize>() as u64 * 4).sum();
    let mut done = 0u64;
    let mut bytes = Vec::with_capacity(tensors.len());
    for index in 0..tensors.len() {
        let tensor: Vec<u8> = values(index)?.iter().flat_map(|v| v.to_le_bytes()).collect();
        done += tensor.len() as u64;
        if !progress(done, total) {
            return Err(ConvertError::Interrupted { path: source.into() });
        }
        bytes.push(tensor);
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape), bytes)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).expect("sizes match"))
        })
        .collect();
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).map_err(|e| ConvertError::Io { path, error: std::io::Error::other(e.to_string()) })
}
