"""Where the shipped data folders are, in a checkout and in an installed wheel.

The product card puts templates/, config/ and labels/ at the top of the repository. setup.cfg ships them
inside the package as mscbatch/_templates, _config and _labels, so a non-editable install finds them too.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(top_level: str, shipped: str) -> Path:
    installed = PACKAGE_DIR / shipped
    if installed.is_dir():
        return installed
    checkout = PACKAGE_DIR.parent / top_level
    if checkout.is_dir():
        return checkout
    raise RuntimeError(f"mscbatch cannot find its {top_level}/ folder (looked in {installed} and {checkout})")


def templates_dir() -> Path:
    return _locate("templates", "_templates")


def config_dir() -> Path:
    return _locate("config", "_config")


def labels_dir() -> Path:
    return _locate("labels", "_labels")


def migrations_dir() -> Path:
    return PACKAGE_DIR / "migrations"
