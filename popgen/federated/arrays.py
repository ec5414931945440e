"""Per-variant arrays that live on disk: the federated GWAS's sufficient statistics are
(variants x phenotypes x predictors^2) -- 10^7 variants with 12 covariates are ~16 GB per
phenotype -- so sites and the coordinator write and read them a block of rows at a time
(``os.pwrite`` / ``os.pread``, never mapped: memory stays at one block, and file pages are
the kernel's to drop).

:class:`DiskArray` is a C-order ``.npy`` file (or a ``.npy`` member stored uncompressed in a
bundle) indexed along its first axis; :class:`Scratch` allocates them in a temporary
directory (or, without one, as ordinary NumPy arrays, e.g. in tests).
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading

import numpy as np

#: bytes read or written per system call
_IO_BYTES = 16 * 2**20
#: guards opening a DiskArray's file on first use
_OPEN_LOCK = threading.Lock()
#: rows this many bytes apart or closer are read together with the rows between (one system call
#: instead of one per row)
_GAP_BYTES = 64 * 2**10


class DiskArray:
    """A C-order array of a ``.npy`` file, read and written by rows along the first axis.

    ``a[i]``, ``a[i:j]`` and ``a[rows]`` (integer array) read rows into memory (a tuple
    key applies its first item along the rows, the rest to the rows read);
    ``a[rows] = values`` writes rows; ``np.asarray(a)`` reads everything.
    """

    def __init__(self, path, shape, dtype, offset: int, *, writable: bool = False):
        self.path = str(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)
        self._writable = writable
        # opened on first use (and again after close()): a combine may hold many sites' arrays,
        # and an open file each could exceed the process's limit on open files
        self._fd = None
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def create(cls, path, shape, dtype) -> "DiskArray":
        """A new ``.npy`` file of zeros (sparse: nothing is written but its header)."""
        dtype = np.dtype(dtype)
        with open(path, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": tuple(shape)})
            offset = f.tell()
            f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        return cls(path, shape, dtype, offset, writable=True)

    @classmethod
    def open_npy(cls, path, offset: int = 0) -> "DiskArray":
        """The array of a C-order ``.npy`` file, or of one starting ``offset`` bytes into ``path``."""
        with open(path, "rb") as f:
            f.seek(offset)
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            start = f.tell()
        if fortran and len(shape) > 1:
            raise ValueError(f"{path}: a Fortran-order array cannot be read by rows")
        return cls(path, shape, dtype, start)

    # ---------------------------------------------------------------- array protocol

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self._row * self.shape[0] if self.shape else self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def _handle(self) -> int:
        fd = self._fd
        if fd is None:
            with _OPEN_LOCK:  # Dask's threads may read one array at once
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDWR if self._writable else os.O_RDONLY)
                fd = self._fd
        return fd

    def __getstate__(self):
        # a file descriptor means nothing in another process (a Dask worker reading rows): the
        # copy opens the file again
        return {**self.__dict__, "_fd": None}

    def close(self) -> None:
        """Close the file (a later read or write opens it again)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except (OSError, TypeError):
            pass

    # ---------------------------------------------------------------- rows

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        buf = memoryview(out.reshape(-1).view(np.uint8))
        pos, done = self.offset + start * self._row, 0
        while done < len(buf):  # positional reads: safe from several threads at once
            data = os.pread(self._handle(), min(_IO_BYTES, len(buf) - done), pos + done)
            if not data:
                raise OSError(f"{self.path}: unexpected end of file")
            buf[done:done + len(data)] = data
            done += len(data)
        return out

    def _write(self, start: int, values: np.ndarray) -> None:
        from popgen.io.files import pwrite_all

        pwrite_all(self._handle(), np.ascontiguousarray(values, dtype=self.dtype).reshape(-1).view(np.uint8),
                   self.offset + start * self._row)

    @staticmethod
    def _runs(rows: np.ndarray, gap: int = 1):
        """(position in ``rows``, first row, length) of each run of consecutive rows (sorted
        ``rows`` at most ``gap`` apart: the rows between are part of the run)."""
        if not len(rows):
            return []
        d = np.diff(rows)
        cut = np.flatnonzero(d != 1 if gap == 1 else (d < 0) | (d > gap)) + 1
        starts = np.concatenate([[0], cut])
        stops = np.concatenate([cut, [len(rows)]])
        return [(int(a), int(rows[a]), int(b - a)) for a, b in zip(starts, stops)]

    def _rows(self, key):
        if isinstance(key, (int, np.integer)):
            k = int(key) + (self.shape[0] if key < 0 else 0)
            return slice(k, k + 1), True
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                return slice(start, max(start, stop)), False
            return np.arange(start, stop, step), False
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return rows.astype(np.int64), False

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        rows, scalar = self._rows(key)
        if isinstance(rows, slice):
            out = self._read(rows.start, rows.stop)
        else:
            out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
            order = np.argsort(rows, kind="stable")
            srt = rows[order]
            # rows a few apart (e.g. every 10th variant) come with one read of the rows between
            for pos, first, n in self._runs(srt, gap=max(1, _GAP_BYTES // max(self._row, 1))):
                span = srt[pos:pos + n]
                out[order[pos:pos + n]] = self._read(first, int(span[-1]) + 1)[span - first]
        if scalar:
            out = out[0]
        return out[(slice(None),) * (0 if scalar else 1) + rest] if rest else out

    def __setitem__(self, key, values):
        rows, scalar = self._rows(key)
        shape = (1 if scalar else (rows.stop - rows.start if isinstance(rows, slice) else len(rows)),) + self.shape[1:]
        values = np.broadcast_to(np.asarray(values, dtype=self.dtype), shape)
        if isinstance(rows, slice):
            self._write(rows.start, values)
            return
        for pos, first, n in self._runs(rows):
            self._write(first, values[pos:pos + n])

    def chunks(self):
        """The file's bytes (``.npy`` header included when the array is a whole ``.npy`` file)
        in pieces of about :data:`_IO_BYTES`, for copying it into a bundle."""
        end = self.offset + self.nbytes
        pos = 0
        while pos < end:
            n = min(_IO_BYTES, end - pos)
            yield os.pread(self._handle(), n, pos)
            pos += n


class RowView:
    """Rows ``rows`` (and, optionally, columns ``cols`` of the second axis) of an array or
    :class:`DiskArray`, read only when sliced: what ``dask.array.from_array`` needs to read a
    DiskArray's rows chunk by chunk."""

    def __init__(self, arr, rows, cols=None):
        self.arr, self.rows = arr, np.asarray(rows, dtype=np.int64)
        self.cols = None if cols is None else np.asarray(cols, dtype=np.int64)
        inner = tuple(arr.shape[1:]) if self.cols is None else (len(self.cols),) + tuple(arr.shape[2:])
        self.shape = (len(self.rows),) + inner
        self.dtype = np.dtype(arr.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        out = self.arr[self.rows[key[0]]]
        if self.cols is not None:
            out = out[:, self.cols]
        return out[(slice(None),) + tuple(key[1:])] if len(key) > 1 else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class Scratch:
    """Allocates the arrays a federated step builds row by row: :class:`DiskArray` files in a
    temporary directory under ``directory`` (removed on :meth:`close`), or NumPy arrays when
    ``directory`` is None.  The directory is a :func:`popgen.io.files.scratch_dir`: the next
    step there removes one a killed process left."""

    def __init__(self, directory=None):
        from popgen.io.files import scratch_dir

        self.dir = None if directory is None else str(scratch_dir(directory, "popgen-scratch"))
        self._names = itertools.count()

    @classmethod
    def beside(cls, path) -> "Scratch":
        """Scratch files in the directory of the output ``path`` (created if need be)."""
        from pathlib import Path

        from popgen.io.files import ensure_parent

        ensure_parent(path)
        return cls(Path(str(path)).parent)

    def zeros(self, shape, dtype=np.float64):
        if self.dir is None:
            return np.zeros(shape, dtype=dtype)
        return DiskArray.create(os.path.join(self.dir, f"{next(self._names)}.npy"), shape, dtype)

    def full(self, shape, fill, dtype=np.float64):
        """An array of ``fill`` (written a block of rows at a time on disk)."""
        arr = self.zeros(shape, dtype)
        if fill != 0:
            if isinstance(arr, np.ndarray):
                arr[...] = fill
            else:
                step = max(1, _IO_BYTES // max(arr._row, 1))
                for i in range(0, shape[0], step):
                    arr[i:min(shape[0], i + step)] = fill
        return arr

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: rows per block of :func:`tall_qr` (None: sqrt(rows x columns), at least twice the columns)
QR_ROWS = None


def tall_qr(read, shape, out, *, rows: int | None = None):
    """The Q factor of the thin QR of a tall matrix ``A`` of ``shape``, a block of rows at a time.

    ``read(start, stop)`` returns ``A[start:stop]``; Q (``min(shape)`` columns) is written into
    ``out`` (a :class:`DiskArray` or an array) by rows.  TSQR (Demmel, Grigori, Hoemmen and
    Langou, SIAM J. Sci. Comput. 34, 2012): the QR of each block, the QR of the blocks' stacked
    R factors, then each block's Q times its slice of that second Q.  Householder throughout,
    so Q is as orthonormal as ``np.linalg.qr(A)``'s, also where ``A`` is nearly rank-deficient
    (a Krylov basis late in its rounds); where ``A`` has full rank the two agree up to the signs
    of columns.  Memory: a few blocks of ``rows`` rows (default :data:`QR_ROWS`, else
    ``sqrt(rows x columns)``, which balances the blocks against the stacked R factors, blocks x
    columns^2: 6,600 rows, 12 MB each, for 200,000 x 220; 47,000 rows, 82 MB, for 10^7 x 220).
    Returns ``out``.
    """
    import math

    n_rows, n = (int(x) for x in shape)
    rows = max(int(rows or QR_ROWS or math.isqrt(n_rows * n)), 2 * n)
    if n_rows <= rows:
        out[0:n_rows] = np.linalg.qr(read(0, n_rows))[0]
        return out
    n_blocks = -(-n_rows // rows)
    bounds = [int(b) for b in np.linspace(0, n_rows, n_blocks + 1)]  # every block >= 2n rows: Q_i has n columns
    r_stack = np.empty((n_blocks * n, n))
    for i in range(n_blocks):
        q, r_stack[i * n:(i + 1) * n] = np.linalg.qr(read(bounds[i], bounds[i + 1]))
        out[bounds[i]:bounds[i + 1]] = q
    q2 = np.linalg.qr(r_stack)[0]
    for i in range(n_blocks):
        out[bounds[i]:bounds[i + 1]] = out[bounds[i]:bounds[i + 1]] @ q2[i * n:(i + 1) * n]
    return out
