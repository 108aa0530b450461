"""An in-tree PEP 517 / PEP 660 build backend for py_venv_SUITE's project.

pip still builds the project in isolation, as for any pyproject.toml, but
with nothing to install into the build environment (``requires = []``):
setuptools took ~10 s of the suite per pass to install and run. The wheels
carry the project's metadata (its ``dev`` extra); the editable one holds a
``.pth`` file naming the project directory, so the package is imported from
the project's own files.
"""

from __future__ import annotations

import base64
import hashlib
import pathlib
import zipfile

NAME = "projpkg"
VERSION = "0.1"
ROOT = pathlib.Path(__file__).resolve().parent.parent
METADATA = (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
            "Provides-Extra: dev\nRequires-Dist: tinypkg==1.0; extra == \"dev\"\n")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel(directory: str, files: dict[str, bytes]) -> str:
    info = f"{NAME}-{VERSION}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = METADATA.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: proj_backend\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    lines = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    basename = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(directory) / basename, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return basename


def build_wheel(wheel_directory: str, config_settings: object = None,
                metadata_directory: object = None) -> str:
    files = {f"{NAME}/{p.name}": p.read_bytes() for p in (ROOT / NAME).glob("*.py")}
    return _wheel(wheel_directory, files)


def build_editable(wheel_directory: str, config_settings: object = None,
                   metadata_directory: object = None) -> str:
    return _wheel(wheel_directory, {f"__editable__.{NAME}.pth": f"{ROOT}\n".encode()})


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    raise NotImplementedError("py_venv_SUITE installs this project from its directory only")
