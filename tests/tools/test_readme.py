"""The README stays short and true: its Python example runs (and prints the
cache statistics it claims), it is under 10 000 characters, and every local
link in it and in docs/ points to a file that exists."""
from __future__ import annotations

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_is_short():
    assert len(README) < 10_000, len(README)


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 1, "the README has one Python example; more go to docs/"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), {})
    text = out.getvalue()
    assert "stablehlo.dot_general" in text or "stablehlo." in text
    claimed = re.search(r"# (CacheInfo\(.*\))", blocks[0]).group(1)
    assert text.strip().splitlines()[-1] == claimed


def test_local_links_exist():
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert len(docs) >= 5
    bad = []
    for page in [ROOT / "README.md", *docs]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not bad, bad
