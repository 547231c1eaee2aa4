"""Helpers for the render tests: compile a spec, run it with `radlang run`'s executor, render it,
and run the rendered script in a Python where `import radlang` fails (so it is truly standalone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPECS = HERE / "specs"

# Runs a script with radlang made unimportable: a standalone script must not need it.
NO_RADLANG = (
    "import sys, runpy\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'radlang' or name.startswith('radlang.'):\n"
    "            raise ImportError('the rendered script imported radlang: ' + name)\n"
    "sys.meta_path.insert(0, _Block())\n"
    "script = sys.argv[1]\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(script, run_name='__main__')\n"
)


def compile_text(text: str, file: str | Path):
    from radlang.compiler import compile_source

    res = compile_source(text, str(file))
    assert res.ok, "\n".join(f"{d.code} {d.message}" for d in res.diagnostics)
    return res.study


def compile_spec(path: str | Path):
    p = Path(path)
    return compile_text(p.read_bytes().decode("utf-8"), p)   # bytes: no newline translation, as the CLI reads it


def run_script(script: Path, *args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run([sys.executable, "-c", NO_RADLANG, str(script), *args], capture_output=True, text=True, check=False,
                          cwd=str(cwd or script.parent), env=env, timeout=timeout)


def output_files(root: Path) -> dict[str, bytes]:
    """Every CSV and JSON a run wrote (metrics, predictions, features, phantom manifests), but run.json
    (timings, platform) and the cache."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and p.suffix in (".csv", ".json") and rel != "run.json" and not rel.startswith(".cache/"):
            out[rel] = p.read_bytes()
    return out


