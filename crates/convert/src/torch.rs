//! Reading `torch.save` checkpoints without PyTorch: the ZIP format (PyTorch >= 1.6) and the
//! legacy pickle-stream format. Both pickle the state dict with storages as persistent ids;
//! the storages' bytes live in ZIP records or after the pickles.

use crate::checkpoint::{check_view, Checkpoint, SourceFormat, SourceTensor, Storage};
use crate::dtype::DType;
use crate::pickle::{self, Handler, PickleErrorKind, Value};
use crate::zip::ZipArchive;
use crate::ConvertError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

/// A storage as the pickle refers to it: an entry of the checkpoint's storage table, seen
/// from `elem_offset` on (legacy checkpoints could pickle views of storages).
#[derive(Debug)]
struct StorageRef {
    index: usize,
    elem_offset: usize,
    dtype: DType,
}

/// Locates storages given their persistent id `('storage', StorageClass, key, location, numel, ...)`.
trait StorageTable {
    fn storage(&mut self, dtype: DType, key: &str, numel: u64, view: Option<(String, usize, usize)>)
        -> Result<StorageRef, PickleErrorKind>;
}

/// The allow list: what a PyTorch state dict is made of, and nothing else.
struct TorchHandler<T> {
    table: T,
}

const ALLOWED_FUNCTIONS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
];

fn unsupported(why: impl Into<String>) -> PickleErrorKind {
    PickleErrorKind::Unsupported(why.into())
}

fn arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a Value, PickleErrorKind> {
    args.get(i).ok_or_else(|| PickleErrorKind::Corrupt(format!("{what} is missing")))
}

fn usize_list(value: &Value, what: &str) -> Result<Vec<usize>, PickleErrorKind> {
    value
        .as_seq()
        .and_then(|items| items.iter().map(|v| v.as_int().and_then(|i| usize::try_from(i).ok())).collect())
        .ok_or_else(|| PickleErrorKind::Corrupt(format!("{what} is not a tuple of sizes: {value:?}")))
}

impl<T: StorageTable> TorchHandler<T> {
    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None)`
    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, PickleErrorKind> {
        let storage = arg(args, 0, "the tensor's storage")?
            .downcast::<StorageRef>()
            .ok_or_else(|| PickleErrorKind::Corrupt("a tensor whose storage is not a storage".into()))?;
        let offset = arg(args, 1, "the storage offset")?
            .as_int()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| PickleErrorKind::Corrupt("a bad storage offset".into()))?;
        let shape = usize_list(arg(args, 2, "the tensor's size")?, "the tensor's size")?;
        let strides = usize_list(arg(args, 3, "the tensor's stride")?, "the tensor's stride")?;
        let tensor = SourceTensor {
            name: String::new(),
            dtype: storage.dtype,
            shape,
            strides,
            storage: storage.index,
            offset: offset + storage.elem_offset,
        };
        Ok(Value::Object(Rc::new(tensor)))
    }
}

impl<T: StorageTable> Handler for TorchHandler<T> {
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value, PickleErrorKind> {
        let qualified = format!("{module}.{name}");
        let is_storage_class = module == "torch" && DType::from_torch_storage(name).is_some();
        if is_storage_class || ALLOWED_FUNCTIONS.contains(&qualified.as_str()) {
            Ok(Value::Global(qualified.into()))
        } else {
            Err(PickleErrorKind::RefusedGlobal { module: module.into(), name: name.into() })
        }
    }

    fn call(&mut self, callable: &str, args: Vec<Value>) -> Result<Value, PickleErrorKind> {
        match callable {
            "collections.OrderedDict" => match args.first() {
                None => Ok(Value::Dict(Default::default())),
                Some(items) => {
                    let items = items.as_seq().unwrap_or_default();
                    let pairs = items.iter().map(|pair| match pair.as_seq().as_deref() {
                        Some([key, value]) => Ok((key.clone(), value.clone())),
                        _ => Err(PickleErrorKind::Corrupt("OrderedDict items are not pairs".into())),
                    });
                    Ok(Value::Dict(Rc::new(pairs.collect::<Result<Vec<_>, _>>()?.into())))
                }
            },
            "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" => self.rebuild_tensor(&args),
            // A Parameter is its data; requires_grad and hooks do not matter to a converter.
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                let data = arg(&args, 0, "the parameter's data")?;
                match data.downcast::<SourceTensor>() {
                    Some(_) => Ok(data.clone()),
                    None => Err(PickleErrorKind::Corrupt("a parameter whose data is not a tensor".into())),
                }
            }
            other => Err(unsupported(format!("calling `{other}`"))),
        }
    }

    fn persistent_load(&mut self, pid: Value) -> Result<Value, PickleErrorKind> {
        let fields = pid.as_seq().unwrap_or_default();
        match fields.first().and_then(Value::as_str) {
            Some("storage") => {}
            Some(other) => return Err(unsupported(format!("a persistent id of kind `{other}` (a pickled module?)"))),
            None => return Err(PickleErrorKind::Corrupt(format!("a malformed persistent id {pid:?}"))),
        }
        let class = match fields.get(1) {
            Some(Value::Global(name)) => name.clone(),
            other => return Err(PickleErrorKind::Corrupt(format!("a storage without its class: {other:?}"))),
        };
        let dtype = class
            .strip_prefix("torch.")
            .and_then(DType::from_torch_storage)
            .ok_or_else(|| unsupported(format!("storage class `{class}`")))?;
        let key = match fields.get(2) {
            Some(Value::Str(key)) => key.to_string(),
            Some(Value::Int(key)) => key.to_string(),
            other => return Err(PickleErrorKind::Corrupt(format!("a storage with a bad key {other:?}"))),
        };
        let numel = fields
            .get(4)
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| PickleErrorKind::Corrupt("a storage without its element count".into()))?;
        // Legacy checkpoints may describe a view: (view_key, offset, view_numel).
        let view = match fields.get(5) {
            None | Some(Value::None) => None,
            Some(view) => match view.as_seq().as_deref() {
                Some([Value::Str(view_key), offset, size]) => Some((
                    view_key.to_string(),
                    offset.as_int().unwrap_or(-1).try_into().map_err(|_| PickleErrorKind::Corrupt("bad view offset".into()))?,
                    size.as_int().unwrap_or(-1).try_into().map_err(|_| PickleErrorKind::Corrupt("bad view size".into()))?,
                )),
                _ => return Err(PickleErrorKind::Corrupt(format!("malformed storage view {view:?}"))),
            },
        };
        let storage = self.table.storage(dtype, &key, numel, view)?;
        Ok(Value::Object(Rc::new(storage)))
    }
}

/// Turns the unpickled object into named tensors: a (nested) dict of tensors. Nested dicts
/// (`{"model": state_dict, "epoch": 3}`) are flattened with dots; other values are skipped.
fn collect_tensors(root: &Value, path: &Path) -> Result<(Vec<SourceTensor>, Vec<String>), ConvertError> {
    let Value::Dict(_) = root else {
        return Err(ConvertError::NotACheckpoint {
            path: path.into(),
            why: format!("its pickle holds a {}, not a state dict (a dict of tensors)", root.kind()),
        });
    };
    let (mut tensors, mut skipped) = (Vec::new(), Vec::new());
    let mut pending = vec![(String::new(), root.clone())];
    while let Some((prefix, value)) = pending.pop() {
        let Value::Dict(items) = &value else { unreachable!() };
        for (key, item) in items.borrow().iter() {
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                other => {
                    skipped.push(format!("{prefix}<{} key>", other.kind()));
                    continue;
                }
            };
            let name = format!("{prefix}{key}");
            if let Some(tensor) = item.downcast::<SourceTensor>() {
                tensors.push(SourceTensor { name, ..(*tensor).clone() });
            } else if let Value::Dict(_) = item {
                pending.push((format!("{name}."), item.clone()));
            } else {
                skipped.push(name);
            }
        }
    }
    Ok((tensors, skipped))
}

fn pickle_error(path: &Path, e: pickle::PickleError) -> ConvertError {
    match e.kind {
        PickleErrorKind::RefusedGlobal { module, name } => ConvertError::RefusedGlobal { path: path.into(), module, name },
        kind => ConvertError::BadPickle { path: path.into(), offset: e.offset, why: kind.to_string() },
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io { path: path.into(), error: source }
}

fn check_views(tensors: &[SourceTensor], storages: &[Storage], path: &Path) -> Result<(), ConvertError> {
    for tensor in tensors {
        check_view(tensor, &storages[tensor.storage])
            .map_err(|why| ConvertError::BadTensor { path: path.into(), name: tensor.name.clone(), why })?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the ZIP format

struct ZipStorages<'a> {
    archive: &'a ZipArchive,
    file: &'a File,
    prefix: String,
    by_key: HashMap<String, usize>,
    storages: Vec<Storage>,
}

impl StorageTable for ZipStorages<'_> {
    fn storage(&mut self, dtype: DType, key: &str, numel: u64, _view: Option<(String, usize, usize)>)
        -> Result<StorageRef, PickleErrorKind> {
        if let Some(&index) = self.by_key.get(key) {
            if self.storages[index].dtype != dtype {
                return Err(unsupported(format!("storage {key} is used with two dtypes")));
            }
            return Ok(StorageRef { index, elem_offset: 0, dtype });
        }
        let record = format!("{}data/{key}", self.prefix);
        let entry = self
            .archive
            .find(&record)
            .ok_or_else(|| PickleErrorKind::Corrupt(format!("storage record `{record}` is missing from the archive")))?;
        let range = self.archive.data_range(self.file, entry).map_err(PickleErrorKind::Corrupt)?;
        let needed = numel * dtype.size() as u64;
        if range.len < needed {
            return Err(PickleErrorKind::Corrupt(format!(
                "storage record `{record}` holds {} bytes, but {numel} {dtype} elements need {needed}",
                range.len
            )));
        }
        let index = self.storages.len();
        self.storages.push(Storage { file: 0, offset: range.offset, len: needed, dtype });
        self.by_key.insert(key.to_string(), index);
        Ok(StorageRef { index, elem_offset: 0, dtype })
    }
}

pub fn read_zip(path: &Path, file: &File) -> Result<Checkpoint, ConvertError> {
    let bad_zip = |why: String| ConvertError::BadZip { path: path.into(), why };
    let archive = ZipArchive::open(file).map_err(bad_zip)?;
    let data_pkl = archive
        .entries
        .iter()
        .find(|e| e.name.ends_with("data.pkl") && e.name.matches('/').count() <= 1)
        .ok_or_else(|| ConvertError::NotACheckpoint {
            path: path.into(),
            why: "a zip archive without `data.pkl`: not written by torch.save".into(),
        })?;
    let prefix = data_pkl.name.trim_end_matches("data.pkl").to_string();
    if let Some(entry) = archive.find(&format!("{prefix}byteorder")) {
        let range = archive.data_range(file, entry).map_err(bad_zip)?;
        let mut order = vec![0; range.len.min(16) as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut order, range.offset).map_err(io_error(path))?;
        if order != b"little" {
            return Err(ConvertError::Unsupported {
                path: path.into(),
                why: format!("byte order `{}`: only little-endian checkpoints are supported", String::from_utf8_lossy(&order)),
            });
        }
    }
    let range = archive.data_range(file, data_pkl).map_err(bad_zip)?;
    let mut pickle_bytes = vec![0; range.len as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut pickle_bytes, range.offset).map_err(io_error(path))?;

    let table = ZipStorages { archive: &archive, file, prefix, by_key: HashMap::new(), storages: Vec::new() };
    let mut handler = TorchHandler { table };
    let (root, _) = pickle::load(&pickle_bytes[..], range.len, &mut handler).map_err(|e| pickle_error(path, e))?;
    let storages = std::mem::take(&mut handler.table.storages);
    let (tensors, skipped) = collect_tensors(&root, path)?;
    check_views(&tensors, &storages, path)?;
    Ok(Checkpoint { format: SourceFormat::TorchZip, files: vec![path.into()], storages, tensors, aliases: vec![], skipped })
}

// ---------------------------------------------------------------- the legacy format

/// `torch.serialization.MAGIC_NUMBER`, little-endian, as pickle's LONG1 carries it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// True when the file starts with the pickled legacy magic number (protocol 2 or later).
pub fn looks_like_legacy(head: &[u8]) -> bool {
    head.len() >= 15 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10 && head[4..14] == LEGACY_MAGIC
}

#[derive(Default)]
struct LegacyStorages {
    by_key: HashMap<String, usize>,
    /// (key, numel) of each storage in table order; offsets are filled in after the pickles.
    keys: Vec<(String, u64)>,
    storages: Vec<Storage>,
}

impl StorageTable for LegacyStorages {
    fn storage(&mut self, dtype: DType, key: &str, numel: u64, view: Option<(String, usize, usize)>)
        -> Result<StorageRef, PickleErrorKind> {
        let index = match self.by_key.get(key) {
            Some(&index) => index,
            None => {
                let index = self.storages.len();
                self.storages.push(Storage { file: 0, offset: 0, len: numel * dtype.size() as u64, dtype });
                self.keys.push((key.to_string(), numel));
                self.by_key.insert(key.to_string(), index);
                index
            }
        };
        if self.storages[index].dtype != dtype {
            return Err(unsupported(format!("storage {key} is used with two dtypes")));
        }
        let elem_offset = match view {
            Some((_, offset, size)) if (offset + size) as u64 <= self.keys[index].1 => offset,
            Some(_) => return Err(PickleErrorKind::Corrupt(format!("a view past the end of storage {key}"))),
            None => 0,
        };
        Ok(StorageRef { index, elem_offset, dtype })
    }
}

/// Handler for the small pickles around the state dict (magic, version, sys info, key list):
/// plain data, no globals at all.
struct PlainData;

impl Handler for PlainData {
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value, PickleErrorKind> {
        Err(PickleErrorKind::RefusedGlobal { module: module.into(), name: name.into() })
    }
    fn call(&mut self, callable: &str, _: Vec<Value>) -> Result<Value, PickleErrorKind> {
        Err(unsupported(format!("calling `{callable}`")))
    }
    fn persistent_load(&mut self, _: Value) -> Result<Value, PickleErrorKind> {
        Err(unsupported("a persistent id outside the state dict"))
    }
}

/// Unpickles the next object of a legacy file and advances `pos` past it.
fn load_next<H: Handler>(
    reader: &mut BufReader<&File>,
    pos: &mut u64,
    file_len: u64,
    handler: &mut H,
    path: &Path,
) -> Result<Value, ConvertError> {
    let (value, used) = pickle::load(&mut *reader, file_len - *pos, handler).map_err(|e| {
        let e = pickle::PickleError { offset: e.offset + *pos, ..e };
        pickle_error(path, e)
    })?;
    *pos += used;
    Ok(value)
}

pub fn read_legacy(path: &Path, file: &File) -> Result<Checkpoint, ConvertError> {
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut reader = BufReader::new(file);
    let corrupt = |offset: u64, why: String| ConvertError::BadPickle { path: path.into(), offset, why };

    // Magic number: an 80-bit integer our Value cannot hold, so it is matched by its bytes.
    let mut head = [0u8; 15];
    reader.read_exact(&mut head).map_err(|_| truncated(path, 15, file_len))?;
    if !looks_like_legacy(&head) {
        return Err(ConvertError::NotACheckpoint { path: path.into(), why: "no PyTorch magic number".into() });
    }
    let mut pos = 15;
    let version = load_next(&mut reader, &mut pos, file_len, &mut PlainData, path)?;
    if version.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(corrupt(15, format!("legacy protocol version {version:?}, expected {LEGACY_PROTOCOL_VERSION}")));
    }
    let sys_info = load_next(&mut reader, &mut pos, file_len, &mut PlainData, path)?;
    if let Value::Dict(items) = &sys_info {
        let little_endian = items.borrow().iter().find(|(k, _)| k.as_str() == Some("little_endian")).and_then(|(_, v)| v.as_int());
        if little_endian == Some(0) {
            return Err(ConvertError::Unsupported { path: path.into(), why: "a big-endian checkpoint".into() });
        }
    }
    let mut handler = TorchHandler { table: LegacyStorages::default() };
    let root = load_next(&mut reader, &mut pos, file_len, &mut handler, path)?;
    let key_list_at = pos;
    let key_list = load_next(&mut reader, &mut pos, file_len, &mut PlainData, path)?;
    let keys: Vec<String> = key_list
        .as_seq()
        .and_then(|keys| keys.iter().map(|k| k.as_str().map(String::from)).collect())
        .ok_or_else(|| corrupt(key_list_at, "the storage key list is not a list of strings".into()))?;

    // The storages follow in key-list order, each as an 8-byte element count and its bytes.
    let table = &mut handler.table;
    if keys.len() != table.keys.len() {
        let why = format!("{} storages are listed but {} are used", keys.len(), table.keys.len());
        return Err(corrupt(key_list_at, why));
    }
    for key in &keys {
        let index = *table
            .by_key
            .get(key)
            .ok_or_else(|| corrupt(key_list_at, format!("storage {key} is listed but never used")))?;
        let mut count = [0u8; 8];
        reader.seek(SeekFrom::Start(pos)).map_err(io_error(path))?;
        reader.read_exact(&mut count).map_err(|_| truncated(path, pos + 8, file_len))?;
        let numel = u64::from_le_bytes(count);
        if numel != table.keys[index].1 {
            return Err(ConvertError::Truncated {
                path: path.into(),
                why: format!("storage {key} has {numel} elements on disk but {} in the pickle", table.keys[index].1),
            });
        }
        let storage = &mut table.storages[index];
        storage.offset = pos + 8;
        pos = storage.offset + storage.len;
        if pos > file_len {
            return Err(truncated(path, pos, file_len));
        }
    }
    let storages = std::mem::take(&mut table.storages);
    let (tensors, skipped) = collect_tensors(&root, path)?;
    check_views(&tensors, &storages, path)?;
    Ok(Checkpoint { format: SourceFormat::TorchLegacy, files: vec![path.into()], storages, tensors, aliases: vec![], skipped })
}

fn truncated(path: &Path, needed: u64, len: u64) -> ConvertError {
    ConvertError::Truncated { path: path.into(), why: format!("storage data needs {needed} bytes but the file has {len}") }
}
