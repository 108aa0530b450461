"""One protocol vocabulary: port_program/core/protocol.hpp, erlang_src/py_protocol.hrl,
test/python/wire.py and spec/PROTOCOL.md's tables name and number every message
type (and ext type, ref op, stream and shared limit) alike."""

from __future__ import annotations

import re
from pathlib import Path

import wire

ROOT = Path(__file__).resolve().parents[2]
HPP = ROOT / "port_program" / "core" / "protocol.hpp"
HRL = ROOT / "erlang_src" / "py_protocol.hrl"
SPEC = ROOT / "spec" / "PROTOCOL.md"
REQUEST_ERL = ROOT / "erlang_src" / "py_request.erl"

Vocabulary = dict[str, dict[str, int]]
GROUPS = ("msg", "ref", "ext", "stream", "const")


def snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def int_expr(text: str) -> int:
    """An integer literal, or `A << B` / `A bsl B` (C++ and Erlang spellings)."""
    m = re.fullmatch(r"\s*(\d+)u?\s*(?:(?:<<|bsl)\s*(\d+))?\s*", text)
    assert m, f"not an integer expression: {text!r}"
    return int(m.group(1)) << int(m.group(2) or 0)


def hpp_vocabulary() -> Vocabulary:
    text = HPP.read_text()
    out: Vocabulary = {g: {} for g in GROUPS}
    enums = dict(re.findall(r"enum (\w+) : \w+ \{(.*?)\};", text, re.S))
    prefixes = {"MessageType": ("msg", ""), "RefOp": ("ref", "Ref"), "ExtType": ("ext", "Ext"),
                "Stream": ("stream", "")}
    for enum, (group, prefix) in prefixes.items():
        body = re.sub(r"//[^\n]*", "", enums[enum])
        for name, value in re.findall(r"\bk(\w+) = (\d+)", body):
            assert name.startswith(prefix), f"{enum}::k{name}"
            out[group][snake(name[len(prefix):])] = int(value)
    consts = dict(re.findall(r"inline constexpr \w+ k(\w+) = ([^;]+);", text))
    out["const"] = {snake(name): int_expr(value) for name, value in consts.items()}
    return out


def hrl_vocabulary() -> Vocabulary:
    out: Vocabulary = {g: {} for g in GROUPS}
    for name, value in re.findall(r"^-define\(PY_(\w+), ([^)]+)\)\.", HRL.read_text(), re.M):
        for prefix, group in (("MSG_", "msg"), ("REF_", "ref"), ("EXT_", "ext")):
            if name.startswith(prefix):
                out[group][name[len(prefix):].lower()] = int_expr(value)
                break
        else:
            if name in ("STDOUT", "STDERR"):
                out["stream"][name.lower()] = int_expr(value)
            else:
                out["const"][name.lower().removeprefix("protocol_")] = int_expr(value)
    return out


def py_vocabulary() -> Vocabulary:
    out: Vocabulary = {g: {} for g in GROUPS}
    consts = {"VERSION", "MAX_DEPTH", "DEFAULT_MAX_FRAME"}
    for name, value in vars(wire).items():
        if not name.isupper() or not isinstance(value, int):
            continue
        if name in consts:
            out["const"][name.lower()] = value
        elif name.startswith("REF_") and name != "REF_OP":
            out["ref"][name[4:].lower()] = value
        elif name.startswith("EXT_"):
            out["ext"][name[4:].lower()] = value
        elif name in ("STDOUT", "STDERR"):
            out["stream"][name.lower()] = value
        else:
            out["msg"][name.lower()] = value
    return out


def table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def numbers(cell: str) -> set[int]:
    """`0–10, 12` -> {0, ..., 10, 12}."""
    out: set[int] = set()
    for part in cell.split(","):
        lo, _, hi = part.strip().partition("–")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def spec_types() -> tuple[dict[str, int], dict[str, set[int]]]:
    text = SPEC.read_text()
    names: dict[str, int] = {}
    direction: dict[str, set[int]] = {"Erlang → port": set(), "port → Erlang": set()}
    for number, name, way in table(text, "| type | name | direction |"):
        assert name not in names, f"spec: {name} twice"
        names[name] = int(number)
        for key in direction:
            if way in (key, "both"):
                direction[key].add(int(number))
    return names, direction


def test_the_three_vocabularies_agree() -> None:
    hpp, hrl, py = hpp_vocabulary(), hrl_vocabulary(), py_vocabulary()
    assert len(hpp["msg"]) > 30 and hpp["const"]["version"] == 1
    for group in GROUPS:
        assert hrl[group] == hpp[group], f"py_protocol.hrl vs protocol.hpp: {group}"
        assert py[group] == hpp[group], f"wire.py vs protocol.hpp: {group}"
    assert len(set(hpp["msg"].values())) == len(hpp["msg"]), "two names for one type"


def test_the_spec_names_every_type_alike() -> None:
    names, _ = spec_types()
    assert names == hpp_vocabulary()["msg"]


def test_the_family_table_is_true() -> None:
    types = set(hpp_vocabulary()["msg"].values())
    rows = table(SPEC.read_text(), "| range | family | used |")
    expected_lo = 0
    for span, family, used in rows:
        lo, hi = (int(x) for x in span.split("–"))
        assert lo == expected_lo, f"families leave a gap or overlap at {span}"
        expected_lo = hi + 1
        assert numbers(used) == {t for t in types if lo <= t <= hi}, f"{family}: used"
    assert all(t < expected_lo for t in types), "a type outside every family"


def test_the_message_tables_list_each_type_in_its_direction() -> None:
    text = SPEC.read_text()
    _, direction = spec_types()
    for heading, key in (("## Messages, Erlang → port program", "Erlang → port"),
                         ("## Messages, port program → Erlang", "port → Erlang")):
        section = text[text.index(heading):]
        listed: set[int] = set()
        for row in table(section, "| type | message | meaning |"):
            listed |= numbers(row[0])
        assert listed == direction[key], heading


def test_the_ext_table_is_true() -> None:
    rows = table(SPEC.read_text(), "| ext type | payload |")
    spec = {cell.split()[1]: int(cell.split()[0]) for cell, _ in rows}
    assert spec == hpp_vocabulary()["ext"]


def test_requests_have_the_same_fixed_elements() -> None:
    text = HPP.read_text()
    body = text[text.index("fixed_elements(uint8_t type)"):text.index("is_request")]
    cpp = {snake(name): int(n) for name, n in re.findall(r"case k(\w+):\s*return (\d+);", body)}
    erl = {name.lower(): int(n) for name, n in
           re.findall(r"^fixed_elements\(\?PY_MSG_(\w+)\) -> (\d+);", REQUEST_ERL.read_text(), re.M)}
    assert cpp == erl and set(cpp) == {"call", "eval", "exec", "ref_op"}
