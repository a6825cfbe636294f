//! A minimal, safe unpickler: it understands pickle protocols 0 to 5 but executes nothing.
//!
//! Pickles can run arbitrary code: every `GLOBAL` and every call (`REDUCE`, `NEWOBJ`) goes through
//! a [`Handler`], which accepts the few callables a state dict needs and refuses all others.
//! The opcode names and semantics follow CPython's `Lib/pickletools.py`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::rc::Rc;

/// A Python value as far as state dicts need them.
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    /// Dicts keep insertion order, like Python's.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A class or function the handler allowed, by its qualified name (`module.name`).
    Global(Rc<str>),
    /// Whatever the handler made of a call or a persistent id (a tensor, a storage).
    Object(Rc<dyn Any>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or a list.
    pub fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(items) => Some(items.to_vec()),
            Value::List(items) => Some(items.borrow().clone()),
            _ => None,
        }
    }

    pub fn downcast<T: 'static>(&self) -> Option<Rc<T>> {
        match self {
            Value::Object(obj) => obj.clone().downcast::<T>().ok(),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class",
            Value::Object(_) => "object",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Tuple(items) => f.debug_tuple("").field(items).finish(),
            Value::List(items) => f.debug_list().entries(items.borrow().iter()).finish(),
            Value::Dict(items) => f
                .debug_map()
                .entries(items.borrow().iter().map(|(k, v)| (k.clone(), v.clone())))
                .finish(),
            Value::Global(name) => write!(f, "<{name}>"),
            Value::Object(_) => f.write_str("<object>"),
        }
    }
}

/// Decides what globals, calls and persistent ids mean. Anything it does not know is an error.
pub trait Handler {
    /// `GLOBAL module name`: return `Value::Global` for an allowed name, or refuse it.
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value, PickleErrorKind>;
    /// `REDUCE` and `NEWOBJ`: call an allowed global with positional arguments.
    fn call(&mut self, callable: &str, args: Vec<Value>) -> Result<Value, PickleErrorKind>;
    /// `PERSID` and `BINPERSID`: how PyTorch refers to storages outside the pickle.
    fn persistent_load(&mut self, pid: Value) -> Result<Value, PickleErrorKind>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum PickleErrorKind {
    /// A global outside the allow list: the pickle wants to run code we will not run.
    RefusedGlobal { module: String, name: String },
    /// The byte stream does not follow the pickle format.
    Corrupt(String),
    /// Well-formed, but not something a state dict contains.
    Unsupported(String),
}

impl fmt::Display for PickleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleErrorKind::RefusedGlobal { module, name } => write!(
                f,
                "refusing to load `{module}.{name}`: only tensors, storages and (ordered) dicts of \
                 a state dict are allowed, since unpickling other globals can run arbitrary code"
            ),
            PickleErrorKind::Corrupt(why) => write!(f, "corrupt pickle: {why}"),
            PickleErrorKind::Unsupported(why) => write!(f, "unsupported pickle content: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed, from the start of the pickle.
    pub offset: u64,
    pub kind: PickleErrorKind,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at pickle byte {})", self.kind, self.offset)
    }
}

impl std::error::Error for PickleError {}

fn corrupt(why: impl Into<String>) -> PickleErrorKind {
    PickleErrorKind::Corrupt(why.into())
}

/// Reads bytes with a hard limit, so that a corrupt length field cannot make us allocate
/// more than the input holds.
struct Input<R> {
    reader: R,
    pos: u64,
    limit: u64,
}

impl<R: BufRead> Input<R> {
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, PickleErrorKind> {
        if n > self.limit - self.pos {
            return Err(corrupt(format!(
                "the data ends inside a field of {n} bytes ({} bytes left): truncated?",
                self.limit - self.pos
            )));
        }
        let mut buf = vec![0; n as usize];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| corrupt(format!("the data ends early: {e}")))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleErrorKind> {
        Ok(self.bytes(N as u64)?.try_into().unwrap())
    }

    fn u8(&mut self) -> Result<u8, PickleErrorKind> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleErrorKind> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PickleErrorKind> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A newline-terminated line (protocol 0 arguments), without the newline.
    fn line_bytes(&mut self) -> Result<Vec<u8>, PickleErrorKind> {
        let mut line = Vec::new();
        loop {
            let byte = self.u8()?;
            if byte == b'\n' {
                return Ok(line);
            }
            line.push(byte);
            if line.len() > 1 << 20 {
                return Err(corrupt("a text argument longer than 1 MiB"));
            }
        }
    }

    fn line(&mut self) -> Result<String, PickleErrorKind> {
        String::from_utf8(self.line_bytes()?).map_err(|_| corrupt("a text argument is not UTF-8"))
    }
}

fn utf8(bytes: Vec<u8>) -> Result<Value, PickleErrorKind> {
    String::from_utf8(bytes)
        .map(|s| Value::Str(s.into()))
        .map_err(|_| corrupt("a string is not valid UTF-8"))
}

/// Protocol 0 writes text in Python's `raw-unicode-escape`: Latin-1 bytes, except that
/// `\uXXXX` and `\UXXXXXXXX` stand for other code points.
fn raw_unicode_escape(bytes: &[u8]) -> Result<String, PickleErrorKind> {
    let mut text = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (byte, _) => {
                text.push(byte as char);
                i += 1;
                continue;
            }
        };
        let hex = bytes.get(i + 2..i + 2 + digits).ok_or_else(|| corrupt("a truncated \\u escape"))?;
        let code = std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
        text.push(code.and_then(char::from_u32).ok_or_else(|| corrupt("a bad \\u escape"))?);
        i += 2 + digits;
    }
    Ok(text)
}

/// Two's-complement little-endian integer of `LONG1`/`LONG4`.
fn long_from_le(bytes: &[u8]) -> Result<Value, PickleErrorKind> {
    if bytes.is_empty() {
        return Ok(Value::Int(0));
    }
    if bytes.len() > 8 {
        return Err(PickleErrorKind::Unsupported(format!(
            "an integer of {} bytes does not fit 64 bits",
            bytes.len()
        )));
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Ok(Value::Int(i64::from_le_bytes(buf)))
}

struct Machine<'h, H> {
    handler: &'h mut H,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<H: Handler> Machine<'_, H> {
    fn pop(&mut self) -> Result<Value, PickleErrorKind> {
        match self.stack.len() {
            n if n > self.marks.last().copied().unwrap_or(0) => Ok(self.stack.pop().unwrap()),
            _ => Err(corrupt("stack underflow")),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleErrorKind> {
        self.stack.last_mut().ok_or_else(|| corrupt("stack underflow"))
    }

    /// Everything pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleErrorKind> {
        let mark = self.marks.pop().ok_or_else(|| corrupt("no MARK on the stack"))?;
        if mark > self.stack.len() {
            return Err(corrupt("MARK above the top of the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u32) -> Result<Value, PickleErrorKind> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| corrupt(format!("memo key {key} used before it was set")))
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleErrorKind> {
        let top = self.top()?.clone();
        self.memo.insert(key, top);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleErrorKind> {
        let class = self.handler.find_class(module, name)?;
        self.stack.push(class);
        Ok(())
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<(), PickleErrorKind> {
        let Value::Global(name) = callable else {
            return Err(corrupt(format!("a call on a {} value", callable.kind())));
        };
        let args = args
            .as_seq()
            .ok_or_else(|| corrupt(format!("call arguments are a {}, not a tuple", args.kind())))?;
        let result = self.handler.call(&name, args)?;
        self.stack.push(result);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleErrorKind> {
        if !items.len().is_multiple_of(2) {
            return Err(corrupt("SETITEMS with an odd number of values"));
        }
        match self.top()? {
            Value::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    dict.push((key, value));
                }
                Ok(())
            }
            other => Err(corrupt(format!("SETITEM on a {}", other.kind()))),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleErrorKind> {
        match self.top()? {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(corrupt(format!("APPEND on a {}", other.kind()))),
        }
    }

    /// `BUILD` sets an object's state. The only state a state dict carries is the `_metadata`
    /// attribute of its OrderedDict (module versions), which we do not need.
    fn build(&mut self, state: Value) -> Result<(), PickleErrorKind> {
        match self.top()? {
            Value::Dict(_) => Ok(()),
            Value::Object(_) if matches!(state, Value::None) => Ok(()),
            Value::Object(_) => match state {
                Value::Dict(ref d) if d.borrow().is_empty() => Ok(()),
                Value::Tuple(ref t) if t.iter().all(|v| matches!(v, Value::None) || is_empty_dict(v)) => Ok(()),
                _ => Err(PickleErrorKind::Unsupported(format!(
                    "an object with {} state (a tensor subclass or a custom class?)",
                    state.kind()
                ))),
            },
            other => Err(corrupt(format!("BUILD on a {}", other.kind()))),
        }
    }
}

fn is_empty_dict(value: &Value) -> bool {
    matches!(value, Value::Dict(d) if d.borrow().is_empty())
}

fn new_list(items: Vec<Value>) -> Value {
    Value::List(Rc::new(RefCell::new(items)))
}

fn new_dict(items: Vec<(Value, Value)>) -> Value {
    Value::Dict(Rc::new(RefCell::new(items)))
}

/// Unpickles one object from `reader`, which holds at most `limit` more bytes.
/// Returns the object and the number of bytes the pickle took (up to and including STOP).
pub fn load<R: BufRead, H: Handler>(
    reader: R,
    limit: u64,
    handler: &mut H,
) -> Result<(Value, u64), PickleError> {
    let mut input = Input { reader, pos: 0, limit };
    let mut machine = Machine { handler, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    loop {
        let offset = input.pos;
        let step = step(&mut input, &mut machine);
        match step {
            Ok(Some(value)) => return Ok((value, input.pos)),
            Ok(None) => {}
            Err(kind) => return Err(PickleError { offset, kind }),
        }
    }
}

/// Runs one opcode; returns the result at STOP.
fn step<R: BufRead, H: Handler>(
    input: &mut Input<R>,
    m: &mut Machine<'_, H>,
) -> Result<Option<Value>, PickleErrorKind> {
    let opcode = input.u8()?;
    match opcode {
        // Framing and protocol.
        0x80 => {
            let protocol = input.u8()?;
            if protocol > 5 {
                return Err(PickleErrorKind::Unsupported(format!("pickle protocol {protocol}")));
            }
        }
        0x95 => {
            input.u64()?; // FRAME: a length hint only
        }
        b'.' => {
            let value = m.pop()?;
            if !m.stack.is_empty() || !m.marks.is_empty() {
                return Err(corrupt("values left on the stack at STOP"));
            }
            return Ok(Some(value));
        }
        // Marks and stack manipulation.
        b'(' => m.marks.push(m.stack.len()),
        b'0' => {
            m.pop()?;
        }
        b'1' => {
            m.pop_mark()?;
        }
        b'2' => {
            let top = m.top()?.clone();
            m.stack.push(top);
        }
        // Memo.
        b'p' => {
            let key = input.line()?.parse().map_err(|_| corrupt("PUT with a bad key"))?;
            m.memo_put(key)?;
        }
        b'q' => {
            let key = input.u8()? as u32;
            m.memo_put(key)?;
        }
        b'r' => {
            let key = input.u32()?;
            m.memo_put(key)?;
        }
        0x94 => {
            let key = m.memo.len() as u32;
            m.memo_put(key)?;
        }
        b'g' => {
            let key = input.line()?.parse().map_err(|_| corrupt("GET with a bad key"))?;
            let value = m.memo_get(key)?;
            m.stack.push(value);
        }
        b'h' => {
            let key = input.u8()? as u32;
            let value = m.memo_get(key)?;
            m.stack.push(value);
        }
        b'j' => {
            let key = input.u32()?;
            let value = m.memo_get(key)?;
            m.stack.push(value);
        }
        // Constants and numbers.
        b'N' => m.stack.push(Value::None),
        0x88 => m.stack.push(Value::Bool(true)),
        0x89 => m.stack.push(Value::Bool(false)),
        b'J' => m.stack.push(Value::Int(i32::from_le_bytes(input.array()?) as i64)),
        b'K' => m.stack.push(Value::Int(input.u8()? as i64)),
        b'M' => m.stack.push(Value::Int(u16::from_le_bytes(input.array()?) as i64)),
        b'I' => {
            let line = input.line()?;
            let value = match line.as_str() {
                "00" => Value::Bool(false),
                "01" => Value::Bool(true),
                text => Value::Int(text.parse().map_err(|_| corrupt("INT with a bad number"))?),
            };
            m.stack.push(value);
        }
        b'L' => {
            let line = input.line()?;
            let digits = line.trim_end_matches('L');
            let value = digits.parse().map_err(|_| {
                PickleErrorKind::Unsupported(format!("the integer {digits} does not fit 64 bits"))
            })?;
            m.stack.push(Value::Int(value));
        }
        0x8a => {
            let n = input.u8()? as u64;
            let bytes = input.bytes(n)?;
            m.stack.push(long_from_le(&bytes)?);
        }
        0x8b => {
            let n = input.u32()? as u64;
            let bytes = input.bytes(n)?;
            m.stack.push(long_from_le(&bytes)?);
        }
        b'G' => m.stack.push(Value::Float(f64::from_be_bytes(input.array()?))),
        b'F' => {
            let line = input.line()?;
            m.stack.push(Value::Float(line.parse().map_err(|_| corrupt("FLOAT with a bad number"))?));
        }
        // Strings and bytes.
        b'X' => {
            let n = input.u32()? as u64;
            let value = utf8(input.bytes(n)?)?;
            m.stack.push(value);
        }
        0x8c => {
            let n = input.u8()? as u64;
            let value = utf8(input.bytes(n)?)?;
            m.stack.push(value);
        }
        0x8d => {
            let n = input.u64()?;
            let value = utf8(input.bytes(n)?)?;
            m.stack.push(value);
        }
        b'V' => {
            let line = input.line_bytes()?;
            m.stack.push(Value::Str(raw_unicode_escape(&line)?.into()));
        }
        b'S' => {
            let line = input.line()?;
            let unquoted = line
                .strip_prefix(['\'', '"'])
                .and_then(|s| s.strip_suffix(['\'', '"']))
                .ok_or_else(|| corrupt("STRING argument is not quoted"))?;
            m.stack.push(Value::Str(unquoted.into()));
        }
        // Python 2 `str`: PyTorch's own keys in legacy checkpoints are ASCII, so read them as text.
        b'T' => {
            let n = input.u32()? as u64;
            let value = utf8(input.bytes(n)?)?;
            m.stack.push(value);
        }
        b'U' => {
            let n = input.u8()? as u64;
            let value = utf8(input.bytes(n)?)?;
            m.stack.push(value);
        }
        b'B' => {
            let n = input.u32()? as u64;
            m.stack.push(Value::Bytes(input.bytes(n)?.into()));
        }
        b'C' => {
            let n = input.u8()? as u64;
            m.stack.push(Value::Bytes(input.bytes(n)?.into()));
        }
        0x8e | 0x96 => {
            let n = input.u64()?;
            m.stack.push(Value::Bytes(input.bytes(n)?.into()));
        }
        0x98 => {} // READONLY_BUFFER: no-op for our values
        // Containers.
        b')' => m.stack.push(Value::Tuple(Rc::from(Vec::new()))),
        b't' => {
            let items = m.pop_mark()?;
            m.stack.push(Value::Tuple(items.into()));
        }
        0x85..=0x87 => {
            let n = (opcode - 0x84) as usize;
            if m.stack.len() < n + m.marks.last().copied().unwrap_or(0) {
                return Err(corrupt("stack underflow"));
            }
            let items = m.stack.split_off(m.stack.len() - n);
            m.stack.push(Value::Tuple(items.into()));
        }
        b']' => m.stack.push(new_list(Vec::new())),
        b'l' => {
            let items = m.pop_mark()?;
            m.stack.push(new_list(items));
        }
        b'a' => {
            let item = m.pop()?;
            m.append(vec![item])?;
        }
        b'e' => {
            let items = m.pop_mark()?;
            m.append(items)?;
        }
        b'}' => m.stack.push(new_dict(Vec::new())),
        b'd' => {
            let items = m.pop_mark()?;
            m.stack.push(new_dict(Vec::new()));
            m.set_items(items)?;
        }
        b's' => {
            let value = m.pop()?;
            let key = m.pop()?;
            m.set_items(vec![key, value])?;
        }
        b'u' => {
            let items = m.pop_mark()?;
            m.set_items(items)?;
        }
        // Sets only appear in exotic pickles; keep them as lists.
        0x8f => m.stack.push(new_list(Vec::new())),
        0x90 => {
            let items = m.pop_mark()?;
            m.append(items)?;
        }
        0x91 => {
            let items = m.pop_mark()?;
            m.stack.push(new_list(items));
        }
        // Globals, calls and objects: all go through the handler.
        b'c' => {
            let module = input.line()?;
            let name = input.line()?;
            m.global(&module, &name)?;
        }
        0x93 => {
            let name = m.pop()?;
            let module = m.pop()?;
            match (module.as_str(), name.as_str()) {
                (Some(module), Some(name)) => m.global(module, name)?,
                _ => return Err(corrupt("STACK_GLOBAL without two strings")),
            }
        }
        b'R' => {
            let args = m.pop()?;
            let callable = m.pop()?;
            m.call(callable, args)?;
        }
        0x81 => {
            let args = m.pop()?;
            let class = m.pop()?;
            m.call(class, args)?;
        }
        0x92 => {
            let kwargs = m.pop()?;
            let args = m.pop()?;
            let class = m.pop()?;
            if !is_empty_dict(&kwargs) {
                return Err(PickleErrorKind::Unsupported("NEWOBJ_EX with keyword arguments".into()));
            }
            m.call(class, args)?;
        }
        b'b' => {
            let state = m.pop()?;
            m.build(state)?;
        }
        b'P' => {
            let pid = input.line()?;
            let value = m.handler.persistent_load(Value::Str(pid.into()))?;
            m.stack.push(value);
        }
        b'Q' => {
            let pid = m.pop()?;
            let value = m.handler.persistent_load(pid)?;
            m.stack.push(value);
        }
        b'i' | b'o' => {
            return Err(PickleErrorKind::Unsupported(
                "INST/OBJ instantiate classes directly; state dicts never do".into(),
            ))
        }
        0x82..=0x84 => return Err(PickleErrorKind::Unsupported("extension registry codes".into())),
        0x97 => return Err(PickleErrorKind::Unsupported("out-of-band buffers".into())),
        other => return Err(corrupt(format!("unknown opcode 0x{other:02x}"))),
    }
    Ok(None)
}
