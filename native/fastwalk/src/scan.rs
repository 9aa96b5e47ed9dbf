//! An incremental backup's walk merged with its parent snapshot's rows, in native code.
//!
//! On a daily run most entries are directories and files unchanged since the parent snapshot:
//! their new manifest rows follow from their lstat and the parent's row alone.  `Scan` walks the
//! tree (on the walk thread of lib.rs), reads the parent's rows from its manifest frames (msgpack,
//! as `datamover/manifest.py` writes them) and, per batch of the walk, writes those rows here,
//! already encoded; Python gets them as one blob per run of such entries, and every other entry
//! (changed, new, hard-linked, a symlink, an error) as the Python walk's item plus the parent's
//! row for it, still encoded.  The rule for "unchanged" is the Python backup's own (same type,
//! size, mtime, ctime and inode, one link, not changed while read, every chunk still in the
//! vault); tests/datamover/test_scan.py holds the two paths to the same manifests.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};

use crate::{obj, os_error, python_order_key, Feed, Item, Stat};

// --- reading msgpack ------------------------------------------------------------------------------

enum Val<'a> {
    Int(i128),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Other,
}

struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Parsed<T> = Result<T, String>;

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("truncated")?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn be(&mut self, n: usize) -> Parsed<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn next(&mut self) -> Parsed<Val<'a>> {
        let marker = self.take(1)?[0];
        let sized = |c: &mut Self, n: usize| -> Parsed<usize> { Ok(c.be(n)? as usize) };
        Ok(match marker {
            0x00..=0x7f => Val::Int(i128::from(marker)),
            0x80..=0x8f => Val::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Val::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Val::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 | 0xc2 | 0xc3 => Val::Other,
            0xc1 => return Err("invalid marker 0xc1".into()),
            0xc4..=0xc6 => {
                let n = sized(self, 1 << (marker - 0xc4))?;
                Val::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = sized(self, 1 << (marker - 0xc7))?;
                self.take(n + 1)?;
                Val::Other
            }
            0xca => {
                self.take(4)?;
                Val::Other
            }
            0xcb => {
                self.take(8)?;
                Val::Other
            }
            0xcc..=0xcf => Val::Int(i128::from(self.be(1 << (marker - 0xcc))?)),
            0xd0 => Val::Int(i128::from(self.be(1)? as u8 as i8)),
            0xd1 => Val::Int(i128::from(self.be(2)? as u16 as i16)),
            0xd2 => Val::Int(i128::from(self.be(4)? as u32 as i32)),
            0xd3 => Val::Int(i128::from(self.be(8)? as i64)),
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                Val::Other
            }
            0xd9..=0xdb => {
                let n = sized(self, 1 << (marker - 0xd9))?;
                Val::Str(self.take(n)?)
            }
            0xdc | 0xdd => Val::Array(sized(self, 2 << (marker - 0xdc))?),
            0xde | 0xdf => Val::Map(sized(self, 2 << (marker - 0xde))?),
            0xe0..=0xff => Val::Int(i128::from(marker as i8)),
        })
    }

    fn skip(&mut self) -> Parsed<()> {
        let mut left: usize = 1;
        while left > 0 {
            left -= 1;
            match self.next()? {
                Val::Array(n) => left = left.saturating_add(n),
                Val::Map(n) => left = left.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }

    fn int(&mut self, what: &str) -> Parsed<i128> {
        match self.next()? {
            Val::Int(v) => Ok(v),
            _ => Err(format!("{what} is not an integer")),
        }
    }

    fn offset(&self, slice: &[u8]) -> (usize, usize) {
        let start = slice.as_ptr() as usize - self.buf.as_ptr() as usize;
        (start, start + slice.len())
    }
}

// --- writing msgpack (the encodings msgpack-python chooses) -------------------------------------------

fn put_int(out: &mut Vec<u8>, v: i128) {
    if (0..=0x7f).contains(&v) {
        out.push(v as u8);
    } else if (-32..0).contains(&v) {
        out.push(v as i8 as u8);
    } else if v > 0 {
        if v <= 0xff {
            out.extend([0xcc, v as u8]);
        } else if v <= 0xffff {
            out.push(0xcd);
            out.extend((v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            out.push(0xce);
            out.extend((v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend((v as u64).to_be_bytes());
        }
    } else if v >= -0x80 {
        out.extend([0xd0, v as i8 as u8]);
    } else if v >= -0x8000 {
        out.push(0xd1);
        out.extend((v as i16).to_be_bytes());
    } else if v >= -0x8000_0000 {
        out.push(0xd2);
        out.extend((v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend((v as i64).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend([0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend((n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn ns((sec, nsec): (i64, i64)) -> i128 {
    i128::from(sec) * 1_000_000_000 + i128::from(nsec)
}

/// (rel, "d", mode, uid, gid, mtime, atime): a directory's row.
fn put_common(out: &mut Vec<u8>, fields: u8, rel: &[u8], kind: &[u8], st: &Stat) {
    out.push(0x90 | fields);
    put_str(out, rel);
    put_str(out, kind);
    put_int(out, i128::from(st.mode & 0o7777));
    put_int(out, i128::from(st.uid));
    put_int(out, i128::from(st.gid));
    put_int(out, ns(st.mtime));
    put_int(out, ns(st.atime));
}

// --- the parent's rows ------------------------------------------------------------------------------

/// What the merge needs of a parent row; ranges index the frame it was read from.
struct Row {
    span: (usize, usize),
    path: (usize, usize),
    kind: u8,
    size: i128,
    ino: i128,
    mtime: i128,
    ctime: i128,
    changed: bool,
    chunks: (usize, usize),
    ids: Vec<(usize, usize)>,
    digest: (usize, usize),
}

const R_FILE_FIELDS: usize = 13;
const R_MIN_FIELDS: usize = 7;

fn parse_row(buf: &[u8], pos: usize) -> Parsed<(Row, usize)> {
    let mut c = Cur { buf, pos };
    let fields = match c.next()? {
        Val::Array(n) if n >= R_MIN_FIELDS => n,
        _ => return Err("an entry is not a list of at least 7 fields".into()),
    };
    let path = match c.next()? {
        Val::Str(s) => c.offset(s),
        _ => return Err("an entry's path is not a string".into()),
    };
    let kind = match c.next()? {
        Val::Str([k]) => *k,
        _ => return Err("an entry's type is not one letter".into()),
    };
    let mut row = Row {
        span: (pos, 0),
        path,
        kind,
        size: 0,
        ino: 0,
        mtime: 0,
        ctime: 0,
        changed: false,
        chunks: (0, 0),
        ids: Vec::new(),
        digest: (0, 0),
    };
    if kind != b'f' {
        for _ in 2..fields {
            c.skip()?;
        }
        row.span.1 = c.pos;
        return Ok((row, c.pos));
    }
    if fields != R_FILE_FIELDS {
        return Err(format!(
            "a file entry has {fields} fields, not {R_FILE_FIELDS}"
        ));
    }
    for _ in 0..3 {
        c.skip()?; // mode, uid, gid
    }
    row.mtime = c.int("mtime")?;
    c.skip()?; // atime
    row.size = c.int("size")?;
    row.ino = c.int("inode")?;
    row.ctime = c.int("ctime")?;
    let start = c.pos;
    let n = match c.next()? {
        Val::Array(n) => n,
        _ => return Err("an entry's chunks are not a list".into()),
    };
    row.ids.reserve(n.min(4096));
    for _ in 0..n {
        match (c.next()?, c.next()?) {
            (Val::Array(2), Val::Bin(id)) => row.ids.push(c.offset(id)),
            _ => return Err("a chunk is not (id, length)".into()),
        }
        c.int("chunk length")?;
    }
    row.chunks = (start, c.pos);
    let start = c.pos;
    match c.next()? {
        Val::Bin(_) => row.digest = (start, c.pos),
        _ => return Err("an entry's digest is not bytes".into()),
    }
    row.changed = c.int("changed flag")? != 0;
    row.span.1 = c.pos;
    Ok((row, c.pos))
}

/// The parent's rows, one frame at a time from a Python iterator of decoded frame bodies.
struct Parent {
    frames: Option<Py<PyIterator>>,
    skip_first: bool, // the first frame begins with the manifest's header
    buf: Vec<u8>,
    pos: usize,
    left: usize,
    frame: usize,
}

impl Parent {
    fn next_row(&mut self, py: Python<'_>) -> PyResult<Option<Row>> {
        loop {
            if self.left > 0 {
                self.left -= 1;
                let (row, pos) = parse_row(&self.buf, self.pos).map_err(|e| self.malformed(&e))?;
                self.pos = pos;
                return Ok(Some(row));
            }
            let Some(frames) = &self.frames else {
                return Ok(None);
            };
            let Some(next) = frames.bind(py).clone().next() else {
                self.frames = None;
                self.buf = Vec::new();
                return Ok(None);
            };
            self.buf = next?.downcast::<PyBytes>()?.as_bytes().to_vec();
            self.frame += 1;
            let mut c = Cur {
                buf: &self.buf,
                pos: 0,
            };
            let count = match c.next() {
                Ok(Val::Array(n)) => n,
                _ => return Err(self.malformed("a frame is not a list of entries")),
            };
            self.left = count;
            if std::mem::take(&mut self.skip_first) {
                c.skip().map_err(|e| self.malformed(&e))?;
                self.left = count.saturating_sub(1);
            }
            self.pos = c.pos;
        }
    }

    fn malformed(&self, what: &str) -> PyErr {
        PyValueError::new_err(format!(
            "malformed entry in frame {} ({what})",
            self.frame.saturating_sub(1)
        ))
    }

    fn bytes(&self, (start, end): (usize, usize)) -> &[u8] {
        &self.buf[start..end]
    }
}

/// Walk order (datamover.manifest.path_key): "." first, then component by component, each
/// compared the way Python compares the surrogate-escaped str.
fn parts(p: &[u8]) -> Vec<&[u8]> {
    if p == b"." {
        Vec::new()
    } else {
        p.split(|&c| c == b'/').collect()
    }
}

fn walk_order(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let order = if std::str::from_utf8(x).is_ok() && std::str::from_utf8(y).is_ok() {
            x.cmp(y)
        } else {
            python_order_key(x).cmp(&python_order_key(y))
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    pa.len().cmp(&pb.len())
}

// --- the merge ----------------------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    rows: Vec<u8>,
    count: u64,
    files: u64,
    bytes: i128,
    chunks: u64,
    dirs: u64,
}

/// Iterates over lists whose items are either a run of rows written here, `(None, rows: bytes,
/// count, files, bytes, chunks, dirs)`, or an entry for Python, `(rel, path, stat or None, error
/// or None, the parent's row for rel as msgpack bytes or None)`.  Made with `Scan(root,
/// root_prefix, parent_frames, stored)`: root_prefix as for Walker, parent_frames an iterator of
/// the parent manifest's decoded frame bodies (the first holding the header), stored what the
/// vault's chunk ids are tested `in`.  The root itself is the caller's (as with Walker).
#[pyclass(module = "kbc_fastwalk")]
pub(crate) struct Scan {
    feed: Feed,
    parent: Parent,
    cur: Option<Row>,
    cur_used: bool,
    stored: PyObject,
}

impl Scan {
    /// The parent's row for rel, if it has one (rows before rel, deleted since, are passed over);
    /// it stays `cur` until the next call.
    fn seek(&mut self, py: Python<'_>, rel: &[u8]) -> PyResult<bool> {
        if std::mem::take(&mut self.cur_used) {
            self.cur = self.parent.next_row(py)?;
        }
        while let Some(row) = &self.cur {
            match walk_order(self.parent.bytes(row.path), rel) {
                Ordering::Less => self.cur = self.parent.next_row(py)?,
                Ordering::Equal => {
                    self.cur_used = true;
                    return Ok(true);
                }
                Ordering::Greater => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Whether the file is as the parent recorded it and every chunk is still stored.
    fn unchanged(&self, py: Python<'_>, row: &Row, st: &Stat) -> PyResult<bool> {
        if row.kind != b'f'
            || row.changed
            || st.mode & libc::S_IFMT != libc::S_IFREG
            || st.nlink != 1
            || row.size != i128::from(st.size)
            || row.mtime != ns(st.mtime)
            || row.ctime != ns(st.ctime)
            || row.ino != i128::from(st.ino)
        {
            return Ok(false);
        }
        let stored = self.stored.bind(py);
        for &id in &row.ids {
            if !stored.contains(PyBytes::new(py, self.parent.bytes(id)))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn flush(py: Python<'_>, run: &mut Run, items: &Bound<'_, PyList>) -> PyResult<()> {
        if run.count == 0 {
            return Ok(());
        }
        let done = std::mem::take(run);
        items.append(PyTuple::new(
            py,
            [
                py.None(),
                PyBytes::new(py, &done.rows).into_any().unbind(),
                obj(py, done.count)?,
                obj(py, done.files)?,
                obj(py, done.bytes)?,
                obj(py, done.chunks)?,
                obj(py, done.dirs)?,
            ],
        )?)
    }
}

#[pymethods]
impl Scan {
    #[new]
    fn new(
        py: Python<'_>,
        root: std::path::PathBuf,
        root_prefix: std::path::PathBuf,
        parent_frames: &Bound<'_, PyAny>,
        stored: PyObject,
    ) -> PyResult<Self> {
        let frames = PyIterator::from_object(parent_frames)?.unbind();
        let mut parent = Parent {
            frames: Some(frames),
            skip_first: true,
            buf: Vec::new(),
            pos: 0,
            left: 0,
            frame: 0,
        };
        let cur = parent.next_row(py)?;
        Ok(Scan {
            feed: Feed::start(py, root, root_prefix)?,
            parent,
            cur,
            cur_used: false,
            stored,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let batch = self.feed.next_batch(py)?;
        let items = PyList::empty(py);
        let mut run = Run::default();
        let none = py.None();
        for item in batch {
            match item {
                Item::Error { rel, path, errno } => {
                    Self::flush(py, &mut run, &items)?;
                    let path_obj = obj(py, OsStr::from_bytes(&path))?;
                    let error = os_error(py, errno, &path_obj)?;
                    let entry = [
                        obj(py, OsStr::from_bytes(&rel))?,
                        path_obj,
                        none.clone_ref(py),
                        error,
                        none.clone_ref(py),
                    ];
                    items.append(PyTuple::new(py, entry)?)?;
                }
                Item::Entry { rel, path, st } => {
                    let matched = self.seek(py, &rel)?;
                    if st.mode & libc::S_IFMT == libc::S_IFDIR {
                        put_common(&mut run.rows, 7, &rel, b"d", &st);
                        run.count += 1;
                        run.dirs += 1;
                        continue;
                    }
                    if matched {
                        let row = self.cur.as_ref().expect("a matched row");
                        if self.unchanged(py, row, &st)? {
                            let out = &mut run.rows;
                            put_common(out, 13, &rel, b"f", &st);
                            put_int(out, i128::from(st.size));
                            put_int(out, i128::from(st.ino));
                            put_int(out, ns(st.ctime));
                            out.extend_from_slice(self.parent.bytes(row.chunks));
                            out.extend_from_slice(self.parent.bytes(row.digest));
                            out.push(0x00);
                            run.count += 1;
                            run.files += 1;
                            run.bytes += i128::from(st.size);
                            run.chunks += row.ids.len() as u64;
                            continue;
                        }
                    }
                    Self::flush(py, &mut run, &items)?;
                    let old = match (matched, &self.cur) {
                        (true, Some(row)) => PyBytes::new(py, self.parent.bytes(row.span))
                            .into_any()
                            .unbind(),
                        _ => none.clone_ref(py),
                    };
                    let stat = self.feed.stat(py, &st)?;
                    let entry = [
                        obj(py, OsStr::from_bytes(&rel))?,
                        obj(py, OsStr::from_bytes(&path))?,
                        stat,
                        none.clone_ref(py),
                        old,
                    ];
                    items.append(PyTuple::new(py, entry)?)?;
                }
            }
        }
        Self::flush(py, &mut run, &items)?;
        Ok(items.unbind())
    }
}
