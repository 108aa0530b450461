"""What every context runs before any request (py_import, py_preload), and
``py:reload/1``: small helpers the Erlang side calls by name."""

from __future__ import annotations

import importlib
import sys


def add_paths(paths: list[str]) -> None:
    """Put ``paths`` at the front of ``sys.path``, in their order, once each,
    after an active venv's site-packages (which stays first: on the linked-in
    driver every context shares one ``sys.path``, and one set up after the
    activation must not push the venv back)."""
    from erlang import _venv

    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    _venv.keep_first()


def import_modules(specs: list[tuple[str, str | None]]) -> None:
    """Import each module (and look up the function, if one is named).

    A module that fails to import is reported and the rest still run.
    """
    failed = []
    for module, function in specs:
        try:
            mod = importlib.import_module(module)
            if function is not None:
                getattr(mod, function)
        except Exception as exc:  # noqa: BLE001 - reported below, the rest go on
            failed.append(f"{module}{'.' + function if function else ''}: {exc!r}")
    if failed:
        raise ImportError("registered imports failed: " + "; ".join(failed))


def reload(module: str) -> bool:
    """Reload ``module`` if this port program has imported it."""
    mod = sys.modules.get(module)
    if mod is None:
        return False
    importlib.reload(mod)
    return True
