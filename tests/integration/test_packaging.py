"""A non-editable install works: the wheel carries templates, config, labels, migrations and static files,
and the installed package, imported from outside the checkout, migrates a database and serves /login."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "instance", "build", "dist", "*.egg-info", "test-artifacts",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".ci")

# Runs in a fresh interpreter with only the installed wheel on PYTHONPATH; prints what it found as JSON.
PROBE = """
import json, mscbatch
from mscbatch import create_app, paths
app = create_app({"AUTO_MIGRATE": True})  # a new database, set up here as `mscbatch init` would
response = app.test_client().get("/login")
def where(locate):
    try:
        return str(locate())
    except RuntimeError as error:
        return f"ERROR: {error}"
print(json.dumps({"file": mscbatch.__file__, "status": response.status_code, "body": response.get_data(as_text=True),
                  "templates": where(paths.templates_dir), "config": where(paths.config_dir),
                  "labels": where(paths.labels_dir), "migrations": where(paths.migrations_dir)}))
"""


def _version(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in metadata.version(name).split(".")[:2] if part.isdigit())
    except metadata.PackageNotFoundError:
        return None


def _require_build_tools() -> None:
    """pyproject.toml asks for setuptools>=68 and wheel; --no-build-isolation uses what this venv has."""
    setuptools = _version("setuptools")
    if setuptools is None or setuptools < (68,):
        missing(f"setuptools>=68 in {sys.prefix} (has {metadata.version('setuptools') if setuptools else 'none'})")
    if setuptools < (70, 1) and _version("wheel") is None:
        missing(f"the 'wheel' package in {sys.prefix} (setuptools {metadata.version('setuptools')} needs it "
                "to build wheels)")


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_installs_and_serves_without_the_checkout(tmp_path: Path) -> None:
    _require_build_tools()
    source = tmp_path / "source"  # build from a copy: no build/ or egg-info churn in the checkout
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()

    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         cwd=source)
    [wheel] = wheels.glob("mscbatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # every module (the package list in setup.cfg is written by hand), every template, rule file and label
    expected = {"mscbatch/_templates/base.html", "mscbatch/migrations/versions/0001_foundation.py",
                "mscbatch/migrations/env.py", "mscbatch/static/css/mscbatch.css"}
    for folder, shipped, pattern in (("config", "_config", "*.toml"), ("templates", "_templates", "*.html"),
                                     ("labels", "_labels", "*.toml"), ("mscbatch", "", "*.py")):
        for path in (ROOT / folder).rglob(pattern):
            inside = path.relative_to(ROOT / folder).as_posix()
            if "__pycache__" in inside:
                continue
            expected.add(f"mscbatch/{shipped}/{inside}" if shipped else f"{folder}/{inside}")
    not_shipped = sorted(expected - names)
    assert not not_shipped, f"{wheel.name} lacks (add the package to setup.cfg?): {not_shipped}"
    assert any(name.startswith("mscbatch/_config/") and name.endswith(".toml") for name in names)

    _run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target),
         str(wheel))
    database = tmp_path / "installed.sqlite3"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MSCBATCH_", "PYTHON"))}
    env.update(PYTHONPATH=str(target), PYTHONSAFEPATH="1", MSCBATCH_DATABASE_URL=f"sqlite:///{database}",
               MSCBATCH_INSTANCE_DIR=str(tmp_path / "instance"))
    found = json.loads(_run(sys.executable, "-c", PROBE, cwd=elsewhere, env=env).stdout.splitlines()[-1])

    assert Path(found["file"]).resolve().is_relative_to(target.resolve()), found["file"]
    assert found["status"] == 200
    assert "Sign in" in found["body"]
    for kind in ("templates", "config", "migrations"):
        assert Path(found[kind]).is_relative_to(target.resolve()), f"{kind}: {found[kind]}"
    if any((ROOT / "labels").rglob("*.toml")):  # labels/ has no files yet: no _labels package to find
        assert Path(found["labels"]).is_relative_to(target.resolve()), f"labels: {found['labels']}"
    with sqlite3.connect(database) as connection:  # the shipped migrations ran
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() is not None
