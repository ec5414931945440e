"""VCF and VCF Zarr: read, convert (via bio2zarr), write.

A VCF Zarr store (the ``.vcz`` directory written by bio2zarr's ``vcf2zarr``,
by :func:`sgkit.save_dataset` or by :func:`write_vcz`) is the on-disk form of a
popgen cohort: one Zarr array per variable of :mod:`popgen.variables`, chunked
along ``variants`` and ``samples``.  :func:`read_vcz` opens one lazily.

A VCF or BCF is converted once with :func:`vcf_to_vcz` into a store cached
beside it (``cohort.vcf.gz`` -> ``cohort.vcf.gz.vcz``); :func:`read_vcf` does
both steps.  bio2zarr needs a bgzipped, indexed input when the file has more
than one contig; when the input has no up-to-date ``.tbi``/``.csi`` beside it,
a bgzipped copy and a CSI index are made in the conversion's temporary
directory with the htslib that cyvcf2 ships (no ``bgzip``/``tabix`` needed).

Every store is written under a temporary name next to its final path and
renamed into place once complete, so a store under the final name is never
half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import warnings
from typing import TYPE_CHECKING

from popgen import backend
from popgen.errors import PopgenError

if TYPE_CHECKING:
    import xarray as xr

#: file inside a converted store recording the VCF it was made from
STAMP_NAME = "popgen_source.json"
#: bumped when the conversion changes in a way that invalidates cached stores
_STAMP_FORMAT = 1

_ZARR_MARKERS = (".zgroup", ".zmetadata", "zarr.json")


# ---------------------------------------------------------------------------
# reading


def read_vcz(path, *, chunks: dict | None = None, device: str = "cpu") -> xr.Dataset:
    """Open a VCF Zarr store lazily as a popgen cohort.

    Parameters
    ----------
    path : str or os.PathLike
        Directory of a VCF Zarr store, as written by bio2zarr ``vcf2zarr``,
        :func:`sgkit.save_dataset` or :func:`write_vcz`.
    chunks : dict, optional
        Dask chunk sizes by dimension, e.g. ``{"variants": 10_000, "samples":
        10_000}``; dimensions not named keep the store's chunking.  Chunks that
        are a multiple of the store's avoid reading any Zarr chunk twice.
    device : {"cpu", "gpu", "auto"}
        Where genotype chunks live once computed: ``"gpu"`` maps every chunk
        of ``call_genotype`` and ``call_genotype_mask`` to CuPy (the copy
        happens when a chunk is computed); ``"auto"`` picks the GPU when one is
        usable.  ``"gpu"`` without a usable GPU raises :class:`PopgenError`.

    Returns
    -------
    xarray.Dataset
        Lazy (Dask-backed) dataset with the variables of
        :mod:`popgen.variables`: ``call_genotype`` int8 (or wider for more
        than 127 alleles), shape (variants, samples, ploidy), -1 missing (a haploid
        call, padded with -2 by bio2zarr, reads as homozygous: PLINK 2's import);
        ``call_genotype_mask`` bool, True where the call is missing;
        ``variant_contig`` indexing ``contig_id``; ``variant_position``
        (at least int32), ``variant_allele`` (REF first, "" padding),
        ``variant_id`` and ``sample_id`` when the store has them.  Other
        variables of the store (``call_genotype_phased``, ``variant_filter``,
        INFO and FORMAT fields) are kept as they are.

    Raises
    ------
    PopgenError
        The store is missing, is not a Zarr store, or lacks a required
        variable.
    """
    import numpy as np

    device = _check_device(device)
    path = pathlib.Path(path)
    ds = _open_store(path)

    from popgen.variables import validate

    validate(ds, source=path)

    g = ds["call_genotype"]
    # bio2zarr pads lower-ploidy calls with -2: a haploid call (a male's chrX or chrY, MT) is
    # read as homozygous, as PLINK 2 imports it (``1`` -> 1/1, ALT count 2; ``.`` -> missing),
    # and the chrX/chrY/MT models count it as one allele (popgen.qc, popgen.association)
    ds["call_genotype"] = g.copy(data=g.data.map_blocks(_haploid_as_homozygous, dtype=g.dtype))
    ds["call_genotype_mask"] = ds["call_genotype"] < 0
    if ds["variant_position"].dtype.itemsize < 4:  # bio2zarr picks the smallest int
        ds["variant_position"] = ds["variant_position"].astype(np.int32)

    if chunks:
        unknown = sorted(set(chunks) - set(ds.dims))
        if unknown:
            raise PopgenError(f"cannot rechunk unknown dimension(s) {unknown}; dims are {sorted(ds.dims)}", path)
        ds = ds.chunk(chunks)

    if device == "gpu":
        for name in ("call_genotype", "call_genotype_mask"):
            var = ds[name]
            meta = backend.empty_meta("gpu", var.ndim, var.dtype)
            ds[name] = var.copy(data=var.data.map_blocks(backend.to_gpu, dtype=var.dtype, meta=meta))
    return ds


def _haploid_as_homozygous(gt):
    """Calls padded with bio2zarr's -2 (lower ploidy) get their first allele in the padding
    (NumPy blocks, as the store gives them)."""
    import numpy as np

    return np.where(gt == -2, gt[..., :1], gt).astype(gt.dtype, copy=False)


def read_vcf(path, *, chunks: dict | None = None, device: str = "cpu") -> xr.Dataset:
    """Read a VCF/BCF through its cached VCF Zarr store.

    Converts ``path`` with :func:`vcf_to_vcz` (once; later calls reuse the
    store beside it) and opens the store with :func:`read_vcz`; see those
    functions for the parameters and the returned variables.
    """
    return read_vcz(vcf_to_vcz(path), chunks=chunks, device=device)


def _check_device(device: str) -> str:
    if device in ("cpu", "gpu"):
        # "gpu" is checked here so that a missing GPU is one clear error, not a
        # CUDA error from building the chunks' metadata.
        return device if device == "cpu" else backend.resolve_device("gpu")
    return backend.resolve_device(device)


def _open_store(path: pathlib.Path):
    if not path.exists():
        raise PopgenError("no such VCF Zarr store", path)
    if not path.is_dir():
        raise PopgenError("not a VCF Zarr store (expected a directory)", path)
    if not any((path / m).exists() for m in _ZARR_MARKERS):
        raise PopgenError("not a VCF Zarr store (no .zgroup/.zmetadata inside)", path)

    import sgkit

    try:
        with warnings.catch_warnings():
            # stores without consolidated metadata open fine, just more slowly
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*", category=RuntimeWarning)
            return sgkit.load_dataset(str(path))
    except Exception as e:  # zarr/xarray raise many types for broken stores
        raise PopgenError(f"cannot open as a VCF Zarr store: {_one_line(e)}", path) from e


# ---------------------------------------------------------------------------
# VCF -> VCF Zarr


def vcf_to_vcz(vcf_path, *, out=None, cache: bool = True, worker_processes: int = 0) -> pathlib.Path:
    """Convert a VCF or BCF into a VCF Zarr store with bio2zarr, cached.

    Parameters
    ----------
    vcf_path : str or os.PathLike
        Plain ``.vcf``, gzip- or bgzip-compressed ``.vcf.gz``, or ``.bcf``
        (the content decides, not the suffix).  Records must be sorted by
        position within each contig.  An up-to-date ``.tbi`` or ``.csi`` index
        beside it is used; otherwise a bgzipped copy and an index are made in
        a temporary directory next to ``out``.
    out : str or os.PathLike, optional
        Store to write; default ``<vcf_path>.vcz``.
    cache : bool
        Reuse ``out`` when its stamp (``popgen_source.json`` inside the store)
        records the same source path, size and modification time as
        ``vcf_path`` has now; otherwise (or with ``cache=False``) convert
        again and replace ``out``.
    worker_processes : int
        bio2zarr worker processes; 0 (default) converts in this process, which
        also works from scripts without an ``if __name__ == "__main__"`` guard.

    Returns
    -------
    pathlib.Path
        Path of the store, ready for :func:`read_vcz`.

    Raises
    ------
    PopgenError
        The VCF is missing, unreadable (not VCF/BCF, truncated, unsorted), or
        ``out`` exists and is not a Zarr store (it is never overwritten then).
    """
    src = pathlib.Path(vcf_path)
    if not src.exists():
        raise PopgenError("no such VCF/BCF file", src)
    if not src.is_file():
        raise PopgenError("not a VCF/BCF file (it is a directory)", src)
    out = pathlib.Path(out) if out is not None else src.with_name(src.name + ".vcz")
    _check_replaceable(out)
    stamp = _source_stamp(src)
    if cache and _read_stamp(out) == stamp:
        return out

    _check_readable(src)
    from bio2zarr import vcf as b2z_vcf

    with _staging_dir(out) as tmp:
        vcf = _indexed_input(src, tmp)
        store = tmp / "store.vcz"
        try:
            with warnings.catch_warnings():
                # bio2zarr 0.1.6 trips NumPy deprecations of its own; not the user's concern
                warnings.simplefilter("ignore", DeprecationWarning)
                b2z_vcf.convert([str(vcf)], str(store), worker_processes=worker_processes, icf_path=str(tmp / "icf"))
        except PopgenError:
            raise
        except Exception as e:
            raise PopgenError(f"bio2zarr cannot convert it (truncated or corrupt?): {_one_line(e)}", src) from e
        (store / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
        _move_into_place(store, out)
    return out


def _source_stamp(src: pathlib.Path) -> dict:
    st = src.stat()
    return {
        "format": _STAMP_FORMAT,
        "source": os.fspath(src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def _read_stamp(store: pathlib.Path) -> dict | None:
    try:
        return json.loads((store / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _check_readable(src: pathlib.Path) -> None:
    """Fail early, with the file's name, on input htslib cannot parse."""
    import cyvcf2

    try:
        vcf = cyvcf2.VCF(os.fspath(src), lazy=True)
    except Exception as e:
        raise PopgenError(f"not a readable VCF/BCF: {_one_line(e)}", src) from e
    try:
        if not vcf.samples:
            raise PopgenError("VCF has no samples (no genotype columns)", src)
    finally:
        vcf.close()


def _indexed_input(src: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
    """A path bio2zarr can read: ``src`` itself, or a bgzipped/indexed stand-in in ``tmp``."""
    if _fresh_index(src):
        return src
    head = _head(src, 18)
    is_gzip = head[:2] == b"\x1f\x8b"
    is_bgzf = is_gzip and len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"
    if is_bgzf:
        # index it where it is, through a link, so the user's folder is untouched
        link = tmp / ("input.bcf" if _bgzf_is_bcf(src) else "input.vcf.gz")
        try:
            link.symlink_to(src.resolve())
        except OSError:  # filesystems without symlinks
            shutil.copyfile(src, link)
        _build_index(link, src)
        return link
    dest = tmp / ("input.bcf" if head[:3] == b"BCF" else "input.vcf.gz")
    _bgzip(src, dest, gzipped=is_gzip)
    _build_index(dest, src)
    return dest


def _head(path: pathlib.Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _bgzf_is_bcf(path: pathlib.Path) -> bool:
    import gzip

    try:
        with gzip.open(path, "rb") as f:
            return f.read(3) == b"BCF"
    except (OSError, EOFError) as e:
        raise PopgenError(f"truncated or corrupt compressed file: {_one_line(e)}", path) from e


def _fresh_index(src: pathlib.Path) -> bool:
    """An index bio2zarr will find (``<src>.tbi`` / ``<src>.csi``) no older than ``src``."""
    mtime = src.stat().st_mtime_ns
    for suffix in (".tbi", ".csi"):
        idx = src.with_name(src.name + suffix)
        if idx.exists() and idx.stat().st_mtime_ns >= mtime:
            return True
    return False


def _htslib():
    """ctypes handle on the htslib statically linked into cyvcf2's extension."""
    import ctypes

    import cyvcf2.cyvcf2 as ext

    lib = ctypes.CDLL(ext.__file__)
    try:
        lib.bgzf_open.restype = ctypes.c_void_p
        lib.bgzf_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.bgzf_write.restype = ctypes.c_ssize_t
        lib.bgzf_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.bgzf_close.restype = ctypes.c_int
        lib.bgzf_close.argtypes = [ctypes.c_void_p]
        lib.bcf_index_build3.restype = ctypes.c_int
        lib.bcf_index_build3.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    except AttributeError as e:  # a cyvcf2 build that does not export htslib
        raise PopgenError(
            f"cannot index VCFs here ({e}); bgzip and index the file yourself (bcftools index / tabix -p vcf)"
        ) from e
    return lib


def _bgzip(src: pathlib.Path, dest: pathlib.Path, *, gzipped: bool, block: int = 1 << 22) -> None:
    """Stream ``src`` (plain or gzip) into BGZF at ``dest``."""
    import gzip
    import zlib

    lib = _htslib()
    fp = lib.bgzf_open(os.fsencode(dest), b"w")
    if not fp:
        raise PopgenError("cannot create a bgzipped copy", dest)
    ok = True
    try:
        with gzip.open(src, "rb") if gzipped else open(src, "rb") as f:
            while chunk := f.read(block):
                if lib.bgzf_write(fp, chunk, len(chunk)) != len(chunk):
                    ok = False
                    break
    except (OSError, EOFError, zlib.error) as e:
        lib.bgzf_close(fp)
        raise PopgenError(f"truncated or corrupt gzip file: {_one_line(e)}", src) from e
    if lib.bgzf_close(fp) != 0 or not ok:
        raise PopgenError("cannot write a bgzipped copy", dest)


def _build_index(path: pathlib.Path, src: pathlib.Path) -> None:
    """Write ``<path>.csi`` (htslib ``bcf_index_build3``, as ``bcftools index``)."""
    rc = _htslib().bcf_index_build3(os.fsencode(path), None, 14, 0)
    if rc != 0:
        why = {-2: "cannot open it", -3: "format not indexable"}.get(rc, "truncated, corrupt or unsorted")
        raise PopgenError(f"cannot index it for conversion: {why} (htslib error {rc})", src)


# ---------------------------------------------------------------------------
# writing


def write_vcz(ds, path) -> None:
    """Write a cohort as a VCF Zarr store, chunk by chunk.

    Parameters
    ----------
    ds : xarray.Dataset
        A popgen cohort (see :mod:`popgen.variables`), in memory or lazy.
        Dask variables are written chunk by chunk as they are computed, so the
        genotype matrix is never held whole; a variable with non-uniform
        chunks is rechunked to its largest chunk along that dimension first
        (Zarr needs uniform chunks).  Chunks on the GPU are copied to host.
        ``call_genotype_mask`` is added (``call_genotype < 0``) if missing.
    path : str or os.PathLike
        Store to write.  An existing Zarr store there is replaced once the new
        one is complete; any other existing path is an error.

    Notes
    -----
    The store opens with :func:`read_vcz` and :func:`sgkit.load_dataset`.
    Object-dtype string variables are stored as variable-length UTF-8
    (numcodecs ``VLenUTF8``) without computing them first; their elements
    must be ``str``.  Encodings carried over from a store the data was read
    from (chunks, compressors) are dropped.
    """
    import numpy as np

    from popgen.variables import validate

    path = pathlib.Path(path)
    validate(ds, source=path)
    _check_replaceable(path)

    # derived views (call_alt_count) are not part of a VCF Zarr store
    ds = ds.drop_vars([v for v in ("call_alt_count",) if v in ds])
    if "call_genotype_mask" not in ds:
        ds["call_genotype_mask"] = ds["call_genotype"] < 0
    for name, var in ds.variables.items():
        var.encoding = {}
        data = var.data
        if not _is_dask(data):
            continue
        if backend.is_cupy(data):
            data = data.map_blocks(backend.to_cpu, dtype=data.dtype, meta=np.empty((0,) * data.ndim, data.dtype))
        if data.dtype.kind == "O":
            vlen = _vlen_str()
            data = data.map_blocks(_as_vlen_str, dtype=vlen, meta=np.empty((0,) * data.ndim, vlen))
        uniform = {i: max(c) for i, c in enumerate(data.chunks) if len(set(c[:-1])) > 1 or c[-1] > c[0]}
        if uniform:
            data = data.rechunk(uniform)
        if data is not var.data:
            var.data = data

    with _staging_dir(path) as tmp:
        store = tmp / "store.vcz"
        try:
            ds.to_zarr(os.fspath(store), mode="w", consolidated=True, compute=True)
        except PopgenError:
            raise
        except Exception as e:
            raise PopgenError(f"cannot write the VCF Zarr store: {_one_line(e)}", path) from e
        _move_into_place(store, path)


def _vlen_str():
    """Object dtype tagged as variable-length str: xarray writes it as VLenUTF8 without inferring."""
    import numpy as np

    return np.dtype("O", metadata={"element_type": str})


def _as_vlen_str(block):
    import numpy as np

    out = np.empty(block.shape, dtype=_vlen_str())
    out[...] = block
    return out


def _is_dask(x) -> bool:
    return type(x).__module__.startswith("dask.") and hasattr(x, "_meta")


# ---------------------------------------------------------------------------
# staging: temporary directory next to the target, renamed into place


def _check_replaceable(out: pathlib.Path) -> None:
    if out.is_symlink() or out.exists():
        if not out.is_dir() or not any((out / m).exists() for m in _ZARR_MARKERS):
            raise PopgenError("exists and is not a Zarr store; refusing to overwrite it", out)


@contextlib.contextmanager
def _staging_dir(out: pathlib.Path):
    """A temporary directory beside ``out``, removed afterwards whatever happens."""
    from popgen.io.files import scratch_directory

    out.parent.mkdir(parents=True, exist_ok=True)
    with scratch_directory(out.parent, f"{out.name}.tmp") as tmp:
        yield tmp


def _move_into_place(store: pathlib.Path, out: pathlib.Path) -> None:
    """Rename the finished ``store`` to ``out``; an old store there is moved aside first."""
    if out.is_symlink() or out.exists():
        os.replace(out, store.parent / "replaced")  # removed with the staging dir
    os.replace(store, out)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
