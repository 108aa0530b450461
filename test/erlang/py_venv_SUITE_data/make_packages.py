"""Builds what py_venv_SUITE installs, with no package index: a wheels
directory (a tiny pure-Python package) and a pyproject.toml project whose
build backend is in its own tree (proj_backend.py: pip builds it in isolation
with nothing to install first).

usage: make_packages.py OUT_DIR
"""

from __future__ import annotations

import base64
import hashlib
import pathlib
import shutil
import sys
import zipfile


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(path: pathlib.Path, name: str, version: str, files: dict[str, bytes]) -> None:
    info = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: py_venv_SUITE\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    lines = [record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(path / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for n, d in files.items():
            z.writestr(n, d)


def main(out: pathlib.Path) -> None:
    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    write_wheel(wheels, "tinypkg", "1.0", {"tinypkg/__init__.py": b"VALUE = 42\n"})
    proj = out / "proj"
    (proj / "projpkg").mkdir(parents=True, exist_ok=True)
    (proj / "_backend").mkdir(exist_ok=True)
    shutil.copy(pathlib.Path(__file__).with_name("proj_backend.py"), proj / "_backend")
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\n'
        'build-backend = "proj_backend"\nbackend-path = ["_backend"]\n\n'
        '[project]\nname = "projpkg"\nversion = "0.1"\n\n'
        '[project.optional-dependencies]\ndev = ["tinypkg==1.0"]\n'
    )
    (proj / "projpkg" / "__init__.py").write_text("VALUE = 'editable'\n")
    (out / "requirements.txt").write_text("tinypkg==1.0\n")
    (out / "bad-requirements.txt").write_text("no-such-package-xyz==9.9\n")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
