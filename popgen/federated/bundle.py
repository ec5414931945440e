"""Bundles: the only thing that leaves a site (or comes back from the coordinator).

A bundle is one zip file (``.pgb``) holding ``manifest.json``, its checksum
``manifest.sha256`` and one ``.npy`` file per array.  The manifest names the
plan (and its hash), the site, the kind and round, every array's dtype,
shape, named dimensions, meaning and SHA-256, and a plain-language
``disclosure`` of what left the site -- what a data access committee reads.

Privacy by construction: an array may only have dimensions from
:data:`ALLOWED_DIMS`, and each dimension's size is fixed by the plan (not by
the site's data), so no array indexed by samples can be written.  ``samples``
is never allowed.  Readers verify the format version, the plan hash and every
checksum, and refuse anything else with a one-line error.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from popgen.errors import PopgenError
from popgen.federated.arrays import DiskArray
from popgen.federated.plan import FORMAT_VERSION, LoadedPlan

FORMAT = "popgen-federated-bundle"
#: kinds of bundle: per-site exports and the coordinator's PCA bases
KINDS = ("counts", "linear", "sumstats", "pca-product", "pca-basis")
#: the only dimension names an array in a bundle may have (never "samples")
ALLOWED_DIMS = frozenset({"variants", "phenotypes", "predictors", "predictors2", "basis", "components",
                          # the linear GWAS's chrX (with the sex covariate) and chrY statistics
                          "variants_x", "variants_y", "predictors_x", "predictors2_x", "covariates",
                          "covariates_sex", "sex_counts"})


@dataclasses.dataclass
class Bundle:
    """A read (and verified) bundle."""

    path: Path
    kind: str
    site: str
    round: int | None
    manifest: dict
    arrays: dict

    @property
    def attrs(self) -> dict:
        return self.manifest.get("attrs", {})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def write_bundle(path, plan: LoadedPlan, *, kind: str, site: str, arrays: dict, dims: dict, round: int | None = None,
                 attrs: dict | None = None, disclosure: str = "") -> Path:
    """Write a bundle atomically.

    Parameters
    ----------
    arrays : dict[str, tuple[ndarray or DiskArray, tuple[str, ...], str]]
        name -> (array, dimension names, meaning); a :class:`~popgen.federated.arrays.DiskArray`
        is copied in pieces, never read whole.
    dims : dict[str, int]
        The size of every dimension, as fixed by the plan (and the basis).
    """
    from popgen import __version__
    from popgen.io.files import atomic_write

    if kind not in KINDS:
        raise ValueError(f"unknown bundle kind {kind!r}")
    bad = set(dims) - ALLOWED_DIMS
    if bad:
        raise PopgenError(f"refusing to write a bundle with dimension(s) {sorted(bad)}: only "
                          f"{sorted(ALLOWED_DIMS)} may leave a site")
    specs = {}
    for name, (arr, names, meaning) in arrays.items():
        if not isinstance(arr, DiskArray):
            arr = np.ascontiguousarray(arr)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise PopgenError(f"refusing to write array {name}: only numeric arrays may leave a site")
        if len(names) != arr.ndim:
            raise PopgenError(f"refusing to write array {name}: {arr.ndim} axes but {len(names)} dimension names")
        for d, n in zip(names, arr.shape):
            if d not in ALLOWED_DIMS:
                raise PopgenError(f"refusing to write array {name}: dimension {d!r} may not leave a site")
            if dims.get(d) != n:
                raise PopgenError(f"refusing to write array {name}: its {d} axis has {n} entries, "
                                  f"the plan fixes {dims.get(d)}")
        specs[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "dims": list(names), "meaning": meaning}
    path = Path(path)
    with atomic_write(path, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, (arr, _, _) in arrays.items():  # streamed: a DiskArray is never held whole
                info = zipfile.ZipInfo(f"arrays/{name}.npy", date_time=_DATE)
                # large members uncompressed, so that readers can read them by rows (DiskArray)
                info.compress_type = zipfile.ZIP_STORED if arr.nbytes >= _STORED_BYTES else zipfile.ZIP_DEFLATED
                with z.open(info, "w", force_zip64=arr.nbytes >= 2**30) as member:
                    out = _Hashing(member)
                    if isinstance(arr, DiskArray):
                        for piece in arr.chunks():
                            out.write(piece)
                    else:
                        np.lib.format.write_array(out, np.ascontiguousarray(arr), allow_pickle=False)
                specs[name]["sha256"] = out.hexdigest()
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "popgen_version": __version__,
                "kind": kind, "site": site, "round": round,
                "plan": {"name": plan.plan.name, "sha256": plan.sha256, "n_variants": plan.n_variants},
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "dims": dict(dims), "arrays": specs, "attrs": attrs or {}, "disclosure": disclosure,
            }
            z.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
            z.writestr("manifest.sha256", _sha(_canonical(manifest)) + "\n")
    return path


#: arrays of at least this many bytes are stored uncompressed in a bundle (read by rows)
_STORED_BYTES = 2**20
_DATE = (1980, 1, 1, 0, 0, 0)


class _Hashing:
    """A write-only stream that also computes the SHA-256 of what passes through it."""

    def __init__(self, f):
        self._f = f
        self._h = hashlib.sha256()

    def write(self, data) -> int:
        self._h.update(data)
        return self._f.write(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start in the zip file (after its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
    if head[:4] != b"PK\x03\x04":
        raise PopgenError(f"corrupt bundle: bad local header of {info.filename}", path)
    return info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")


def _checked_manifest(z: zipfile.ZipFile, path: Path, plan: LoadedPlan | None, kind) -> dict:
    names = set(z.namelist())
    if "manifest.json" not in names or "manifest.sha256" not in names:
        raise PopgenError("not a popgen bundle (no manifest)", path)
    try:
        manifest = json.loads(z.read("manifest.json"))
    except ValueError:
        raise PopgenError("corrupt bundle: the manifest is not JSON", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PopgenError("not a popgen bundle", path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PopgenError(f"bundle format version {manifest.get('format_version')} is not supported "
                          f"(this popgen reads version {FORMAT_VERSION})", path)
    if z.read("manifest.sha256").decode().strip() != _sha(_canonical(manifest)):
        raise PopgenError("checksum mismatch: the manifest was changed after it was written", path)
    if plan is not None and manifest["plan"]["sha256"] != plan.sha256:
        raise PopgenError(f"bundle belongs to another plan ({manifest['plan']['name']!r}, "
                          f"{manifest['plan']['sha256'][:12]}), not {plan.plan.name!r} ({plan.short})", path)
    if kind is not None and manifest["kind"] not in ((kind,) if isinstance(kind, str) else kind):
        raise PopgenError(f"expected a {kind} bundle, found a {manifest['kind']} bundle", path)
    return manifest


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise PopgenError("not a popgen bundle (not a zip file)", path) from None


def read_manifest(path, plan: LoadedPlan | None = None, *, kind: str | tuple | None = None) -> dict:
    """A bundle's verified manifest (format, version, its checksum, the plan, the kind), without
    reading its arrays (:func:`read_bundle` verifies those)."""
    path = Path(path)
    with _open_zip(path) as z:
        return _checked_manifest(z, path, plan, kind)


def read_bundle(path, plan: LoadedPlan | None = None, *, kind: str | tuple | None = None,
                lazy=frozenset()) -> Bundle:
    """Read and verify a bundle: format and version, checksums, dimensions, and (when
    ``plan`` is given) that it belongs to this plan; ``kind`` restricts the kinds accepted.
    The arrays named in ``lazy`` (True: all) come as :class:`~popgen.federated.arrays.DiskArray`
    (read by rows from the bundle) where they are stored uncompressed; the others are read whole."""
    path = Path(path)
    with _open_zip(path) as z:
        names = set(z.namelist())
        manifest = _checked_manifest(z, path, plan, kind)
        arrays = {}
        dims = manifest.get("dims", {})
        if set(dims) - ALLOWED_DIMS:
            raise PopgenError(f"bundle has forbidden dimension(s) {sorted(set(dims) - ALLOWED_DIMS)}", path)
        expected = {f"arrays/{n}.npy" for n in manifest["arrays"]}
        if names - expected - {"manifest.json", "manifest.sha256"}:
            raise PopgenError(f"bundle holds files its manifest does not list: "
                              f"{sorted(names - expected - {'manifest.json', 'manifest.sha256'})}", path)
        for name, spec in manifest["arrays"].items():
            member = f"arrays/{name}.npy"
            if member not in names:
                raise PopgenError(f"array {name} listed in the manifest is missing", path)
            h = hashlib.sha256()
            try:
                with z.open(member) as m:  # verified in pieces: a member can be many GB
                    for piece in iter(lambda: m.read(_STORED_BYTES * 16), b""):
                        h.update(piece)
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error):  # CRC or stream damaged
                h = None
            if h is None or h.hexdigest() != spec["sha256"]:
                raise PopgenError(f"checksum mismatch in array {name}: the bundle was changed or damaged", path)
            info = z.getinfo(member)
            try:
                if (lazy is True or name in lazy) and info.compress_type == zipfile.ZIP_STORED:
                    arr = DiskArray.open_npy(path, _member_data_offset(path, info))
                else:
                    with z.open(member) as m:
                        arr = np.load(io.BytesIO(m.read()), allow_pickle=False)
            except ValueError as e:
                raise PopgenError(f"array {name} is not a readable .npy array ({e})", path) from None
            if list(arr.shape) != spec["shape"] or any(dims.get(d) != n for d, n in zip(spec["dims"], arr.shape)) \
                    or arr.dtype.str != spec["dtype"]:
                raise PopgenError(f"array {name} does not have the shape its manifest states", path)
            arrays[name] = arr
    return Bundle(path, manifest["kind"], manifest["site"], manifest["round"], manifest, arrays)


def describe(bundle: Bundle) -> str:
    """A human-readable account of a bundle (``popgen federated inspect``)."""
    m = bundle.manifest
    lines = [f"{bundle.path}: {m['kind']} bundle from {m['site']!r}"
             + (f", round {m['round']}" if m["round"] is not None else ""),
             f"plan {m['plan']['name']!r} sha256 {m['plan']['sha256']}",
             f"popgen {m['popgen_version']}, format {m['format_version']}, created {m['created']}",
             "dimensions: " + ", ".join(f"{k}={v}" for k, v in sorted(m["dims"].items()))]
    for name, spec in m["arrays"].items():
        shape = " x ".join(f"{d}={n}" for d, n in zip(spec["dims"], spec["shape"])) or "scalar"
        lines.append(f"  {name} [{spec['dtype']}; {shape}]: {spec['meaning']}")
    if m.get("attrs"):
        lines.append("attributes: " + json.dumps(m["attrs"], sort_keys=True))
    if m.get("disclosure"):
        lines.append("disclosure: " + m["disclosure"])
    return "\n".join(lines)
