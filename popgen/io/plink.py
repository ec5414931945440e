"""PLINK 1 binary filesets (.bed/.bim/.fam): lazy chunked reader and streaming writer.

The reader memory-maps the .bed and builds a Dask array of *packed* bytes
chunked along variants and samples; decoding the 2-bit codes is the
``decode_bed`` kernel, run block by block on the device that computes
(``device="gpu"`` ships the packed bytes, 4x smaller than the calls, to the GPU
and decodes there).  Alleles follow PLINK 2: .bim column 6 (A2) is REF and
column 5 (A1) is ALT.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
#: default chunk sizes (variants, samples): None = automatic (see :func:`auto_chunks`)
DEFAULT_CHUNKS = (None, None)
#: decoded int8 bytes per block with automatic chunking
AUTO_BLOCK_BYTES = 16 * 2**20
#: most samples in one chunk with automatic chunking
AUTO_MAX_SAMPLES = 65536


def auto_chunks(n_samples: int, chunks=(None, None)) -> tuple[int, int]:
    """Chunk sizes for a .bed: every sample in one chunk (a .bed row holds all samples,
    and whole-sample passes -- PCA, logistic regression -- need no rechunking) up to
    :data:`AUTO_MAX_SAMPLES`, and as many variants as fit :data:`AUTO_BLOCK_BYTES`
    of decoded genotypes.  Given sizes are kept."""
    v, s = chunks
    if s is None:
        s = max(4, min(int(n_samples), AUTO_MAX_SAMPLES))
    if v is None:
        v = max(64, AUTO_BLOCK_BYTES // max(1, int(s)))
    return int(v), int(s)


def _read_table(path: Path, n_cols: int, names: list[str], dtypes: dict):
    import pandas as pd

    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c", comment=None)
    except pd.errors.EmptyDataError:
        raise PopgenError("file is empty", path) from None
    except Exception as e:  # parser errors, unreadable bytes
        raise PopgenError(f"cannot parse: {str(e).splitlines()[0]}", path) from None
    if df.shape[1] != n_cols:
        raise PopgenError(f"expected {n_cols} columns, found {df.shape[1]}", path)
    df.columns = names
    for col, kind in dtypes.items():
        try:
            df[col] = df[col].astype(kind)
        except ValueError:
            raise PopgenError(f"column {col} is not numeric", path) from None
    return df


def read_fam(path) -> pandas.DataFrame:
    """Read a .fam: FID IID PAT MAT SEX PHENO (whitespace separated, no header)."""
    return _read_table(Path(path), 6, ["FID", "IID", "PAT", "MAT", "SEX", "PHENO"], {"SEX": "int8"})


def read_bim(path) -> pandas.DataFrame:
    """Read a .bim: CHR ID CM POS A1 A2 (whitespace separated, no header)."""
    return _read_table(Path(path), 6, ["CHR", "ID", "CM", "POS", "A1", "A2"], {"CM": "float64", "POS": "int64"})


class _BedArray:
    """Array-like view of a .bed's packed rows, opened on demand.

    Pickles as a path (not as data), so Dask can ship it to workers; each
    ``__getitem__`` memory-maps the file and copies out one block.
    """

    def __init__(self, path: str, n_variants: int, n_bytes: int):
        self.path = path
        self.shape = (n_variants, n_bytes)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 2

    def __getitem__(self, key):
        mm = np.memmap(self.path, dtype=np.uint8, mode="r", offset=3, shape=self.shape)
        return np.array(mm[key])


def _check_bed(bed: Path, n_variants: int, n_samples: int, bim: Path, fam: Path) -> int:
    if not bed.is_file():
        raise PopgenError("file not found", bed)
    n_bytes = (n_samples + 3) // 4
    size = bed.stat().st_size
    with open(bed, "rb") as f:
        magic = f.read(3)
    if len(magic) < 3 or magic[:2] != BED_MAGIC[:2]:
        raise PopgenError(f"not a PLINK 1 .bed file (magic bytes {magic.hex() or 'missing'}, expected 6c1b01)", bed)
    if magic[2] != 0x01:
        raise PopgenError("sample-major .bed files are not supported; convert with plink --make-bed", bed)
    expected = 3 + n_variants * n_bytes
    if size != expected:
        implied = (size - 3) / n_bytes if n_bytes else float("nan")
        what = "truncated" if size < expected else "too long"
        raise PopgenError(
            f"{what}: {size} bytes, but {bim.name} has {n_variants} variants and {fam.name} has "
            f"{n_samples} samples, which need {expected} bytes ({implied:.6g} variants' worth present)",
            bed,
        )
    return n_bytes


def read_plink(prefix, *, chunks: tuple[int, int] = DEFAULT_CHUNKS, device: str = "cpu"):
    """Open a PLINK 1 fileset lazily as an sgkit-compatible Dataset.

    Parameters
    ----------
    prefix : str or path
        Path without extension (``cohort`` for ``cohort.bed/.bim/.fam``); a
        trailing ``.bed`` is accepted.
    chunks : (int or None, int or None)
        Chunk sizes along variants and samples (None: :func:`auto_chunks`); the
        samples chunk is rounded up to a multiple of 4 (whole bytes of the .bed).
    device : {"cpu", "gpu"}
        Where the 2-bit decoding (and everything downstream) runs.

    Returns
    -------
    xarray.Dataset
        ``call_genotype`` int8 (variants, samples, ploidy=2), -1 missing, Dask
        backed with NumPy or CuPy chunks; ``call_genotype_mask``;
        ``call_alt_count`` int8 (variants, samples), the decoded ALT counts
        ``call_genotype`` is derived from (statistics read it directly);
        ``variant_contig``/``contig_id``, ``variant_position``,
        ``variant_allele`` (REF = .bim A2, ALT = .bim A1), ``variant_id``,
        ``variant_cm_position``; ``sample_id`` (IID), ``sample_family_id``,
        ``sample_paternal_id``, ``sample_maternal_id``, ``sample_sex``,
        ``sample_phenotype`` (.fam column 6, as text).
    """
    import dask.array as da
    import xarray as xr

    from popgen.backend import empty_meta

    prefix = str(prefix)
    if prefix.endswith(".bed"):
        prefix = prefix[:-4]
    bed, bim, fam = (Path(prefix + ext) for ext in (".bed", ".bim", ".fam"))
    for p in (bed, bim, fam):
        if not p.is_file():
            raise PopgenError("file not found", p)
    fam_df = read_fam(fam)
    bim_df = read_bim(bim)
    n_variants, n_samples = len(bim_df), len(fam_df)
    n_bytes = _check_bed(bed, n_variants, n_samples, bim, fam)
    if fam_df["IID"].duplicated().any():
        dup = fam_df["IID"][fam_df["IID"].duplicated()].iloc[0]
        raise PopgenError(f"duplicate sample ID {dup!r}", fam)

    vchunk, schunk = auto_chunks(n_samples, tuple(chunks))
    vchunk = max(1, vchunk)
    schunk = max(4, -(-schunk // 4) * 4)
    packed = da.from_array(
        _BedArray(str(bed.resolve()), n_variants, n_bytes),
        chunks=(vchunk, schunk // 4),
        lock=False,
        asarray=False,
        fancy=False,
        name=f"bed-packed-{_token(bed)}",
        meta=np.empty((0, 0), np.uint8),
    )
    # samples held by each byte chunk (the last one may be partial)
    starts = np.cumsum((0,) + packed.chunks[1])[:-1] * 4
    sample_chunks = tuple(int(min(s + 4 * b, n_samples) - s) for s, b in zip(starts, packed.chunks[1]))
    alt = packed.map_blocks(
        _decode_block,
        n_samples_by_block=sample_chunks,
        device=device,
        chunks=(packed.chunks[0], sample_chunks),
        dtype=np.int8,
        meta=empty_meta(device, 2, np.int8),
    )
    gt = alt.map_blocks(
        genotype_from_alt_count, new_axis=2, chunks=alt.chunks + ((2,),), dtype=np.int8,
        meta=empty_meta(device, 3, np.int8),
    )

    contigs, contig_index = np.unique(bim_df["CHR"].to_numpy(), return_inverse=True)
    contigs = _sort_contigs(contigs, contig_index)
    contig_id, variant_contig = contigs
    str_ = lambda s: s.to_numpy(dtype=object)  # noqa: E731
    ds = xr.Dataset(
        {
            "call_genotype": (("variants", "samples", "ploidy"), gt),
            "call_genotype_mask": (("variants", "samples", "ploidy"), gt < 0),
            "call_alt_count": (("variants", "samples"), alt),
            "contig_id": (("contigs",), contig_id),
            "variant_contig": (("variants",), variant_contig),
            "variant_position": (("variants",), bim_df["POS"].to_numpy()),
            "variant_allele": (("variants", "alleles"), np.stack([compact_strings(bim_df["A2"].to_numpy(dtype=object)),
                                                                  compact_strings(bim_df["A1"].to_numpy(dtype=object))],
                                                                 axis=1)),
            "variant_id": (("variants",), compact_strings(bim_df["ID"].to_numpy(dtype=object))),
            "variant_cm_position": (("variants",), bim_df["CM"].to_numpy()),
            "sample_id": (("samples",), str_(fam_df["IID"])),
            "sample_family_id": (("samples",), str_(fam_df["FID"])),
            "sample_paternal_id": (("samples",), str_(fam_df["PAT"])),
            "sample_maternal_id": (("samples",), str_(fam_df["MAT"])),
            "sample_sex": (("samples",), fam_df["SEX"].to_numpy()),
            "sample_phenotype": (("samples",), str_(fam_df["PHENO"])),
        },
        attrs={"contigs": list(contig_id), "source": f"plink:{prefix}", "device": device},
    )
    ds["call_genotype"].attrs["mixed_ploidy"] = False
    return ds


#: .bim strings up to this many characters are held as a fixed-width ``U`` array (4 bytes a
#: character), longer ones as Python strings (an ASCII string object is 49 bytes + its length,
#: plus an 8-byte pointer: the ``U`` array is smaller up to ~18 characters)
_COMPACT_CHARS = 16


def compact_strings(a: np.ndarray) -> np.ndarray:
    """Per-variant strings (IDs, alleles) without an object per string where they are short:
    reading 200,000 variants' IDs (``U12``) and alleles (``U1``) took 28 MB instead of 61 MB
    (10^7 variants: ~1.7 GB less).  Where the longest is over :data:`_COMPACT_CHARS`
    characters (an indel allele, long IDs) the column keeps its objects."""
    if not a.size:
        return a
    width = int(max(map(len, a.reshape(-1).tolist())))
    return a.astype(f"U{max(1, width)}") if width <= _COMPACT_CHARS else a


def _token(path: Path) -> str:
    from dask.base import tokenize

    st = path.stat()
    return tokenize(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _sort_contigs(contigs, index):
    """Contigs in order of first appearance in the .bim (as PLINK keeps them)."""
    first = np.full(len(contigs), len(index), dtype=np.int64)
    np.minimum.at(first, index, np.arange(len(index)))
    order = np.argsort(first, kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    return contigs[order].astype(object), remap[index].astype(np.int32)


def _decode_block(packed, n_samples_by_block, device, block_info=None):
    from popgen.backend import to_device
    from popgen.kernels import get

    j = block_info[0]["chunk-location"][1]
    return get("decode_bed")(to_device(packed, device), n_samples_by_block[j])


def genotype_from_alt_count(alt):
    """Unphased diploid calls from ALT allele counts.

    Parameters
    ----------
    alt : array, int8, shape (..., )
        0, 1, 2 or -1 (missing), NumPy, CuPy or any Array-API array.

    Returns
    -------
    array, int8, shape (..., 2)
        ``[0,0]``, ``[0,1]``, ``[1,1]`` or ``[-1,-1]``.
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    missing = alt < 0
    one = xp.asarray(1, dtype=xp.int8)
    zero = xp.asarray(0, dtype=xp.int8)
    neg = xp.asarray(-1, dtype=xp.int8)
    first = xp.where(missing, neg, xp.where(alt == 2, one, zero))
    second = xp.where(missing, neg, xp.where(alt >= 1, one, zero))
    return xp.stack([first, second], axis=-1)


# ---------------------------------------------------------------- writer


def encode_bed(alt: np.ndarray) -> np.ndarray:
    """Pack ALT allele counts into .bed rows (inverse of ``decode_bed``; numba, one pass).

    Parameters
    ----------
    alt : ndarray, int8, shape (n_variants, n_samples)
        0, 1, 2 or -1 (missing).

    Returns
    -------
    ndarray, uint8, shape (n_variants, ceil(n_samples / 4))
    """
    from popgen.kernels.bed._cpu import encode

    alt = np.ascontiguousarray(alt, dtype=np.int8)
    out = np.empty((alt.shape[0], (alt.shape[1] + 3) // 4), dtype=np.uint8)
    encode(alt, _CODE_BY_ALT_PLUS_1, out)
    return out


#: 2-bit .bed code of an ALT count ``a`` at index ``a + 1`` (missing, 0, 1, 2)
_CODE_BY_ALT_PLUS_1 = np.array([0b01, 0b11, 0b10, 0b00], dtype=np.uint8)


class _BedWriter:
    """``da.store`` target: encodes each block into its bytes of a .bed, in place.

    Sample blocks start at multiples of 4 (whole bytes), so blocks write to
    disjoint byte ranges and need no lock, from threads or worker processes.
    Pickles as a path.
    """

    def __init__(self, path: str, n_variants: int, n_samples: int):
        self.path = path
        self.shape = (n_variants, n_samples)
        self.n_bytes = (n_samples + 3) // 4

    def __setitem__(self, key, block):
        from popgen.backend import to_cpu

        rows, cols = key
        if cols.start % 4:
            raise ValueError("sample blocks must start at a multiple of 4")
        from popgen.io.files import pwrite_all

        packed = encode_bed(to_cpu(block))
        first = cols.start // 4
        fd = os.open(self.path, os.O_WRONLY)
        try:  # each row's bytes where they go (a block of whole rows: one write)
            if first == 0 and packed.shape[1] == self.n_bytes:
                pwrite_all(fd, packed, 3 + rows.start * self.n_bytes)
            else:
                for i, row in enumerate(packed):
                    pwrite_all(fd, row, 3 + (rows.start + i) * self.n_bytes + first)
        finally:
            os.close(fd)


def write_plink(ds, prefix, *, compute=None) -> None:
    """Write a Dataset as a PLINK 1 fileset, block by block.

    Biallelic sites only: ``variant_allele[:, 0]`` becomes .bim A2 (REF) and
    ``variant_allele[:, 1]`` A1 (ALT).  Each (variants, samples) block is
    encoded and written into its place in the .bed (``dask.array.store``), so
    memory is a few blocks, whatever the cohort size.  The three files are
    written to temporary names and renamed only when all are complete.

    Parameters
    ----------
    compute : callable, optional
        ``compute(delayed)`` used to run the write (e.g. with a progress bar);
        default :func:`dask.compute`.
    """
    import dask.array as da
    import pandas as pd

    from popgen.genotypes import alt_allele_count

    prefix = str(prefix)
    alt = alt_allele_count(ds)
    n_samples = alt.shape[1]
    tmp = {ext: f"{prefix}{ext}.tmp{os.getpid()}" for ext in (".bed", ".bim", ".fam")}
    try:
        fam = pd.DataFrame(
            {
                "FID": _get(ds, "sample_family_id", ds["sample_id"].values),
                "IID": ds["sample_id"].values,
                "PAT": _get(ds, "sample_paternal_id", "0"),
                "MAT": _get(ds, "sample_maternal_id", "0"),
                "SEX": _get(ds, "sample_sex", 0),
                "PHENO": _get(ds, "sample_phenotype", "-9"),
            }
        )
        fam.to_csv(tmp[".fam"], sep="\t", header=False, index=False)
        alleles = _as_str(ds["variant_allele"].values)
        contig_names = _as_str(ds["contig_id"].values) if "contig_id" in ds else np.array(ds.attrs["contigs"], dtype=object)
        bim = pd.DataFrame(
            {
                "CHR": contig_names[np.asarray(ds["variant_contig"].values)],
                "ID": _as_str(_get(ds, "variant_id", ".")),
                "CM": _get(ds, "variant_cm_position", 0.0),
                "POS": ds["variant_position"].values,
                "A1": alleles[:, 1] if alleles.shape[1] > 1 else ".",
                "A2": alleles[:, 0],
            }
        )
        bim.to_csv(tmp[".bim"], sep="\t", header=False, index=False)
        # sample blocks must start on whole bytes: make every chunk but the last a multiple of 4
        schunks = alt.chunks[1]
        if any(c % 4 for c in schunks[:-1]):
            size = max(4, -(-max(schunks) // 4) * 4)
            alt = alt.rechunk({1: size})
        n_variants = alt.shape[0]
        with open(tmp[".bed"], "wb") as f:
            f.write(BED_MAGIC)
            f.truncate(3 + n_variants * ((n_samples + 3) // 4))
        writes = da.store(alt, _BedWriter(tmp[".bed"], n_variants, n_samples), lock=False, compute=False)
        (compute or _backend.compute)(writes)
        assert n_samples == len(fam)
        for ext in (".fam", ".bim", ".bed"):
            os.replace(tmp[ext], prefix + ext)
    finally:
        for path in tmp.values():
            if os.path.exists(path):
                os.remove(path)


def _get(ds, name, default):
    if name in ds:
        return ds[name].values
    return np.full(ds.sizes["samples" if name.startswith("sample") else "variants"], default, dtype=object)


def _as_str(a):
    a = np.asarray(a)
    if a.dtype.kind == "S":
        return a.astype(str).astype(object)
    return a.astype(object)
