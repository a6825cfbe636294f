//! Writing a state dict as `torch.save` does since PyTorch 1.6 (`pytorch_model.bin`), for the
//! tools that read only that format (SimCSE's `simcse_to_huggingface.py`): a stored ZIP with
//! `data.pkl` (a protocol-2 pickle of a dict of `torch._utils._rebuild_tensor_v2`
//! calls over persistent storage ids), one 64-byte-aligned record per storage, `byteorder` and
//! `version`. Only globals `torch.load(weights_only=True)` allows are written.

use crate::dtype::DType;
use std::io::Write;

/// One tensor to write: contiguous little-endian bytes of `shape` in `dtype`.
pub struct TensorRecord<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

/// Past this, a ZIP needs ZIP64 records, which this writer does not produce.
pub const MAX_ARCHIVE_BYTES: u64 = u32::MAX as u64;
const ALIGNMENT: u64 = 64;
/// The archive's top folder; torch.load takes whatever name the records share.
const ARCHIVE: &str = "archive";

fn storage_class(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "DoubleStorage",
        DType::F32 => "FloatStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::I8 => "CharStorage",
        DType::U8 => "ByteStorage",
        DType::Bool => "BoolStorage",
    }
}

/// The bytes of a pickle, built opcode by opcode (protocol 2, as torch.save writes).
struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, text: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn int(&mut self, value: u64) {
        match value {
            0..=0xff => self.0.extend_from_slice(&[b'K', value as u8]),
            0x100..=0xffff => {
                self.0.push(b'M');
                self.0.extend_from_slice(&(value as u16).to_le_bytes());
            }
            0x1_0000..=0x7fff_ffff => {
                self.0.push(b'J');
                self.0.extend_from_slice(&(value as i32).to_le_bytes());
            }
            _ => {
                // LONG1: little-endian two's complement in as few bytes as keep it positive.
                let mut bytes = value.to_le_bytes().to_vec();
                while bytes.len() > 1 && bytes[bytes.len() - 1] == 0 && bytes[bytes.len() - 2] & 0x80 == 0 {
                    bytes.pop();
                }
                if bytes[bytes.len() - 1] & 0x80 != 0 {
                    bytes.push(0);
                }
                self.0.extend_from_slice(&[0x8a, bytes.len() as u8]);
                self.0.extend_from_slice(&bytes);
            }
        }
    }

    fn tuple_of_ints(&mut self, values: &[usize]) {
        self.0.push(b'(');
        values.iter().for_each(|&v| self.int(v as u64));
        self.0.push(b't');
    }

    fn op(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// `data.pkl`: `{name: _rebuild_tensor_v2(storage_i, 0, shape, strides, False, OrderedDict()), ...}`.
/// A plain dict rather than the `OrderedDict` of `state_dict()`: torch.load and transformers
/// take either, and libtorch's own unpickler (`torch::pickle_load`) reads only a dict.
fn state_dict_pickle(tensors: &[TensorRecord]) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.op(b'}');
    p.op(b'(');
    for (key, tensor) in tensors.iter().enumerate() {
        p.string(tensor.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // persistent id ('storage', torch.XStorage, key, 'cpu', numel)
        p.op(b'(');
        p.string("storage");
        p.global("torch", storage_class(tensor.dtype));
        p.string(&key.to_string());
        p.string("cpu");
        p.int(tensor.shape.iter().fold(1usize, |n, &d| n.wrapping_mul(d)) as u64);
        p.op(b't');
        p.op(b'Q');
        p.int(0);
        p.tuple_of_ints(tensor.shape);
        let mut strides = vec![1usize; tensor.shape.len()];
        for i in (0..tensor.shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1].wrapping_mul(tensor.shape[i + 1]);
        }
        p.tuple_of_ints(&strides);
        p.op(0x89); // False: requires_grad
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u');
    p.op(b'.');
    p.0
}

struct Entry {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

/// A stored (uncompressed) ZIP written front to back, each record's data 64-byte aligned as
/// torch.save aligns them (padding in an extra field `FB`).
struct ZipWriter<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Entry>,
}

impl<W: Write> ZipWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn record(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let offset = self.written;
        let header_end = offset + 30 + name.len() as u64 + 4;
        let padding = (ALIGNMENT - header_end % ALIGNMENT) % ALIGNMENT;
        let crc = crc32fast::hash(data);
        let size = data.len() as u32;
        let mut header = Vec::with_capacity(30 + name.len() + 4 + padding as usize);
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, stored, time, date
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&(4 + padding as u16).to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(b"FB");
        header.extend_from_slice(&(padding as u16).to_le_bytes());
        header.resize(header.len() + padding as usize, 0);
        self.put(&header)?;
        self.put(data)?;
        self.entries.push(Entry { name: name.to_string(), crc, size, offset: offset as u32 });
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<W> {
        let directory_start = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let mut header = Vec::with_capacity(46 + e.name.len());
            header.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            header.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
            header.extend_from_slice(&e.crc.to_le_bytes());
            header.extend_from_slice(&e.size.to_le_bytes());
            header.extend_from_slice(&e.size.to_le_bytes());
            header.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            header.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
            header.extend_from_slice(&e.offset.to_le_bytes());
            header.extend_from_slice(e.name.as_bytes());
            self.put(&header)?;
        }
        let directory_len = self.written - directory_start;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0, 0, 0, 0]);
        end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        end.extend_from_slice(&(directory_len as u32).to_le_bytes());
        end.extend_from_slice(&(directory_start as u32).to_le_bytes());
        end.extend_from_slice(&[0, 0]);
        self.put(&end)?;
        Ok(self.out)
    }
}

/// The archive's size, known before writing: callers check it against [`MAX_ARCHIVE_BYTES`].
pub fn archive_size(tensors: &[TensorRecord]) -> u64 {
    let records = tensors.len() as u64 + 3;
    let data: u64 = tensors.iter().map(|t| t.data.len() as u64).sum();
    // Headers, names and padding are at most a few hundred bytes a record.
    data + records * 256 + state_dict_pickle(tensors).len() as u64
}

/// Writes the state dict to `out` in torch.save's format.
pub fn write_state_dict<W: Write>(out: W, tensors: &[TensorRecord]) -> std::io::Result<W> {
    for t in tensors {
        let expected = t.shape.iter().try_fold(t.dtype.size(), |n, &d| n.checked_mul(d));
        if expected != Some(t.data.len()) {
            return Err(std::io::Error::other(format!("tensor `{}`: {} bytes for shape {:?}", t.name, t.data.len(), t.shape)));
        }
    }
    if archive_size(tensors) > MAX_ARCHIVE_BYTES {
        return Err(std::io::Error::other("past 4 GB, a PyTorch checkpoint needs ZIP64 records, which are not written"));
    }
    write_records(out, tensors)
}

/// The archive, the records taken as they are.
fn write_records<W: Write>(out: W, tensors: &[TensorRecord]) -> std::io::Result<W> {
    let mut zip = ZipWriter { out, written: 0, entries: Vec::new() };
    zip.record(&format!("{ARCHIVE}/data.pkl"), &state_dict_pickle(tensors))?;
    zip.record(&format!("{ARCHIVE}/byteorder"), b"little")?;
    for (key, tensor) in tensors.iter().enumerate() {
        zip.record(&format!("{ARCHIVE}/data/{key}"), tensor.data)?;
    }
    zip.record(&format!("{ARCHIVE}/version"), b"3\n")?;
    zip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn write_and_read(tensors: &[TensorRecord], records: bool) -> Result<crate::checkpoint::Checkpoint, crate::ConvertError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pytorch_model.bin");
        let bytes = if records { write_records(Vec::new(), tensors) } else { write_state_dict(Vec::new(), tensors) }.unwrap();
        std::fs::write(&path, bytes).unwrap();
        Source::locate(&path)?.read()
    }

    #[test]
    fn the_archive_reads_back_as_torch_save_s_format() {
        let values: Vec<u8> = (0..6).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        let ids: Vec<u8> = (0..300i64).flat_map(|i| (i * 70_000).to_le_bytes()).collect();
        let tensors = [
            TensorRecord { name: "encoder.weight", dtype: DType::F32, shape: &[2, 3], data: &values },
            TensorRecord { name: "position_ids", dtype: DType::I64, shape: &[1, 300], data: &ids },
        ];
        let checkpoint = write_and_read(&tensors, false).unwrap();
        assert_eq!(checkpoint.format, crate::checkpoint::SourceFormat::TorchZip);
        let read: Vec<(String, DType, Vec<usize>, Vec<usize>)> =
            checkpoint.tensors.iter().map(|t| (t.name.clone(), t.dtype, t.shape.clone(), t.strides.clone())).collect();
        assert_eq!(read, [
            ("encoder.weight".to_string(), DType::F32, vec![2, 3], vec![3, 1]),
            ("position_ids".to_string(), DType::I64, vec![1, 300], vec![300, 1]),
        ]);
    }

    #[test]
    fn a_shape_whose_element_count_overflows_64_bits_fails_the_storage_check() {
        // 2^32 x 2^32 elements: the product wraps to 0, which once passed for an empty tensor.
        let huge = [1usize << 32, 1usize << 32];
        assert!(write_state_dict(Vec::new(), &[TensorRecord { name: "w", dtype: DType::F32, shape: &huge, data: &[] }]).is_err());
        let err = write_and_read(&[TensorRecord { name: "w", dtype: DType::F32, shape: &huge, data: &[] }], true).unwrap_err();
        assert!(err.to_string().contains("more elements than 64 bits can count"), "{err}");
    }
}
