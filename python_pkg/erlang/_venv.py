"""Virtual environment activation (``py:activate_venv/1``): the venv's
site-packages (with its ``.pth`` files, so editable installs work) go to the
front of ``sys.path``; deactivation takes them out again."""

from __future__ import annotations

import os
import site
import sys

_active: str | None = None
_added: list[str] = []


def site_packages(path: str) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(path, "lib", version, "site-packages")


def activate(path: str) -> None:
    global _active, _added
    packages = site_packages(path)
    if not os.path.isdir(packages):
        raise FileNotFoundError(f"{path} is not a virtual environment of {sys.version.split()[0]}: "
                                f"no {packages}")
    if _active == path:
        keep_first()
        return
    deactivate()
    before = list(sys.path)
    site.addsitedir(packages)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
    _active, _added = path, added
    os.environ["VIRTUAL_ENV"] = path
    import importlib

    importlib.invalidate_caches()


def keep_first() -> None:
    """Moves the active venv's entries back to the front of ``sys.path``."""
    if _active is None:
        return
    added = [p for p in _added if p in sys.path]
    sys.path[:] = added + [p for p in sys.path if p not in added]


def deactivate() -> None:
    global _active, _added
    if _active is None:
        return
    sys.path[:] = [p for p in sys.path if p not in _added]
    os.environ.pop("VIRTUAL_ENV", None)
    _active, _added = None, []


def active() -> str | None:
    return _active
