"""The command line: check, plan, graph, ops, parse, run, predict, render, report, selftest.

Exit codes: 0 clean (warnings allowed), 1 spec or data errors, 2 usage errors."""

from __future__ import annotations

import argparse
import json
import sys

from radlang.diagnostics import Diagnostic, render_json, render_text


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2 with a one-line message, never a traceback
        self.print_usage(sys.stderr)
        print(f"radlang: error[E701]: {message}", file=sys.stderr)
        raise SystemExit(2)


def _emit(diags: list[Diagnostic], sources: dict, fmt: str, stream=None):
    stream = stream or sys.stderr
    if fmt == "json":
        print(render_json(diags), file=sys.stdout)
    elif diags:
        print(render_text(diags, sources), file=stream)


def _status(res) -> int:
    """0 clean (warnings allowed), 2 when the only errors are usage errors (E7xx: unreadable file), else 1."""
    if res.ok:
        return 0
    errors = [d for d in res.diagnostics if d.is_error]
    return 2 if errors and all(d.code.startswith("E7") for d in errors) else 1


def _compile(path, fmt, passes=True, data=False):
    from radlang.compiler import compile_file

    res = compile_file(path, passes=passes, data=data)
    return res


def cmd_check(a) -> int:
    res = _compile(a.file, a.format, data=not a.no_data)
    _emit(res.diagnostics, res.sources, a.format)
    if res.ok and a.format == "text":
        n = len(res.study.stages)
        print(f"{a.file}: ok ({n} stage{'s' if n != 1 else ''})", file=sys.stderr)
    return _status(res)


def cmd_parse(a) -> int:
    from radlang.ir import dump
    from radlang.syntax.parser import SourceError, parse_file

    try:
        m = parse_file(a.file)
    except SourceError as e:
        from pathlib import Path

        _emit(e.diagnostics, {a.file: Path(a.file).read_bytes().decode("utf-8", "replace")}, a.format)
        return 1
    except OSError as e:
        print(f"radlang: error[E701]: cannot read `{a.file}`: {e.strerror or e}", file=sys.stderr)
        return 2
    if a.format == "json":
        print(json.dumps(m.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(dump(m))
    return 0


def cmd_plan(a) -> int:
    from radlang.backends.plan import plan_json, plan_text

    res = _compile(a.file, a.format)
    if not res.ok:
        _emit(res.diagnostics, res.sources, a.format)
        return _status(res)
    from radlang.backends.plan import parse_memory

    try:
        parse_memory(a.memory)
    except ValueError as e:
        print(f"radlang: error[E701]: --memory: {e}", file=sys.stderr)
        return 2
    if a.format == "json":
        print(json.dumps(plan_json(res.study, memory=a.memory), indent=2, sort_keys=True))
    else:
        if res.diagnostics:
            _emit(res.diagnostics, res.sources, "text")
        print(plan_text(res.study, memory=a.memory))
    return 0


def cmd_graph(a) -> int:
    from radlang.backends.graphviz import to_dot, to_json, to_mermaid

    res = _compile(a.file, "text")
    if not res.ok:
        _emit(res.diagnostics, res.sources, "text")
        return _status(res)
    print({"dot": to_dot, "mermaid": to_mermaid, "json": to_json}[a.format](res.study))
    return 0


def cmd_ops(a) -> int:
    from radlang.backends.opsdoc import ops_json, ops_markdown, ops_text

    if a.format == "json":
        print(json.dumps(ops_json(a.name), indent=2, sort_keys=True))
    elif a.format == "markdown":
        print(ops_markdown(a.name))
    else:
        text = ops_text(a.name)
        if text is None:
            print(f"radlang: error[E701]: no operator `{a.name}`", file=sys.stderr)
            return 2
        print(text)
    return 0


def cmd_run(a) -> int:
    from radlang.backends.executors import check_spec

    bad = check_spec(a.executor)
    if bad is not None:
        _emit([bad], {}, a.format)
        return 2
    res = _compile(a.file, a.format)
    if not res.ok:
        _emit(res.diagnostics, res.sources, a.format)
        return _status(res)
    _emit(res.diagnostics, res.sources, a.format)
    from radlang.backends.executor import RunError, run_study
    from radlang.backends.executors import ExecutorError
    from radlang.backends.outdir import OutDirError
    from radlang.backends.outlock import OutDirInUse

    try:
        ctx = run_study(res.study, out=a.out, workers=a.workers, quiet=a.quiet, force=a.force, wait=a.wait,
                        executor=a.executor)
    except ExecutorError as e:
        _emit([e.diagnostic], res.sources, a.format)
        return 2
    except OutDirError as e:
        print(f"radlang: error[{e.code}]: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return 2
    except OutDirInUse as e:
        _emit([Diagnostic("E710", str(e), None, hint="wait for that run to finish (or pass --wait), or give this run "
                          "another --out folder")], res.sources, a.format)
        return 2
    except RunError as e:
        _emit(e.diagnostics, res.sources, a.format)
        return 1
    except KeyboardInterrupt:
        print("radlang: interrupted; finished stages are cached and a re-run resumes from them", file=sys.stderr)
        return 130
    if not a.quiet:
        print(f"done in {ctx.timings.get('total', 0):.1f}s; outputs in {ctx.out}", file=sys.stderr)
        for line in ctx.summary:
            print(line, file=sys.stderr)
    return 0


def cmd_render(a) -> int:
    res = _compile(a.file, a.format)
    if not res.ok:
        _emit(res.diagnostics, res.sources, a.format)
        return _status(res)
    from radlang.backends.executor import RunError
    from radlang.backends.render.literals import RenderError
    from radlang.backends.render.script import render_to_dir, render_to_file

    try:
        if a.target == "flower":
            from radlang.backends.render.flower import render_flower

            render_flower(res.study, a.output, site_data=a.site_data)
        elif str(a.output).endswith(".py"):   # one self-contained script
            render_to_file(res.study, a.output, lock=a.lock)
        else:                                 # the review folder: study.py, its runtime, manifest.json
            render_to_dir(res.study, a.output, lock=a.lock)
    except RunError as e:
        _emit(e.diagnostics, res.sources, a.format)
        return 1
    except RenderError as e:
        print(f"radlang: error[{e.code}]: {e}", file=sys.stderr)
        return 1 if e.code.startswith("E6") else 2
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


def cmd_predict(a) -> int:
    res = _compile(a.file, "text")
    if not res.ok:
        _emit(res.diagnostics, res.sources, "text")
        return _status(res)
    from radlang.backends.executor import RunError
    from radlang.backends.outdir import OutDirError
    from radlang.backends.outlock import OutDirInUse
    from radlang.predict import PredictError, predict

    try:
        path = predict(res.study, a.stage, a.input, a.output, out=a.out, workers=a.workers)
    except OutDirError as e:
        print(f"radlang: error[{e.code}]: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return 2
    except OutDirInUse as e:
        _emit([Diagnostic("E710", str(e), None, hint="wait for that run to finish, or predict with another --out folder")], res.sources, "text")
        return 2
    except PredictError as e:
        _emit(e.diagnostics, res.sources, "text")
        return 2
    except RunError as e:
        _emit(e.diagnostics, res.sources, "text")
        return 1
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_report(a) -> int:
    from radlang.review.report import ReportError, write_report

    try:
        path = write_report(a.out, a.output)
    except ReportError as e:
        _emit([e.diagnostic], {}, "text")
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_selftest(a) -> int:
    from radlang.selftest import report_text, run_selftest

    try:
        result = run_selftest()
    except ImportError as e:
        print(f"radlang: selftest needs the science stack (PyRadiomics, SimpleITK): pip install 'radlang[science]' ({e})",
              file=sys.stderr)
        return 2
    if a.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(report_text(result))
    return 0 if result["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="radlang", description="Compile and run radiomics study specs (.rad).")
    from radlang import __version__

    p.add_argument("--version", action="version", version=f"radlang {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    def with_file(name, help, fn, formats=("text", "json")):
        sp = sub.add_parser(name, help=help)
        sp.add_argument("file")
        sp.add_argument("--format", choices=formats, default=formats[0])
        sp.set_defaults(fn=fn)
        return sp

    sp = with_file("check", "check a spec and report every problem", cmd_check)
    sp.add_argument("--no-data", action="store_true",
                    help="do not read the data the spec names (manifest columns and rows, image paths, PyRadiomics params files)")
    with_file("parse", "print the canonical IR of a spec", cmd_parse)
    sp = with_file("plan", "show the ordered stages, fit boundaries and estimates", cmd_plan)
    sp.add_argument("--memory", default=None, help="memory budget for network estimates, e.g. 8GB")
    sp = sub.add_parser("graph", help="print the stage graph")
    sp.add_argument("file")
    sp.add_argument("--format", choices=("dot", "mermaid", "json"), default="dot")
    sp.set_defaults(fn=cmd_graph)
    sp = sub.add_parser("ops", help="list operators, their settings and docs")
    sp.add_argument("name", nargs="?")
    sp.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    sp.set_defaults(fn=cmd_ops)
    sp = with_file("run", "run a study", cmd_run)
    sp.add_argument("--out", default=None, help="output folder, relative to the current folder (overrides the spec's `out`, "
                    "which is relative to the spec's folder)")
    sp.add_argument("--force", action="store_true", help="write into an out folder that holds other files (the spec's or the "
                    "current folder, a folder above them, or a non-empty folder radlang did not make)")
    sp.add_argument("--workers", type=int, default=None,
                    help="worker processes (default: the number of cores; 2 with --executor dask)")
    sp.add_argument("--executor", default="local", metavar="local|dask|tcp://HOST:PORT",
                    help="where per-case and per-fold tasks run: a local process pool (default), a Dask LocalCluster "
                         "on 127.0.0.1, or the Dask scheduler at that address (its workers need radlang installed)")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--wait", action="store_true", help="if another run holds the output folder, wait for it "
                    "(default: stop at once with E710)")
    sp = with_file("predict", "apply a validation stage's saved final model to new cases", cmd_predict)
    sp.add_argument("stage", help="the validation stage whose final model to apply")
    sp.add_argument("input", help="a manifest or table of new cases, with the training cohort's columns")
    sp.add_argument("-o", "--output", required=True, help="the predictions CSV to write")
    sp.add_argument("--out", default=None, help="the study's output folder (default: the spec's `out`), where `radlang run` saved the model")
    sp.add_argument("--workers", type=int, default=None, help="worker processes for feature extraction")
    sp = with_file("render", "render the study as auditable Python: a review folder, or one standalone script", cmd_render)
    sp.add_argument("-o", "--output", required=True, help="a folder (study.py, radlang_runtime.py, manifest.json: the review "
                    "form), or a file name ending in .py (one self-contained script)")
    sp.add_argument("--lock", action="store_true", help="also write requirements.lock next to the script")
    sp.add_argument("--target", choices=("script", "flower"), default="script",
                    help="`script`: one standalone Python script (default); `flower`: the federated stage as a Flower app in the folder -o")
    sp.add_argument("--site-data", action="store_true",
                    help="with --target flower: also write each site's cases under <folder>/sites/<site>/ (a deployment on one machine)")
    sp = sub.add_parser("report", help="write one self-contained HTML report (with TRIPOD+AI, CLAIM and METRICS checklists) of a finished run")
    sp.add_argument("out", help="the out folder of a finished `radlang run`")
    sp.add_argument("-o", "--output", default=None, help="the HTML file to write (default: OUT/report.html)")
    sp.set_defaults(fn=cmd_report)
    sp = sub.add_parser("selftest", help="check that this installation reproduces the IBSI reference values (digital phantom)")
    sp.add_argument("--format", choices=("text", "json"), default="text")
    sp.set_defaults(fn=cmd_selftest)
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug in radlang, not in the spec: one line, no traceback (RADLANG_DEBUG=1 shows it)
        import os

        if os.environ.get("RADLANG_DEBUG"):
            raise
        print(f"radlang: internal error ({type(e).__name__}: {e}); this is a bug in radlang, not in your spec. "
              "Rerun with RADLANG_DEBUG=1 to see the traceback.", file=sys.stderr)
        return 3


_ONE_SHOT = {"check", "parse", "graph", "ops"}


def entry():
    """The console script and `python -m radlang`.

    `check`, `parse`, `graph` and `ops` build one compiler result, print it and end: they run without the
    cyclic garbage collector (nothing they make is cyclic garbage) and end with os._exit once output is
    flushed, skipping the teardown that frees every IR node one by one (as mypy does). On a 2,000-statement
    spec the two are a fifth of the wall time. Every other command exits normally, with the collector's
    generations frozen first."""
    import gc

    argv = sys.argv[1:]
    if not argv or argv[0] not in _ONE_SHOT:
        status = main(argv)
        # A run leaves pandas, scikit-learn and their objects behind: frozen, they are not traversed again by the
        # collection at interpreter exit (a second or so after a warm re-run); exit handlers still run.
        gc.freeze()
        raise SystemExit(status)
    import os

    gc.disable()
    status = main(argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(status)
