"""Kernel registry: every custom kernel is a CUDA source plus a CPU twin.

A kernel family is a folder ``kernels/<family>/`` holding one ``.cu`` file per
kernel and an ``__init__.py`` with the CPU twins that registers each kernel
once with :func:`register`.  The folder is installed as ``popgen.kernels``.

Calling a registered kernel dispatches on its first array argument: NumPy
arrays run the CPU twin (numba or numpy), CuPy arrays run the CUDA source,
compiled lazily by CuPy (NVRTC) on first use and cached per process.

Adding a kernel: write ``kernels/<family>/<name>.cu`` with an
``extern "C" __global__`` function, a CPU twin with the same meaning, a GPU
``launch(fn, *args)`` that allocates the output and launches ``fn``, and a
``register(...)`` call; then add a NumPy-oracle test.  ``tests/test_kernels.py``
compiles every registered ``.cu`` with ``nvcc -ptx`` for sm_80 and sm_90.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable

_HERE = Path(__file__).parent
_REGISTRY: dict[str, "Kernel"] = {}


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One kernel: a name, its CPU twin, its CUDA source and GPU launcher.

    Parameters
    ----------
    name
        Registry key, e.g. ``"decode_bed"``.
    cpu
        CPU twin: takes and returns NumPy arrays.
    cuda_file
        Path of the CUDA source relative to ``kernels/``, e.g. ``"bed/decode_bed.cu"``.
    cuda_function
        Name of the ``extern "C" __global__`` function in ``cuda_file``.
    launch
        ``launch(fn, *args, **kwargs)``: allocates outputs on the device and
        launches the compiled function ``fn`` (a ``cupy.RawKernel``).
    """

    name: str
    cpu: Callable[..., Any]
    cuda_file: str
    cuda_function: str
    launch: Callable[..., Any]

    @property
    def cuda_path(self) -> Path:
        return _HERE / self.cuda_file

    def cuda_source(self) -> str:
        return self.cuda_path.read_text()

    def compiled(self):
        """The compiled ``cupy.RawKernel`` (compiled once per process)."""
        return _compile(self.cuda_file, self.cuda_function)

    def __call__(self, *args, **kwargs):
        first = args[0]
        if type(first).__module__.startswith("cupy"):
            return self.launch(self.compiled(), *args, **kwargs)
        return self.cpu(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _compile(cuda_file: str, function: str):
    import cupy

    module = cupy.RawModule(code=(_HERE / cuda_file).read_text(), options=("--std=c++14",))
    return module.get_function(function)


def launch_grid_stride(fn, total: int, args, threads: int = 256) -> None:
    """Launch a grid-stride kernel (one thread per element, any grid) over ``total`` elements."""
    if total:
        blocks = min((total + threads - 1) // threads, 65535 * 4)
        fn((blocks,), (threads,), args)


def register(name: str, *, cpu, cuda_file: str, cuda_function: str, launch) -> Kernel:
    """Register a kernel once by name; returns it for module-level use."""
    if name in _REGISTRY:
        raise ValueError(f"kernel {name!r} is already registered")
    if not (_HERE / cuda_file).is_file():
        raise FileNotFoundError(f"kernel {name!r}: no CUDA source {cuda_file}")
    kernel = Kernel(name, cpu, cuda_file, cuda_function, launch)
    _REGISTRY[name] = kernel
    return kernel


def _load_families() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def get(name: str) -> Kernel:
    """The registered kernel ``name``."""
    if name not in _REGISTRY:
        _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no kernel named {name!r}; registered: {sorted(_REGISTRY)}") from None


def all_kernels() -> list[Kernel]:
    """Every registered kernel, in name order."""
    _load_families()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
