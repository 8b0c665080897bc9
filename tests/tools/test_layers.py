"""The package's imports run one way (docs/architecture.md):

    tools (cli, check, demo)
      -> public API (api, export, the package __init__)
      -> jax glue (axes, module I/O, the flat export, chunking, sharding, ...)
      -> the rewrite (stablehlo_batch.passes: engine, builders, rules, ...)
      -> jaxlib.mlir

Parsed with ``ast``, nothing imported: a module may import its own layer or
lower ones, never a higher one; no import cycle among modules; no private
name (``_x``) imported or read from another module; the rewrite does not
import jax; jax's private APIs from one glue module only; imports inside
functions only where a measured start-up cost says so (the CLI)."""
from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = "stablehlo_batch"
REWRITE = f"{PKG}.passes"

TOOLS, API, GLUE, RW = 3, 2, 1, 0
LAYER_NAMES = {TOOLS: "tools", API: "public API", GLUE: "jax glue", RW: "the rewrite"}
# Every module of stablehlo_batch/ has a layer here (a new module must be
# given one here and in docs/architecture.md); all of passes/ is the rewrite.
LAYERS = {
    "cli": TOOLS, "check": TOOLS, "demo": TOOLS,
    "__init__": API, "api": API, "export": API,
    "axes": GLUE, "module_io": GLUE, "rewrite": GLUE, "flat": GLUE, "chunking": GLUE,
    "sharding": GLUE, "scaling": GLUE, "primitive": GLUE, "inline": GLUE, "callbacks": GLUE,
    "selfcheck": GLUE, "named_axes": GLUE, "tuning": GLUE, "levels": GLUE, "costmodel": GLUE,
    "pipeline": API, "xla_compat": GLUE, "jax_internals": GLUE, "vmappables": GLUE,
    "custom_vmap": GLUE,
}
# Modules that may import inside functions, and why (a measured start-up cost).
LAZY_IMPORTS = {
    f"{PKG}.cli": "the API loads jax (seconds): --help / --version / argument "
                  "errors answer without it",
}
# The only modules that may use private jax / jaxlib APIs: jax_internals wraps
# each one the package needs (its docstring says why and what breaks); the
# callback support works inside jax's callback lowering throughout.
PRIVATE_JAX = {
    f"{PKG}.callbacks": ("jax._src",),
    f"{PKG}.jax_internals": ("jax._src", "jaxlib.mlir._mlir_libs", "jaxlib._hlo",
                             "jaxlib._jax"),
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted((ROOT / PKG).glob("*.py")):
        out[PKG if path.stem == "__init__" else f"{PKG}.{path.stem}"] = path
    for path in sorted((ROOT / "passes").rglob("*.py")):
        parts = path.relative_to(ROOT / "passes").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((REWRITE,) + parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    if module == REWRITE or module.startswith(REWRITE + "."):
        return RW
    stem = "__init__" if module == PKG else module.split(".")[1]
    assert stem in LAYERS, (f"{module} has no layer: add it to LAYERS in {__file__} "
                            "and to docs/architecture.md")
    return LAYERS[stem]


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


class _Import:
    def __init__(self, source, target, names, line, nested):
        self.source, self.target, self.names = source, target, names
        self.line, self.nested = line, nested

    def __str__(self):
        return f"{MODULES[self.source].relative_to(ROOT)}:{self.line}"


def _imports(module: str, source: str | None = None) -> tuple[list[_Import], list[str]]:
    """The imports of ``module`` (the internal module each one reaches) and
    the private attributes it reads from internal modules."""
    tree = ast.parse(MODULES[module].read_text() if source is None else source)
    found, aliases, private_reads = [], {}, []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    found.append(_Import(module, a.name, [], child.lineno, nested))
                    if a.asname and a.name in MODULES:
                        aliases[a.asname] = a.name
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, child)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    if sub in MODULES:  # a module imported by name
                        found.append(_Import(module, sub, [], child.lineno, nested))
                        aliases[a.asname or a.name] = sub
                    else:
                        found.append(_Import(module, base, [a.name], child.lineno, nested))
            elif (isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name)
                  and child.value.id in aliases and child.attr.startswith("_")
                  and not child.attr.startswith("__")):
                private_reads.append(f"{MODULES[module].relative_to(ROOT)}:{child.lineno} "
                                     f"reads {aliases[child.value.id]}.{child.attr}")
            visit(child, inner)

    visit(tree, False)
    return found, private_reads


IMPORTS = {m: _imports(m) for m in MODULES}


def _internal(target: str) -> str | None:
    """The internal module an import reaches (None: outside the package)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


def _upward(m, imports) -> list[str]:
    bad = []
    for imp in imports:
        t = _internal(imp.target)
        if t is not None and _layer(t) > _layer(m):
            bad.append(f"{imp}: {m} ({LAYER_NAMES[_layer(m)]}) imports {t} "
                       f"({LAYER_NAMES[_layer(t)]})")
    return bad


def _private(imports, private_reads) -> list[str]:
    bad = list(private_reads)
    for imp in imports:
        if _internal(imp.target) is None:
            continue
        bad += [f"{imp}: imports {n} from {imp.target}" for n in imp.names
                if n.startswith("_") and not n.startswith("__")]
    return bad


def test_imports_follow_the_layer_order():
    bad = [b for m, (imports, _) in IMPORTS.items() for b in _upward(m, imports)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m, (imports, _) in IMPORTS.items():
        for imp in imports:
            t = _internal(imp.target)
            # A package's __init__ gathering its own modules is containment
            # (importing the package runs them), not a dependency.
            if t is None or t == m or (_is_package(m) and t.startswith(m + ".")):
                continue
            graph[m].add(t)
    return graph


def _find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def dfs(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = dfs(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state:
            found = dfs(u)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_can_fail():
    graph = _graph()
    graph[f"{PKG}.axes"].add(f"{PKG}.api")  # api -> axes exists
    assert _find_cycle(graph) is not None


def test_the_checks_can_fail():
    engine = f"{REWRITE}.engine"
    imports, reads = _imports(engine, "from stablehlo_batch.api import batch_lower\n")
    assert _upward(engine, imports)
    imports, reads = _imports(f"{PKG}.api", "from stablehlo_batch.axes import _arg_names\n"
                                            "from stablehlo_batch import flat\n"
                                            "def f():\n    return flat._with_batch\n")
    assert len(_private(imports, reads)) == 2
    assert [i.nested for i in imports] == [False, False]
    imports, _ = _imports(f"{PKG}.api", "def f():\n    import jax\n")
    assert [i.nested for i in imports] == [True]


def test_no_private_names_across_modules():
    bad = [b for imports, reads in IMPORTS.values() for b in _private(imports, reads)]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_the_rewrite_does_not_import_jax():
    bad = [f"{imp}: imports {imp.target}" for m, (imports, _) in IMPORTS.items()
           if _layer(m) == RW for imp in imports
           if imp.target == "jax" or imp.target.startswith("jax.")]
    assert not bad, "the rewrite knows jaxlib.mlir only:\n" + "\n".join(bad)


def _is_private_jax(name: str) -> bool:
    """jax._src..., jaxlib._jax, jaxlib.mlir._mlir_libs..., jaxlib.xla...: a
    jax / jaxlib path with a private (``_x``) part, or jaxlib's xla modules."""
    parts = name.split(".")
    return parts[0] in ("jax", "jaxlib") and (
        any(p.startswith("_") and not p.startswith("__") for p in parts[1:])
        or name == "jaxlib.xla" or name.startswith("jaxlib.xla."))


def _private_jax(m, imports) -> list[str]:
    bad = []
    for imp in imports:
        # ``from jaxlib import _jax`` reaches jaxlib._jax: the names count too.
        for name in [imp.target] + [f"{imp.target}.{n}" for n in imp.names]:
            if _is_private_jax(name) and not (
                    name + ".").startswith(tuple(p + "." for p in PRIVATE_JAX.get(m, ()))):
                bad.append(f"{imp}: imports {name}")
                break
    return bad


def test_private_jax_apis_in_one_place():
    bad = [b for m, (imports, _) in IMPORTS.items() for b in _private_jax(m, imports)]
    assert not bad, "private jax APIs outside PRIVATE_JAX:\n" + "\n".join(bad)


def test_the_private_jax_check_can_fail():
    api = f"{PKG}.api"
    imports, _ = _imports(api, "from jaxlib import _jax\nfrom jax._src import core\n"
                               "import jaxlib.mlir._mlir_libs\nfrom jax import numpy\n")
    assert len(_private_jax(api, imports)) == 3
    internals = f"{PKG}.jax_internals"
    imports, _ = _imports(internals, "from jaxlib import _jax\nfrom jax._src import core\n")
    assert not _private_jax(internals, imports)


def test_imports_at_the_top():
    bad = [f"{imp}: imports {imp.target} inside a function"
           for m, (imports, _) in IMPORTS.items() if m not in LAZY_IMPORTS
           for imp in imports if imp.nested]
    assert not bad, ("imports inside functions (allowed only where a measured start-up "
                     "cost says so; see LAZY_IMPORTS):\n" + "\n".join(bad))


_TOP_LEVEL_PASSES = re.compile(r"^\s*(from|import)\s+passes\b", re.M)


def test_nothing_imports_a_top_level_passes():
    files = [p for d in ("stablehlo_batch", "passes", "tests", "bench")
             for p in (ROOT / d).rglob("*.py")]
    files += list((ROOT / "lit_tests").glob("*.mlir")) + [ROOT / "README.md"]
    files += list((ROOT / "docs").glob("*.md"))
    bad = [str(p.relative_to(ROOT)) for p in files if _TOP_LEVEL_PASSES.search(p.read_text())]
    assert not bad, "`passes` is stablehlo_batch.passes now: " + ", ".join(bad)


def test_installed_environment_has_no_top_level_passes(tmp_path):
    # Outside the source tree only what is installed is importable.
    proc = subprocess.run(
        [sys.executable, "-c",
         "import importlib.util as u, stablehlo_batch.passes as p; "
         "print(u.find_spec('passes'), p.__name__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "stablehlo_batch.passes"], proc.stdout


@pytest.mark.parametrize("module", sorted(LAZY_IMPORTS))
def test_lazy_import_modules_say_why(module):
    text = MODULES[module].read_text()
    assert "start-up" in text.lower(), f"{module} imports lazily without saying why"
