"""YAML files validated by pydantic models (pipeline configs, federated plans and sites)."""

from __future__ import annotations

from pathlib import Path

from popgen.errors import PopgenError


def pydantic_message(e) -> str:
    """The first error of a pydantic ValidationError as ``key.path: message``."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def load_model(path, model, *, kind: str, what: str, check=None):
    """Read ``path`` as YAML and validate it with ``model``; every failure is one
    :class:`PopgenError` naming the file (``kind`` names the file's role, ``what``
    lists the keys expected).
    ``check(obj)`` runs extra validation that may raise pydantic errors."""
    import pydantic
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PopgenError(f"invalid YAML{where}: {getattr(e, 'problem', e)}", path) from None
    if not isinstance(raw, dict):
        raise PopgenError(f"a {kind} must be a mapping of keys ({what})", path)
    try:
        obj = model.model_validate(raw)
        if check is not None:
            check(obj)
    except pydantic.ValidationError as e:
        raise PopgenError(f"invalid {kind}: {pydantic_message(e)}", path) from None
    return obj
