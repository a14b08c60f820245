"""The package's shape (docs/architecture.md): import contracts, no cycles, no private imports across
modules, small modules, one method registry."""

import ast
from pathlib import Path

import pytest

import napari_bsdenoise as bsd
from napari_bsdenoise import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_bsdenoise"
MAX_LINES = 500


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def test_import_linter_contracts_hold(capsys):
    """The layers, independence and napari/Qt contracts of pyproject.toml ([tool.importlinter])."""
    import os

    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert code == 0, out[-4000:]
    assert "4 kept, 0 broken" in out


def test_no_import_cycle_inside_the_package():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("napari_bsdenoise")
    mods = sorted(m for m in graph.modules if m.startswith("napari_bsdenoise."))
    edges = {m: sorted(d for d in graph.find_modules_directly_imported_by(m)
                       if d.startswith("napari_bsdenoise.") and d != m) for m in mods}
    # Tarjan's strongly connected components: any component of more than one module is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for m in mods:
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_a_private_name_from_another_module():
    bad = []
    for mod, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if any(_private(p) for p in source.split(".")):
                    bad.append(f"{mod}: from {'.' * node.level}{source} import ...")
                bad += [f"{mod}: from {'.' * node.level}{source} import {a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Import):
                bad += [f"{mod}: import {a.name}" for a in node.names
                        if a.name.startswith("napari_bsdenoise") and any(_private(p) for p in a.name.split("."))]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("api", "tiling", "registry", "bsd", "napari_bsdenoise"):
                bad.append(f"{mod}: {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_no_module_is_over_500_lines():
    long = {mod: n for mod, path in _modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_one_registry_knows_every_method_and_builds_its_network():
    assert set(registry.names()) == {"atbsn", "dbsn", "student", "bsgd"}
    assert bsd.api.TRAIN_METHODS == ("atbsn", "dbsn", "auto")
    from napari_bsdenoise.config import NetworkConfig

    for name in registry.names():
        spec = registry.get(name)
        assert spec.presets and spec.title and callable(spec.describe)
        net = registry.build_network(NetworkConfig(method=name, in_channels=1, out_channels=1,
                                                   **dict(spec.presets["tiny"])))
        assert sum(p.numel() for p in net.parameters()) > 0
    with pytest.raises(bsd.InputError, match="unknown method 'nope'; available: 'atbsn'"):
        registry.get("nope")


def test_importing_the_package_stays_light():
    """``import napari_bsdenoise`` (napari's plugin discovery, the CLI's --help) loads no torch, dask,
    distributed or Qt: they are imported where a network is built or a graph is run."""
    import subprocess
    import sys

    code = ("import sys, napari_bsdenoise, napari_bsdenoise.cli; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'dask', 'distributed', 'napari', "
            "'qtpy', 'PyQt5', 'zarr'}); print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
