//! The data mover's directory walk in native code (the Python walk is `datamover/walk.py`).
//!
//! A backup spends most of an incremental run listing directories and lstat-ing every entry; in
//! Python those calls and the objects around them run on the interpreter's one thread. Here a
//! native thread walks the tree in the backup's order (depth first, names sorted the way Python
//! sorts `str`), lstat-ing as it goes, and hands batches to Python through a bounded channel, so
//! the walk runs on the second core while the backup compares and writes rows on the first.
//!
//! Each item is what the Python walk yields: `(relative path, full path, os.stat_result or None,
//! OSError or None)`, with the same paths (surrogate-escaped like `os.fsdecode`) and the same
//! errors, so the two are interchangeable (tests/datamover/test_walk.py holds them to that).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::IntoPyObjectExt;

/// Items per batch handed to Python, and batches in flight: enough to keep both sides busy,
/// little enough to bound memory (a few MiB) however big the tree.
const BATCH: usize = 512;
const IN_FLIGHT: usize = 16;

pub(crate) struct Stat {
    mode: u32,
    ino: u64,
    dev: u64,
    nlink: u64,
    uid: u32,
    gid: u32,
    size: i64,
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
    blksize: i64,
    blocks: i64,
    rdev: u64,
}

pub(crate) enum Item {
    Entry {
        rel: Vec<u8>,
        path: Vec<u8>,
        st: Stat,
    },
    Error {
        rel: Vec<u8>,
        path: Vec<u8>,
        errno: i32,
    },
}

fn lstat(path: &[u8]) -> Result<Stat, i32> {
    let cpath = CString::new(path).map_err(|_| libc::EINVAL)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::lstat(cpath.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(Stat {
        mode: st.st_mode,
        ino: st.st_ino,
        dev: st.st_dev,
        nlink: st.st_nlink as u64,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size,
        atime: (st.st_atime, st.st_atime_nsec),
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        rdev: st.st_rdev,
    })
}

/// The code points Python gives a name decoded with surrogateescape (each undecodable byte b
/// becomes U+DC00+b): Python sorts `str` by these, which is not byte order once a name is not
/// UTF-8.
pub(crate) fn python_order_key(name: &[u8]) -> Vec<u32> {
    let mut key = Vec::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        key.extend(chunk.valid().chars().map(|c| c as u32));
        key.extend(chunk.invalid().iter().map(|&b| 0xDC00 + u32::from(b)));
    }
    key
}

/// A directory's names in the walk's order, or the errno of listing it.
fn listing(path: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(OsStr::from_bytes(path)).map_err(errno)? {
        names.push(entry.map_err(errno)?.file_name().into_vec());
    }
    // UTF-8 byte order is code point order, so only names that are not UTF-8 need the key.
    if names.iter().all(|n| std::str::from_utf8(n).is_ok()) {
        names.sort_unstable();
    } else {
        names.sort_by_cached_key(|n| python_order_key(n));
    }
    Ok(names)
}

struct Level {
    names: Vec<Vec<u8>>,
    next: usize,
    prefix: Vec<u8>,
}

struct Out {
    batch: Vec<Item>,
    tx: SyncSender<Vec<Item>>,
}

impl Out {
    /// False once Python dropped the walk (nothing left to do).
    fn push(&mut self, item: Item) -> bool {
        self.batch.push(item);
        if self.batch.len() < BATCH {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(full).is_ok()
    }
}

/// Everything under the root (the root's own lstat is Python's, before this starts).
fn walk(root: Vec<u8>, root_prefix: Vec<u8>, tx: SyncSender<Vec<Item>>) {
    let mut out = Out {
        batch: Vec::with_capacity(BATCH),
        tx,
    };
    let mut stack: Vec<Level> = Vec::new();
    match listing(&root) {
        Ok(names) => stack.push(Level {
            names,
            next: 0,
            prefix: Vec::new(),
        }),
        Err(errno) => {
            if !out.push(Item::Error {
                rel: b".".to_vec(),
                path: root,
                errno,
            }) {
                return;
            }
        }
    }
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.get(level.next) else {
            stack.pop();
            continue;
        };
        level.next += 1;
        let mut rel = Vec::with_capacity(level.prefix.len() + name.len());
        rel.extend_from_slice(&level.prefix);
        rel.extend_from_slice(name);
        let mut path = Vec::with_capacity(root_prefix.len() + rel.len());
        path.extend_from_slice(&root_prefix);
        path.extend_from_slice(&rel);
        let st = match lstat(&path) {
            Ok(st) => st,
            Err(errno) => {
                if !out.push(Item::Error { rel, path, errno }) {
                    return;
                }
                continue;
            }
        };
        let is_dir = st.mode & libc::S_IFMT == libc::S_IFDIR;
        if !is_dir {
            if !out.push(Item::Entry { rel, path, st }) {
                return;
            }
            continue;
        }
        let listed = listing(&path);
        let mut prefix = rel.clone();
        prefix.push(b'/');
        if !out.push(Item::Entry {
            rel: rel.clone(),
            path: path.clone(),
            st,
        }) {
            return;
        }
        match listed {
            // Descend first; this level resumes where it stopped.
            Ok(names) => stack.push(Level {
                names,
                next: 0,
                prefix,
            }),
            Err(errno) => {
                if !out.push(Item::Error { rel, path, errno }) {
                    return;
                }
            }
        }
    }
    if !out.batch.is_empty() {
        let _ = out.tx.send(out.batch);
    }
}

/// The walk thread's batches, and what turns an lstat into an os.stat_result (Walker and Scan).
pub(crate) struct Feed {
    // Taken out while waiting without the interpreter lock (a Mutex: Python objects must be Sync).
    rx: Mutex<Option<Receiver<Vec<Item>>>>,
    stat_result: PyObject,
    // Fields past the 19 filled here (none on Linux today) are set to None, never left empty.
    n_fields: usize,
}

impl Feed {
    pub(crate) fn start(
        py: Python<'_>,
        root: std::path::PathBuf,
        root_prefix: std::path::PathBuf,
    ) -> PyResult<Self> {
        let stat_result = py.import("os")?.getattr("stat_result")?;
        // Filled field by field: it must be the struct sequence it is in CPython 3.11+.
        let n_fields = stat_result.getattr("n_fields")?.extract::<usize>()?;
        if n_fields < 19 {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "os.stat_result has fewer than 19 fields",
            ));
        }
        let rx = start_walk(
            root.into_os_string().into_vec(),
            root_prefix.into_os_string().into_vec(),
        )?;
        Ok(Feed {
            rx: Mutex::new(Some(rx)),
            stat_result: stat_result.unbind(),
            n_fields,
        })
    }

    /// The next batch of the walk (StopIteration once it is done).
    pub(crate) fn next_batch(&self, py: Python<'_>) -> PyResult<Vec<Item>> {
        let stop = |_| PyStopIteration::new_err(());
        let Some(rx) = self.rx.lock().map_err(stop)?.take() else {
            return Err(PyStopIteration::new_err(()));
        };
        // Waiting for the walk thread must not hold the interpreter.
        let (rx, received) = py.allow_threads(move || {
            let received = rx.recv();
            (rx, received)
        });
        let Ok(batch) = received else {
            return Err(PyStopIteration::new_err(()));
        };
        *self.rx.lock().map_err(stop)? = Some(rx);
        Ok(batch)
    }

    pub(crate) fn stat(&self, py: Python<'_>, st: &Stat) -> PyResult<PyObject> {
        stat_object(py, self.stat_result.bind(py), self.n_fields, st)
    }
}

/// Iterates over lists of walk items; `Walker(root, root_prefix)` where root_prefix is
/// `os.path.join(root, "")` (what entries' full paths start with).
#[pyclass(module = "kbc_fastwalk")]
struct Walker {
    feed: Feed,
}

#[pymethods]
impl Walker {
    #[new]
    fn new(
        py: Python<'_>,
        root: std::path::PathBuf,
        root_prefix: std::path::PathBuf,
    ) -> PyResult<Self> {
        Ok(Walker {
            feed: Feed::start(py, root, root_prefix)?,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let batch = self.feed.next_batch(py)?;
        let none = py.None();
        let items = PyList::empty(py);
        for item in batch {
            let tuple = match item {
                Item::Entry { rel, path, st } => {
                    let st = self.feed.stat(py, &st)?;
                    PyTuple::new(
                        py,
                        [
                            obj(py, OsStr::from_bytes(&rel))?,
                            obj(py, OsStr::from_bytes(&path))?,
                            st,
                            none.clone_ref(py),
                        ],
                    )?
                }
                Item::Error { rel, path, errno } => {
                    let path_obj = obj(py, OsStr::from_bytes(&path))?;
                    let error = os_error(py, errno, &path_obj)?;
                    PyTuple::new(
                        py,
                        [
                            obj(py, OsStr::from_bytes(&rel))?,
                            path_obj,
                            none.clone_ref(py),
                            error,
                        ],
                    )?
                }
            };
            items.append(tuple)?;
        }
        Ok(items.unbind())
    }
}

pub(crate) fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> PyResult<PyObject> {
    value.into_py_any(py)
}

pub(crate) fn stat_object(
    py: Python<'_>,
    stat_result: &Bound<'_, PyAny>,
    n_fields: usize,
    st: &Stat,
) -> PyResult<PyObject> {
    use pyo3::ffi;
    let ns = |(sec, nsec): (i64, i64)| -> PyResult<PyObject> {
        // In an i64 until the year 2262; Python's int takes any time beyond that.
        Ok(
            match sec
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(nsec))
            {
                Some(ns) => obj(py, ns)?,
                None => obj(py, i128::from(sec) * 1_000_000_000 + i128::from(nsec))?,
            },
        )
    };
    let float = |(sec, nsec): (i64, i64)| sec as f64 + nsec as f64 * 1e-9;
    // os.stat_result's fields, in its order: the ten of the tuple, then the named ones.
    let fields: [PyObject; 19] = [
        obj(py, st.mode)?,
        obj(py, st.ino)?,
        obj(py, st.dev)?,
        obj(py, st.nlink)?,
        obj(py, st.uid)?,
        obj(py, st.gid)?,
        obj(py, st.size)?,
        obj(py, st.atime.0)?,
        obj(py, st.mtime.0)?,
        obj(py, st.ctime.0)?,
        obj(py, float(st.atime))?,
        obj(py, float(st.mtime))?,
        obj(py, float(st.ctime))?,
        ns(st.atime)?,
        ns(st.mtime)?,
        ns(st.ctime)?,
        obj(py, st.blksize)?,
        obj(py, st.blocks)?,
        obj(py, st.rdev)?,
    ];
    let fields_len = fields.len();
    // Filled in place, as os.lstat does (calling the type would build and copy a tuple first).
    // SAFETY: stat_result is os.stat_result, a struct sequence type of n_fields >= 19 fields
    // (checked when the Walker was made), and every one is set; SetItem takes over each reference.
    unsafe {
        let obj = ffi::PyStructSequence_New(stat_result.as_ptr() as *mut ffi::PyTypeObject);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        for (i, field) in fields.into_iter().enumerate() {
            ffi::PyStructSequence_SetItem(obj, i as ffi::Py_ssize_t, field.into_ptr());
        }
        for i in fields_len..n_fields {
            ffi::PyStructSequence_SetItem(obj, i as ffi::Py_ssize_t, py.None().into_ptr());
        }
        Ok(PyObject::from_owned_ptr(py, obj))
    }
}

/// Starts the walk thread; its batches arrive on the receiver.
pub(crate) fn start_walk(root: Vec<u8>, root_prefix: Vec<u8>) -> PyResult<Receiver<Vec<Item>>> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    thread::Builder::new()
        .name("kbc-walk".into())
        .spawn(move || walk(root, root_prefix, tx))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot start the walk: {e}")))?;
    Ok(rx)
}

/// An OSError for a path, as os.lstat raises it: OSError(errno, ...) gives the errno's subclass
/// (FileNotFoundError, ...).
pub(crate) fn os_error(py: Python<'_>, errno: i32, path: &PyObject) -> PyResult<PyObject> {
    let strerror = py.import("os")?.getattr("strerror")?.call1((errno,))?;
    Ok(py
        .import("builtins")?
        .getattr("OSError")?
        .call1((errno, strerror, path.clone_ref(py)))?
        .unbind())
}

mod scan;

#[pymodule]
fn kbc_fastwalk(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Walker>()?;
    m.add_class::<scan::Scan>()?;
    Ok(())
}
