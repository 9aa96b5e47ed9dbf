"""Copying a volume's files the way a block-level disk snapshot keeps them.

A cloud disk snapshot copies blocks, so whatever the file system holds comes back as it was: hard
links stay one file with several names, sparse files keep their holes (a 1 GiB file with 4 KiB of
data stays 4 KiB on disk), and modes, owners, times and extended attributes stay.  ``shutil.copytree``
keeps none of the first two; the local disk driver copies with :func:`copy_volume` instead, on every
disk-snapshot path (snapshot, restore from a snapshot, cross-region copy).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

_CHUNK = 4 * 1024 * 1024


def copy_volume(source: Path, target: Path) -> None:
    """Copy the tree at ``source`` to ``target`` (which must not exist; its parents are made), keeping
    links, holes and metadata.  Directory times are set last, after their contents were written."""
    seen: dict[tuple[int, int], Path] = {}  # (device, inode) of a multiply-linked file -> its copy
    directories: list[tuple[Path, os.stat_result]] = []
    target.parent.mkdir(parents=True, exist_ok=True)  # as copytree: the folder holding it may be new
    _copy_dir(source, target, seen, directories)
    for path, st in reversed(directories):  # children before parents: writing a child changes its mtime
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_dir(
    source: Path, target: Path, seen: dict[tuple[int, int], Path], dirs: list[tuple[Path, os.stat_result]]
) -> None:
    st = os.lstat(source)
    target.mkdir(mode=0o700)
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        src, dst = Path(entry.path), target / entry.name
        est = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(est.st_mode):
            _copy_dir(src, dst, seen, dirs)
        elif stat.S_ISLNK(est.st_mode):
            os.symlink(os.readlink(src), dst)
            _metadata(src, dst, est, follow=False)
        elif stat.S_ISREG(est.st_mode):
            key = (est.st_dev, est.st_ino)
            if est.st_nlink > 1 and key in seen:
                os.link(seen[key], dst)  # another name of a file already copied
                continue
            _copy_file(src, dst)
            _metadata(src, dst, est, follow=True)
            if est.st_nlink > 1:
                seen[key] = dst
        elif stat.S_ISFIFO(est.st_mode):
            os.mkfifo(dst)
            _metadata(src, dst, est, follow=True)
        elif stat.S_ISCHR(est.st_mode) or stat.S_ISBLK(est.st_mode):
            os.mknod(dst, est.st_mode, est.st_rdev)
            _metadata(src, dst, est, follow=True)
        # Sockets are not data: a snapshot of a live file system has them, a restore cannot use them.
    _metadata(source, target, st, follow=True, times=False)
    dirs.append((target, st))


def _copy_file(source: Path, target: Path) -> None:
    """Copy the data regions only (SEEK_DATA/SEEK_HOLE): holes stay holes."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            _copy_range(src.fileno(), dst.fileno(), start, end)
            offset = end
        dst.truncate(size)  # a trailing hole keeps the file's length


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    position = start
    while position < end:
        count = min(_CHUNK, end - position)
        try:
            n = os.copy_file_range(src, dst, count, position, position)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, count, position)  # no in-kernel copy here: through user space
            n = os.pwrite(dst, data, position) if data else 0
        if n == 0:
            return
        position += n


def _metadata(source: Path, target: Path, st: os.stat_result, *, follow: bool, times: bool = True) -> None:
    with contextlib.suppress(PermissionError):  # not root: owners stay the copier's
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=follow)
    if follow:
        os.chmod(target, stat.S_IMODE(st.st_mode))
    for name in _xattrs(source, follow):
        with contextlib.suppress(OSError):
            os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=follow),
                        follow_symlinks=follow)
    if times:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=follow)


def _xattrs(path: Path, follow: bool) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=follow)
    except OSError:  # the file system has none
        return []
