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
from pathlib import Path

import numpy as np

from popgen.errors import PopgenError
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
    arrays : dict[str, tuple[ndarray, tuple[str, ...], str]]
        name -> (array, dimension names, meaning).
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
    members, specs = {}, {}
    for name, (arr, names, meaning) in arrays.items():
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
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        data = buf.getvalue()
        members[f"arrays/{name}.npy"] = data
        specs[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "dims": list(names),
                       "meaning": meaning, "sha256": _sha(data)}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "popgen_version": __version__,
        "kind": kind, "site": site, "round": round,
        "plan": {"name": plan.plan.name, "sha256": plan.sha256, "n_variants": plan.n_variants},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dims": dict(dims), "arrays": specs, "attrs": attrs or {}, "disclosure": disclosure,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    path = Path(path)
    with atomic_write(path, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", text)
            z.writestr("manifest.sha256", _sha(_canonical(manifest)) + "\n")
            for name, data in members.items():
                z.writestr(name, data)
    return path


def read_bundle(path, plan: LoadedPlan | None = None, *, kind: str | tuple | None = None) -> Bundle:
    """Read and verify a bundle: format and version, checksums, dimensions, and (when
    ``plan`` is given) that it belongs to this plan; ``kind`` restricts the kinds accepted."""
    path = Path(path)
    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise PopgenError("not a popgen bundle (not a zip file)", path) from None
    with z:
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
            data = z.read(member)
            if _sha(data) != spec["sha256"]:
                raise PopgenError(f"checksum mismatch in array {name}: the bundle was changed or damaged", path)
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            if list(arr.shape) != spec["shape"] or any(dims.get(d) != n for d, n in zip(spec["dims"], arr.shape)):
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
