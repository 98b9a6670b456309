"""The package's shape (issue 14; ../shared/docs/architecture.md): imports only point down the
floors, the GUI talks to the station only through the protocol, processing and DOAS stay free of
Tk, sockets, the station, the network and drivers, no module cycles, no module over 800 lines,
and no two modules share a base name.  Read from the source with ``ast`` (every import counts,
also one inside a function), so nothing is imported and nothing runs."""
from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pycam"

#: floor of every top-level part of pycam (longest prefix wins); a new top-level module or
#: package must be placed here, so a test fails until someone decides where it lives
FLOORS = {
    "pycam": 1, "pycam.protocol": 1, "pycam.config": 1, "pycam.formats": 1, "pycam.reference_spectra": 1,
    "pycam.schedule": 1,
    "pycam.net": 2, "pycam.processing": 2, "pycam.doas": 2, "pycam.drivers": 2, "pycam.sim": 2,
    "pycam.products": 2,
    "pycam.station": 3, "pycam.client": 3, "pycam.reprocess": 3,
    "pycam.gui": 4,
    "pycam.cli": 5, "pycam.__main__": 5,
}
#: what floor 1 may import besides the standard library: numpy, and the codecs it wraps
FLOOR_1_THIRD_PARTY = {
    "numpy",
    "cv2",           # pycam.formats.images: the 16-bit PNG codec
    "crc32c",        # pycam.protocol.frames: hardware CRC-32C when installed (a pure fallback otherwise)
    "cryptography",  # pycam.protocol.session: AES-GMAC frame MACs when installed (HMAC otherwise)
}
#: never imported by pycam.processing or pycam.doas (GUI toolkits, sockets, station, network, drivers)
SCIENCE_FORBIDDEN = ("tkinter", "ttkthemes", "matplotlib.backends.backend_tk", "matplotlib.backends._backend_tk",
                     "socket", "socketserver", "selectors", "ssl", "asyncio",
                     "pycam.station", "pycam.client", "pycam.net", "pycam.gui", "pycam.drivers", "pycam.cli")
MAX_LINES = 800


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@lru_cache(maxsize=None)
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name`` imports (relative imports resolved; ``from a import b`` counts a.b when it is a module)."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules())
    return frozenset(found)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def floor_of(module: str) -> int | None:
    owners = [p for p in FLOORS if _under(module, p)]
    return FLOORS[max(owners, key=len)] if owners else None


def offenders(where: str, forbidden) -> list[str]:
    return sorted(f"{m} imports {i}" for m in modules() if _under(m, where)
                  for i in imports_of(m) if any(_under(i, f) for f in forbidden))


def test_the_import_reader_sees_relative_and_lazy_imports():
    assert "pycam.protocol.messages" in imports_of("pycam.net.connection")
    assert any(_under(i, "pycam.station") for i in imports_of("pycam.cli.masterpi"))
    assert floor_of("pycam.gui.app") == 4 and floor_of("pycam.config") == 1


def test_every_module_has_a_floor():
    assert [m for m in modules() if floor_of(m) is None] == [], "place new top-level modules in FLOORS"


def test_imports_only_point_down():
    upward = sorted(f"{m} (floor {floor_of(m)}) imports {i} (floor {floor_of(i)})"
                    for m in modules() for i in imports_of(m)
                    if i.startswith("pycam") and floor_of(i) is not None and floor_of(i) > floor_of(m))
    assert not upward, "\n".join(upward)


def test_the_gui_reaches_the_station_only_through_the_protocol():
    found = offenders("pycam.gui", ["pycam.station"])
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package", ["pycam.processing", "pycam.doas"])
def test_processing_and_doas_import_no_gui_socket_station_net_or_driver(package):
    found = offenders(package, SCIENCE_FORBIDDEN)
    assert not found, "\n".join(found)


def test_the_protocol_does_no_io():
    found = offenders("pycam.protocol", ["socket", "selectors", "socketserver", "pycam.net"])
    assert not found, "\n".join(found)


def test_floor_1_needs_only_the_standard_library_and_numpy():
    external = sorted(f"{m} imports {i}" for m in modules() if floor_of(m) == 1 for i in imports_of(m)
                      if i.split(".")[0] not in sys.stdlib_module_names | FLOOR_1_THIRD_PARTY | {"pycam", "__future__"})
    assert not external, "\n".join(external)


def test_no_import_cycles_between_modules():
    graph = {m: {i for i in imports_of(m) if i in modules() and i != m} for m in modules()}
    state: dict[str, int] = {}      # 1 on the current path, 2 done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_module_over_800_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (limit {MAX_LINES} lines)"


def test_no_two_modules_share_a_base_name():
    names = Counter(p.name for p in modules().values() if p.name not in ("__init__.py", "__main__.py"))
    shared = {name: sorted(str(p.relative_to(PACKAGE.parent)) for p in modules().values() if p.name == name)
              for name, count in names.items() if count > 1}
    assert not shared, "\n".join(f"{name}: {', '.join(paths)}" for name, paths in sorted(shared.items()))


def test_the_readme_layout_table_names_every_part_on_its_floor():
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme[readme.index("## Layout"):].split("\n## ", 1)[0]
    listed = {}
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip().isdigit():
            for path in re.findall(r"`(pycam/[^`]*)`", cells[2]):
                listed[path.rstrip("/").removesuffix(".py").replace("/", ".")] = int(cells[1])
    parts = {".".join(m.split(".")[:2]) for m in modules()} - {"pycam"}
    assert set(listed) == parts, f"README layout table: missing {sorted(parts - set(listed))}, " \
                                 f"not in the package {sorted(set(listed) - parts)}"
    wrong = {part: (floor, floor_of(part)) for part, floor in listed.items() if floor != floor_of(part)}
    assert not wrong, f"README floor vs FLOORS: {wrong}"


def test_test_folders_mirror_the_package():
    """tests/<name>/ holds the tests of pycam/<name>/; the only other folders are named here."""
    others = {"helpers": "shared test helpers and hardware fakes", "hardware": "field drivers on fakes",
              "realdata": "comparisons with pyplis on real images", "scripts": "scripts/install.sh"}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in Path(__file__).parent.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders - packages - set(others) == set()
