"""Safe YAML loading into pydantic models with errors that name file, line and field."""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ampersim.core.errors import InvalidData, NotFound
from ampersim.core.limits import MAX_YAML_BYTES, read_limited

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path`` with safe loading; return (data, node tree for line lookups)."""
    try:
        text = read_limited(path, MAX_YAML_BYTES, "YAML file").decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise InvalidData(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save the file as UTF-8") from None
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidData(f"{path}{where}: malformed YAML ({problem})") from None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node reachable along ``loc`` in a composed YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


def validation_message(source: str, exc: ValidationError, node: yaml.Node | None = None) -> str:
    """One-line message for the first pydantic error: 'file:line: field: problem'."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(node, loc)
    where = f"{source}:{line}" if line else source
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: field '{field}': {msg}{more}"


def load_model(path: str | Path, model: type[M]) -> M:
    """Load and validate a YAML file as ``model``; raise InvalidData naming file, line and field."""
    path = Path(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise InvalidData(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidData(validation_message(str(path), exc, node)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_model_cached(path: str | Path, model: type[M]) -> M:
    """load_model, memoized on (file, modification time, size): for frozen models read in hot paths."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"{path}: file not found") from None
    return _load_cached(path.resolve(), stat.st_mtime_ns, stat.st_size, model)


@functools.lru_cache(maxsize=256)
def _load_cached(path: Path, mtime_ns: int, size: int, model: type[M]) -> M:
    return load_model(path, model)


def write_bytes_atomic(path: str | Path, data: bytes, *, parents: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so readers never see half a file
    and an existing file is either kept or replaced whole. A missing parent folder is created only
    with ``parents`` (a report's own figure folder); commands check their outputs first
    (ampersim.core.outputs.check_output)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise NotFound(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, parents: bool = False) -> None:
    """Write ``text`` (UTF-8) atomically; see write_bytes_atomic."""
    write_bytes_atomic(path, text.encode("utf-8"), parents=parents)
