"""Loading versioned rule files from config/ (TOML), with errors that name the file and the key.

Every rule file carries `id` and `version`; decisions store both plus the SHA-256 of the file's bytes, so a
decision can always be traced to the exact rules it was judged with. Numbers are parsed as Decimal: limits
such as 0.5 EU/mL or 1.10 g/mL must not pick up binary floating-point error.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A rule file is unreadable or breaks its schema. The message names the file and the key."""

    def __init__(self, file: str | Path, key: str, problem: str):
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}")


@dataclass(frozen=True)
class RuleFile:
    """The parsed content of one rule file and what identifies it."""

    path: Path
    data: dict[str, Any]
    sha256: str

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def version(self) -> str:
        return str(self.data["version"])


def load_rule_file(path: Path) -> RuleFile:
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, "(file)", f"not valid TOML: {exc}") from exc
    for key in ("id", "version"):
        if key not in data:
            raise ConfigError(path, key, "missing (every rule file needs an id and a version)")
    return RuleFile(path=path, data=data, sha256=hashlib.sha256(raw).hexdigest())


def require(mapping: dict[str, Any], key: str, kind: type | tuple[type, ...], file: str | Path, where: str) -> Any:
    """Fetch mapping[key], checking its type; `where` is the dotted path shown in the error."""
    if key not in mapping:
        raise ConfigError(file, f"{where}.{key}" if where else key, "missing")
    value = mapping[key]
    if isinstance(value, int) and not isinstance(value, bool) and Decimal in (kind if isinstance(kind, tuple) else (kind,)):
        value = Decimal(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(file, f"{where}.{key}" if where else key, f"expected {expected}, got {value!r}")
    return value
