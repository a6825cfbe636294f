//! Just enough of the ZIP format to find the records of a PyTorch checkpoint, and to unpack
//! the zip a model is packaged in.
//!
//! `torch.save` writes an uncompressed ("stored") ZIP whose records are 64-byte aligned, so a
//! tensor's bytes are a plain byte range of the file: we read the central directory and hand out
//! ranges, and the converter streams (or `copy_file_range`s) them without buffering the archive.
//! A packaged model's records may be deflated: [`ZipArchive::extract`] inflates them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;

#[derive(Debug, Clone)]
pub struct ZipEntry {
    pub name: String,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    local_header_offset: u64,
}

/// The byte range of one record's contents within the archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub len: u64,
}

pub struct ZipArchive {
    pub entries: Vec<ZipEntry>,
    file_len: u64,
}

/// True when the file starts like a ZIP archive (a local file header).
pub fn looks_like_zip(head: &[u8]) -> bool {
    head.len() >= 4 && u32::from_le_bytes(head[..4].try_into().unwrap()) == LOCAL_HEADER_SIGNATURE
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_at(file: &File, offset: u64, len: usize, file_len: u64, what: &str) -> Result<Vec<u8>, String> {
    if offset.checked_add(len as u64).is_none_or(|end| end > file_len) {
        return Err(format!(
            "the {what} at byte {offset} runs past the end of the file ({file_len} bytes): truncated?"
        ));
    }
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).map_err(|e| format!("reading the {what}: {e}"))?;
    Ok(buf)
}

impl ZipArchive {
    /// Reads the central directory. Errors are plain descriptions; the caller adds the path.
    pub fn open(file: &File) -> Result<ZipArchive, String> {
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let (entry_count, directory_offset, directory_len) = Self::end_of_directory(file, file_len)?;
        let directory = read_at(file, directory_offset, directory_len as usize, file_len, "central directory")?;
        let mut entries = Vec::with_capacity(entry_count.min(1 << 20) as usize);
        let mut at = 0usize;
        for index in 0..entry_count {
            if at + 46 > directory.len() || le32(&directory, at) != CENTRAL_HEADER_SIGNATURE {
                return Err(format!("central directory entry {index} is damaged"));
            }
            let name_len = le16(&directory, at + 28) as usize;
            let extra_len = le16(&directory, at + 30) as usize;
            let comment_len = le16(&directory, at + 32) as usize;
            let end = at + 46 + name_len + extra_len + comment_len;
            if end > directory.len() {
                return Err(format!("central directory entry {index} runs past the directory"));
            }
            let name = String::from_utf8_lossy(&directory[at + 46..at + 46 + name_len]).into_owned();
            let mut entry = ZipEntry {
                name,
                method: le16(&directory, at + 10),
                crc32: le32(&directory, at + 16),
                compressed_size: le32(&directory, at + 20) as u64,
                size: le32(&directory, at + 24) as u64,
                local_header_offset: le32(&directory, at + 42) as u64,
            };
            let extra = &directory[at + 46 + name_len..at + 46 + name_len + extra_len];
            apply_zip64_extra(&mut entry, extra)?;
            entries.push(entry);
            at = end;
        }
        Ok(ZipArchive { entries, file_len })
    }

    /// (entry count, central directory offset, central directory length), ZIP64 aware.
    fn end_of_directory(file: &File, file_len: u64) -> Result<(u64, u64, u64), String> {
        // The end record is 22 bytes plus a comment of up to 64 KiB, at the very end.
        let tail_len = file_len.min(22 + 65_535);
        let tail = read_at(file, file_len - tail_len, tail_len as usize, file_len, "end of the archive")?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| le32(&tail, i) == EOCD_SIGNATURE)
            .ok_or("no end-of-central-directory record: the archive is truncated or not a zip")?;
        let record = &tail[eocd..];
        let mut count = le16(record, 10) as u64;
        let mut directory_len = le32(record, 12) as u64;
        let mut directory_offset = le32(record, 16) as u64;
        let eocd_offset = file_len - tail_len + eocd as u64;
        if eocd_offset >= 20 {
            let locator = read_at(file, eocd_offset - 20, 20, file_len, "ZIP64 locator")?;
            if le32(&locator, 0) == ZIP64_LOCATOR_SIGNATURE {
                let zip64_offset = le64(&locator, 8);
                let zip64 = read_at(file, zip64_offset, 56, file_len, "ZIP64 end record")?;
                if le32(&zip64, 0) != ZIP64_EOCD_SIGNATURE {
                    return Err("the ZIP64 end-of-central-directory record is damaged".into());
                }
                count = le64(&zip64, 32);
                directory_len = le64(&zip64, 40);
                directory_offset = le64(&zip64, 48);
            }
        }
        if directory_offset.checked_add(directory_len).is_none_or(|end| end > eocd_offset) {
            return Err("the central directory lies outside the archive: truncated?".into());
        }
        Ok((count, directory_offset, directory_len))
    }

    pub fn find(&self, name: &str) -> Option<&ZipEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Where an entry's bytes lie. Only stored entries can be read in place.
    pub fn data_range(&self, file: &File, entry: &ZipEntry) -> Result<Range, String> {
        if entry.method != METHOD_STORED {
            return Err(format!(
                "record `{}` is compressed (method {}); PyTorch writes stored records only, \
                 so re-save the checkpoint with torch.save",
                entry.name, entry.method
            ));
        }
        if entry.compressed_size != entry.size {
            return Err(format!("record `{}` has inconsistent sizes", entry.name));
        }
        self.stored_range(file, entry)
    }

    /// The record's bytes as stored (compressed or not).
    fn stored_range(&self, file: &File, entry: &ZipEntry) -> Result<Range, String> {
        let header = read_at(file, entry.local_header_offset, 30, self.file_len, "local file header")?;
        if le32(&header, 0) != LOCAL_HEADER_SIGNATURE {
            return Err(format!("the local header of record `{}` is damaged", entry.name));
        }
        let offset = entry.local_header_offset + 30 + le16(&header, 26) as u64 + le16(&header, 28) as u64;
        if offset.checked_add(entry.compressed_size).is_none_or(|end| end > self.file_len) {
            return Err(format!(
                "record `{}` ({} bytes at {offset}) runs past the end of the file ({} bytes): truncated",
                entry.name, entry.compressed_size, self.file_len
            ));
        }
        Ok(Range { offset, len: entry.compressed_size })
    }

    /// Writes a stored or deflated record's contents to `out`, checking their size and CRC-32;
    /// `progress` gets the archive bytes read so far and returns false to stop.
    pub fn extract(&self, file: &File, entry: &ZipEntry, out: &mut dyn Write, progress: &mut dyn FnMut(u64) -> bool) -> Result<(), String> {
        let range = self.stored_range(file, entry)?;
        let stored = PositionedReader { file, at: range.offset, end: range.offset + range.len, progress, stopped: false };
        let mut contents: Box<dyn Read + '_> = match entry.method {
            METHOD_STORED => Box::new(stored),
            METHOD_DEFLATED => Box::new(flate2::read::DeflateDecoder::new(stored)),
            other => return Err(format!("record `{}` is compressed with method {other}; only stored and deflated records are read", entry.name)),
        };
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = match contents.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.to_string() == STOPPED => return Err(STOPPED.into()),
                Err(e) => return Err(format!("reading record `{}`: {e}", entry.name)),
            };
            crc.update(&buffer[..n]);
            written += n as u64;
            out.write_all(&buffer[..n]).map_err(|e| format!("writing record `{}`: {e}", entry.name))?;
        }
        if written != entry.size || crc.finalize() != entry.crc32 {
            return Err(format!("record `{}` does not unpack to what the archive records (size or CRC-32 differs): damaged", entry.name));
        }
        Ok(())
    }
}

/// What [`ZipArchive::extract`] answers when its `progress` asked it to stop.
pub const STOPPED: &str = "stopped";

/// A file's byte range read from a position, reporting progress.
struct PositionedReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
    progress: &'a mut dyn FnMut(u64) -> bool,
    stopped: bool,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped || !(self.progress)(self.at) {
            self.stopped = true;
            // Not ErrorKind::Interrupted, which readers retry.
            return Err(std::io::Error::other(STOPPED));
        }
        let n = buf.len().min((self.end - self.at) as usize);
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The ZIP64 extended-information field replaces 32-bit fields that hold 0xFFFFFFFF.
fn apply_zip64_extra(entry: &mut ZipEntry, mut extra: &[u8]) -> Result<(), String> {
    while extra.len() >= 4 {
        let id = le16(extra, 0);
        let len = le16(extra, 2) as usize;
        if 4 + len > extra.len() {
            return Err(format!("the extra field of record `{}` is damaged", entry.name));
        }
        if id == 0x0001 {
            let mut field = &extra[4..4 + len];
            for value in [&mut entry.size, &mut entry.compressed_size, &mut entry.local_header_offset] {
                if *value == 0xFFFF_FFFF {
                    if field.len() < 8 {
                        return Err(format!("the ZIP64 field of record `{}` is short", entry.name));
                    }
                    *value = le64(field, 0);
                    field = &field[8..];
                }
            }
        }
        extra = &extra[4 + len..];
    }
    Ok(())
}
