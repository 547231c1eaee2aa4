"""The rendered script itself: each stage as a short function that calls its operator's inlined `run`, the
runtime stand-ins, the provenance header, the page laid out by templates/study.py.j2, written atomically."""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlang import __version__, registry
from radlang.backends.render.inline import SCRIPT_MODULES, check_operator, inline_closure, is_radlang, op_functions
from radlang.backends.render.literals import RenderError, comment_text, identifier, pylit
from radlang.backends.render.pins import imported_modules, lock_text, package_pins


@dataclass(frozen=True)
class Option:
    """A command-line flag of the script (e.g. `--train-path` to point a cohort at another manifest)."""

    flag: str
    dest: str
    default: Any
    help: str


@dataclass
class StageCode:
    """What a hook returns: the body of the stage's function and what it needs."""

    body: list[str]                                  # Python lines of the function body, unindented
    functions: list[Callable] = field(default_factory=list)  # self-contained functions it calls (inlined once)
    options: list[Option] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # extra stdlib imports of the glue, e.g. "json"
    defs: list[str] = field(default_factory=list)     # functions written before the stage's function (`study_code`)


@dataclass
class RenderContext:
    """What hooks use to write a stage: the study, literals, input expressions, flags."""

    study: Any
    spec_dir: str

    def lit(self, obj, indent: int = 4) -> str:
        return pylit(obj, indent=indent)

    def result(self, stage_name: str) -> str:
        """The expression for another stage's value inside a stage function."""
        return f"ctx.results[{stage_name!r}]"

    def input(self, stage, port: str) -> str | None:
        ref = stage.inputs.get(port)
        return None if ref is None else self.result(ref.stage)

    def option(self, flag: str, dest: str, default: Any, help: str) -> Option:
        return Option(flag, dest, default, help)

    def flag(self, stage, what: str) -> tuple[str, str]:
        """(`--train-path`, `train_path`): a per-stage command-line flag and its argparse dest."""
        dest = f"{identifier(stage.name)}_{what}"
        return "--" + dest.replace("_", "-"), dest


def call_run(stage, rc: RenderContext, op) -> StageCode:
    """A stage of an operator that declares its own `run`: the stage calls it, inlined verbatim, exactly as
    `radlang run` does. Each of the operator's `cli_paths` settings can be pointed elsewhere with a
    `--<stage>-<setting>` flag (relative to the working folder); the default is the spec's value, relative to
    the spec's folder, as in `radlang run`. The functions the operator's `study_code` writes (a validation's fold
    pipeline) are defined before the stage's function and passed to `run` by keyword."""
    before, options = [], []
    for setting in op.cli_paths:
        flag, dest = rc.flag(stage, setting)
        before += [f"if args.{dest}:",
                   f"    stage.params = {{**stage.params, {setting!r}: str(Path(args.{dest}).resolve())}}"]
        help_ = (f"`{setting}` of {stage.kind} `{stage.name}` (default: {stage.params[setting]}, relative to the spec's folder)")
        options.append(rc.option(flag, dest, None, help_))
    code = op.study_code(stage, rc.study) if op.study_code is not None else []
    passed = "".join(f", {keyword}={name}" for keyword, name, _ in code)
    return StageCode(body=[*before, f"return {op.run.__name__}(stage, ctx{passed})"], functions=run_functions(op), options=options,
                     imports=["Path"] if before else [], defs=[source for _, _, source in code])


def run_functions(op) -> list[Callable]:
    """An operator's run-time glue: its `run`, per-case `case`, `on_cohort` and `fold_data` functions (those it declares)."""
    return [f for f in (op.run, op.case, op.on_cohort, op.fold_data) if f is not None]


def _stage_literal(st, spec_path: str, spec_ref: Callable[[str], str]) -> str:
    """`stage = ctx.declare(Stage(...))` with the stage's settings and everything else a mode reads, as
    literals; fields at their defaults are left out. `spec_ref` writes the path of the spec file that declared it."""
    from dataclasses import fields as dc_fields

    type_ = {f.name: getattr(st.type, f.name) for f in dc_fields(st.type) if getattr(st.type, f.name) != f.default}
    fields = {"name": st.name, "kind": st.kind, "op": st.op, "params": st.params,
              "inputs": {p: [r.stage, r.attr] for p, r in sorted(st.inputs.items())}, "seed": st.seed, "type": type_,
              "fit": st.fit, "fit_within": list(st.fit_within), "extra": {k: v for k, v in st.extra.items() if k != "refs"}}
    fields = {k: v for k, v in fields.items() if k in ("name", "kind", "op", "params", "seed") or v not in ({}, [], "none")}
    lines = [f"    {k}={pylit(v, indent=4, width=124, pack=True)}," for k, v in fields.items()]
    f = Path(st.span.file) if st.span and st.span.file else None
    file = str(f.resolve()) if f is not None and f.exists() else (str(f) if f else "")
    lines.append("    file=SPEC_PATH," if file == spec_path else f"    file={spec_ref(file)},")
    return "\n".join(["stage = ctx.declare(Stage(", *lines, "))"])


def _library_lines(op, st) -> list[str]:
    """The library object the stage's settings make, as its operator shows it (`library_code`), as `#` lines."""
    if op.library_code is None:
        return []
    try:
        lines = op.library_code(st.params, st.seed)
    except ImportError as e:   # an optional package that is not installed where the study is rendered
        lines = [f"(not shown: {e.name or e} is not installed here)"]
    return ["# the library object these settings make:", *(f"#   {comment_text(x)}" for x in lines)]


def runtime_needs() -> list[Callable]:
    """The radlang functions the runtime calls (imported at its top): inlined like executor glue."""
    from radlang.backends import render_runtime as _runtime

    tree = ast.parse(inspect.getsource(_runtime))
    return [getattr(_runtime, a.asname or a.name) for n in tree.body if isinstance(n, ast.ImportFrom) and is_radlang(n.module)
            for a in n.names]


def runtime_source() -> tuple[str, frozenset[str]]:
    from radlang.backends import render_runtime as _runtime

    src = inspect.getsource(_runtime)
    tree = ast.parse(src)
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            and not isinstance(n, (ast.Import, ast.ImportFrom))]
    lines = src.split("\n")
    text = "\n".join(lines[body[0].lineno - 1:]).strip() + "\n"
    return text, frozenset(top_level_names(text))


def _spec_lines(study, st) -> list[str]:
    """The statement as written in the spec (sanitised comment text), when it comes from the spec itself."""
    if not st.span or st.span.file != study.file:
        return []
    lines = study.source.split("\n")[st.span.line - 1: st.span.end_line]
    return [comment_text(x) for x in lines][:40]


def _default_out(study) -> str:
    return study.config.get("out") or "runs/study"


def _provenance_date(date: str | None) -> str:
    if date is not None:
        return date
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _registry_line(op, study) -> str:
    """How the script's registry knows an operator: the functions `radlang run` looks up by operator name
    (`run`, `case`, `on_cohort`, `fold_data`, `impl`) and, per stage, the settings-dependent code its glue looks up
    (`reaches`). Helpers are reached from those by name, so they are not listed."""
    args = [f"name={op.name!r}", f"behaviour={op.behaviour!r}", f"version={op.version!r}", f"sink={op.sink!r}", f"fit={op.fit!r}"]
    args += [f"{what}={fn.__name__}" for what, fn in (("run", op.run), ("case", op.case), ("on_cohort", op.on_cohort),
                                                      ("fold_data", op.fold_data), ("impl", op.impl)) if fn is not None]
    if op.raters:
        args.append("raters=True")
    if op.inner_cv is not None:
        args.append(f"inner_cv={op.inner_cv!r}")
    reached = {st.name: op.reached(st, study) for st in study.stages if st.op == op.name}
    reached = {name: fns for name, fns in reached.items() if fns}
    if reached:
        for fns in reached.values():
            if any(k != f.__name__ for k, f in fns.items()):
                raise RenderError("E706", f"internal error: `{op.name}`'s `reaches` names a function other than by its own name")
        args.append("reaches={" + ", ".join(f"{name!r}: {{" + ", ".join(f"{k!r}: {k}" for k in fns) + "}"
                                            for name, fns in reached.items()) + "}")
    return f"registry.add(OperatorInfo({', '.join(args)}))"


@functools.lru_cache(maxsize=4096)
def names_used(src: str) -> frozenset[str]:
    """Every name a piece of code mentions (loads, stores, annotations): the edges of the script's call graph."""
    return frozenset(n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name))


def reachable(blocks: dict[str, str], roots: set[str]) -> list[str]:
    """The blocks (name -> source) that `roots` reach by name, following every name each block mentions; in the
    order of `blocks`. Code the study never names is left out of the script."""
    seen, todo = set(), [r for r in roots if r in blocks]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [n for n in names_used(blocks[name]) if n in blocks and n not in seen]
    return [n for n in blocks if n in seen]


def top_level_names(src: str) -> set[str]:
    """The names a module defines at its top level (functions, classes, assignments)."""
    out = set()
    for n in ast.parse(src).body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Assign):
            out |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    return out


def short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _keep_imports(lines: set[str] | list[str], used: set[str]) -> list[str]:
    """The import lines whose bound names the code uses."""
    kept = []
    for line in lines:
        node = ast.parse(line).body[0]
        bound = {(a.asname or a.name).split(".")[0] for a in node.names}
        if bound & used or isinstance(node, ast.ImportFrom) and node.module == "__future__":
            kept.append(line)
    return sorted(kept, key=lambda x: (x.startswith("from "), x))


@dataclass
class Parts:
    """A rendered study in pieces: the runtime module's body and the study's stages, run loop and provenance.
    The single-file script and the review folder lay out the same pieces."""

    values: dict[str, Any]          # template variables
    blocks: list[dict]              # inlined functions, classes and constants that the study reaches
    block_sha: dict[str, str]       # name -> sha256 of its source (16 hex)
    glue_imports: list[str]         # import lines the inlined code needs
    pins: dict[str, str]
    stage_calls: dict[str, list[str]]


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parents[1] / "templates")), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["lit"] = pylit
    env.filters["comment"] = comment_text
    return env


def _parts(study, date: str | None, spec_ref: Callable[[str], str]) -> Parts:
    """Everything both layouts need. `spec_ref(path)` writes a spec file's path as a Python expression."""
    rc = RenderContext(study=study, spec_dir=str(Path(study.file).resolve().parent))
    runtime, runtime_names = runtime_source()
    from radlang.backends.artefacts import run_record_sources, write_artefact_manifest, write_stage_table

    wanted: list[Callable] = [*runtime_needs(), write_stage_table, write_artefact_manifest, run_record_sources]
    spec_path = str(Path(study.file).resolve()) if Path(study.file).exists() else study.file
    origin: dict[int, str] = {}
    stages, options, glue_imports, problems, ops = [], [], set(), [], {}
    for st in study.stages:
        op = registry.get(st.op)
        code: StageCode = call_run(st, rc, op)
        problems += check_operator(op)

        for f in [*op_functions(op), *run_functions(op), *code.functions, *op.reached(st, study).values()]:
            if f not in wanted:
                wanted.append(f)
        ops[op.name] = op
        options += [o for o in code.options if o not in options]
        glue_imports |= {SCRIPT_MODULES.get(m, f"import {m}") for m in code.imports}
        stages.append({
            "name": st.name, "fn": f"stage_{identifier(st.name)}",
            "body": [*_stage_literal(st, spec_path, spec_ref).split("\n"), *_library_lines(op, st), *code.body],
            "header": comment_text(f"{st.kind} {st.name} = {st.op}(...)   [{op.behaviour}, seed {st.seed}]"),
            "comments": [comment_text(c) for c in st.comments],
            "spec": _spec_lines(study, st),
            "consumes": comment_text(", ".join(f"{p} <- {r}" for p, r in sorted(st.inputs.items())) or "nothing"),
            "runtime": [],
            "defs": code.defs,
            "fit": comment_text(f"fit on {st.fit}" + (f" inside the training folds of {', '.join(st.fit_within)}" if st.fit_within else "")
                                if st.fit != "none" else ""),
        })
    strict = {f for op in ops.values() for f in op_functions(op)}
    for op in [*ops.values(), *registry.all_ops()]:   # the study's operators first
        for f in op_functions(op):
            origin.setdefault(id(f), f"{f.__module__} (operator `{op.name}` v{op.version})")
        for f in run_functions(op):
            origin.setdefault(id(f), f"{f.__module__} (operator `{op.name}` v{op.version}, its run-time glue, verbatim)")
    functions, sources, more_imports, glue_problems = inline_closure(wanted, strict, runtime_names)
    problems += glue_problems
    glue_imports |= more_imports
    if problems:
        raise RenderError("E704", "operator code cannot be inlined into a standalone script:\n  " + "\n  ".join(dict.fromkeys(problems)))
    registry_lines = [_registry_line(op, study) for op in ops.values()]
    spec_text = study.source
    sha = hashlib.sha256(spec_text.encode()).hexdigest()
    values = {
        "title": comment_text(study.title), "title_lit": pylit(study.title), "spec_file": comment_text(study.file),
        "version": __version__, "date": _provenance_date(date), "sha": sha, "python": sys.version.split()[0],
        "spec_lines": [comment_text(x) for x in spec_text.split("\n")],
        "spec_lit": _spec_literal(spec_text), "seed": study.seed,
        "seeds": [(comment_text(s.name), s.seed) for s in study.stages],
        "runtime": runtime, "registry_lines": registry_lines, "stages": stages, "options": options,
        "default_out": pylit(_default_out(study)), "study_config": pylit(study.config, indent=0), "spec_file_lit": pylit(study.file),
        "spec_path_expr": spec_ref(spec_path), "spec_file_expr": spec_ref(study.file), "rendered_by": pylit(f"radlang {__version__} render"),
    }
    env = _environment()
    body = env.get_template("study_body.py.j2").render(**values)
    # the call graph: what the stages, the run loop, the runtime and the registry name, and what that names in turn
    named = {_block_name(f, src): (f, src.rstrip("\n") + "\n") for f, src in zip(functions, sources)}
    roots = names_used(body) | names_used(runtime) | names_used("\n".join(registry_lines))
    keep = reachable({n: src for n, (_, src) in named.items()}, roots)
    blocks, block_sha, kept_sources = [], {}, []
    for n in keep:
        f, src = named[n]
        block_sha[n] = short_sha(src)
        what = (f"{f[2]} (a constant the executor glue uses)" if isinstance(f, tuple)
                else origin.get(id(f), f"{f.__module__} (executor glue, verbatim)"))
        blocks.append({"name": n, "origin": comment_text(f"{what}; sha256 {block_sha[n]}"), "source": src})
        kept_sources.append(src)
    used = names_used(runtime) | names_used("\n".join(registry_lines)) | {x for s in kept_sources for x in names_used(s)}
    pins = package_pins(imported_modules([*kept_sources, *_keep_imports(glue_imports, used)]))
    sources_of = {n: named[n][1] for n in keep}
    stage_calls = {}
    for s in stages:
        stage_calls[s["name"]] = calls = sorted(names_used("\n".join(s["body"])) & set(keep))
        s["runtime"] = [_code_line(c, sources_of) for c in calls]
    body = env.get_template("study_body.py.j2").render(**values)
    values.update(pins=pins, pins_lit=pylit(pins, indent=0), functions=blocks, body=body)
    return Parts(values=values, blocks=blocks, block_sha=block_sha, glue_imports=_keep_imports(glue_imports, used), pins=pins,
                 stage_calls=stage_calls)


def code_sha(name: str, sources: dict[str, str]) -> tuple[str, int]:
    """sha256 (16 hex) of a function's source and of every inlined block it reaches by name, in the script's order,
    and how many blocks that is."""
    closure = reachable(sources, {name})
    return short_sha("".join(sources[n] for n in closure)), len(closure)


def _code_line(name: str, sources: dict[str, str]) -> str:
    sha, n = code_sha(name, sources)
    return f"calls {name}: sha256 {short_sha(sources[name])}; with the {n - 1} blocks it reaches: sha256 {sha}"


def _block_name(f, src: str) -> str:
    """The name a block defines: a function's or class's, or a constant's (`NAME = ...`)."""
    return f.__name__ if not isinstance(f, tuple) else ast.parse(src).body[0].targets[0].id


def render_study(study, date: str | None = None) -> tuple[str, dict[str, str]]:
    """The single self-contained script and the package pins it records."""
    spec_dir = str(Path(study.file).resolve().parent)
    parts = _parts(study, date, pylit)
    text = _environment().get_template("study.py.j2").render(
        **parts.values, imports=_import_lines(set(parts.glue_imports)), spec_dir=pylit(spec_dir))
    _must_parse(text, "the rendered script")
    return text, parts.pins


RUNTIME_MODULE = "radlang_runtime"
REVIEW_FILES = ("study.py", f"{RUNTIME_MODULE}.py", "manifest.json", "requirements.lock")


def render_review(study, folder, date: str | None = None) -> dict[str, str]:
    """The review form: file name -> text for `study.py` (the study first: stages that call the runtime with literal
    settings), the runtime module beside it (pinned by its sha256) and `manifest.json`. Spec paths are written
    relative to `folder`, so the folder and the spec can move together."""
    here = Path(folder).resolve()

    def spec_ref(path: str) -> str:
        if not Path(path).is_absolute():
            return pylit(path)
        return f"str((HERE / {pylit(Path(os.path.relpath(path, here)).as_posix())}).resolve())"

    parts = _parts(study, date, spec_ref)
    env = _environment()
    v = parts.values
    runtime_code = "\n".join([v["runtime"], *(b["source"] for b in parts.blocks), *v["registry_lines"]])
    runtime_imports = _keep_imports(parts.glue_imports, names_used(runtime_code))
    runtime_text = env.get_template("review_runtime.py.j2").render(**v, imports=runtime_imports)
    _must_parse(runtime_text, f"the rendered {RUNTIME_MODULE}.py")
    runtime_sha = hashlib.sha256(runtime_text.encode()).hexdigest()

    def study_text(imports, names):
        return env.get_template("review_study.py.j2").render(
            **v, imports=imports, runtime_imports=names, runtime_sha=runtime_sha, runtime_file=f"{RUNTIME_MODULE}.py",
            runtime_module=RUNTIME_MODULE, pipelines=[])

    draft = study_text(_import_lines(set()), [])        # every candidate import: keep those the study names
    _must_parse(draft, "the rendered study.py")
    used = names_used(draft)
    local = {n.name for n in ast.parse(draft).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    text = study_text(_keep_imports(_import_lines(set()), used), sorted((used & top_level_names(runtime_text)) - local))
    _must_parse(text, "the rendered study.py")
    manifest = render_manifest(study, parts, {"study.py": hashlib.sha256(text.encode()).hexdigest(),
                                              f"{RUNTIME_MODULE}.py": runtime_sha}, spec_ref)
    return {"study.py": text, f"{RUNTIME_MODULE}.py": runtime_text, "manifest.json": manifest}


def render_manifest(study, parts: Parts, files: dict[str, str], spec_ref: Callable[[str], str]) -> str:
    """manifest.json of the review folder: what was rendered (files and their sha256, package pins, the runtime's
    blocks and their sha256) and the study's graph (each stage's operator, settings, inputs, seed, fit and the
    runtime functions it calls). A run of study.py writes its own artefact manifest into the output folder."""
    stages = []
    for st in study.stages:
        op = registry.get(st.op)
        stages.append({"name": st.name, "kind": st.kind, "op": st.op, "op_version": op.version, "behaviour": op.behaviour,
                       "params": st.params, "inputs": {p: str(r) for p, r in sorted(st.inputs.items())}, "seed": st.seed,
                       "fit": st.fit, "fit_within": list(st.fit_within), "line": st.span.line if st.span else None,
                       "calls": {c: parts.block_sha[c] for c in parts.stage_calls[st.name]}})
    spec = Path(study.file)
    record = {
        "format": "radlang-review/1",
        "study": study.title,
        "seed": study.seed,
        "config": study.config,
        "spec": {"file": study.file, "sha256": parts.values["sha"]},
        "rendered_by": f"radlang {__version__}",
        "rendered": parts.values["date"],
        "python": parts.values["python"],
        "packages": parts.pins,
        "files": files,
        "stages": stages,
        "edges": [[r.stage, st.name, p] for st in study.stages for p, r in sorted(st.inputs.items())],
        "runtime_blocks": parts.block_sha,
    }
    if spec.is_absolute() or spec.exists():
        record["spec"]["file"] = spec.name
    return json.dumps(record, indent=2, sort_keys=False, default=str) + "\n"


def render_to_dir(study, folder, lock: bool = False, date: str | None = None) -> Path:
    """Write the review folder (study.py, the runtime, manifest.json, and requirements.lock with `lock`). The folder
    may exist only if it is empty or holds nothing but an earlier render's files."""
    from radlang.backends.cache import atomic_write_text

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise RenderError("E702", f"cannot write the review folder `{folder}`: it is a file")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in REVIEW_FILES and p.name != "__pycache__")
        if others:
            raise RenderError("E707", f"`{folder}` holds files that a render did not write ({', '.join(others[:5])}); "
                                      "give an empty or new folder for the rendered study")
    elif not out.parent.is_dir():
        raise RenderError("E702", f"cannot write `{folder}`: the folder `{out.parent}` does not exist; create it first")
    files = render_review(study, out, date=date)
    try:
        out.mkdir(exist_ok=True)
        if lock:
            files["requirements.lock"] = lock_text(json.loads(files["manifest.json"])["packages"])
        for name, text in files.items():
            atomic_write_text(out / name, text)
            (out / name).chmod(0o755 if name == "study.py" else 0o644)
    except OSError as e:
        raise RenderError("E702", f"cannot write `{folder}`: {e.strerror or e}") from e
    return out


def _must_parse(text: str, what: str) -> None:
    try:
        ast.parse(text)
    except SyntaxError as e:  # a bug in a hook or the template, never in the spec
        raise RenderError("E706", f"internal error: {what} is not valid Python (line {e.lineno}: {e.msg})") from e


def _import_lines(extra: set[str]) -> list[str]:
    """The script's stdlib imports: what the template uses plus what the glue functions need."""
    lines = {"import argparse", "import hashlib", "import json", "import platform", "import sys", "import time",
             "from pathlib import Path"} | set(extra)
    return sorted(lines, key=lambda x: (x.startswith("from "), x))


def _spec_literal(text: str) -> str:
    lines = text.splitlines(keepends=True) or [""]
    return "(\n" + "\n".join(f"    {x!r}" for x in lines) + "\n)"


def render_to_file(study, output, lock: bool = False, date: str | None = None) -> Path:
    """Render and write the script (and requirements.lock beside it) atomically: all or nothing."""
    from radlang.backends.cache import atomic_write_text

    out = Path(output)
    if out.exists() and out.is_dir():
        raise RenderError("E702", f"`{output}` is a folder; give the script's file name, e.g. {Path(output) / 'study.py'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise RenderError("E702", f"cannot write `{output}`: the folder `{parent}` does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise RenderError("E702", f"cannot write `{output}`: the folder `{parent}` is not writable")
    text, pins = render_study(study, date=date)
    try:
        if lock:
            atomic_write_text(parent / "requirements.lock", lock_text(pins))
        atomic_write_text(out, text)
        out.chmod(0o755)  # it starts with a shebang; mkstemp made it private
        if lock:
            (parent / "requirements.lock").chmod(0o644)
    except OSError as e:
        raise RenderError("E702", f"cannot write `{output}`: {e.strerror or e}") from e
    return out
