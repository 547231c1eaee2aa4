"""The executor's per-case map, for operators that run per case (`behaviour="per_case"`, radlang/registry.py).

A per-case operator's `run` builds one case job (plain data) per case and hands it here with the case's content
key. Cached cases are reused; the others first pass a cheap `check` (every problem of every case at once,
before hours of work), then the operator's per-case function `work`, in the process pool (ctx.executor.map),
heaviest first. Each case's result is cached the moment it finishes (atomically), so a killed run resumes.
With `on_error: "skip"` the bad cases are left out and listed; otherwise the stage stops with every problem.

`check(case_job) -> [problem]` and `work(case_job) -> {"problems": [problem], **result}` are module-level functions
(picklable); a problem is a dict {case, file, column, message, code} (radlang/backends/glue.py)."""

from __future__ import annotations

from radlang.backends.executor import RunError


def case_diagnostics(problems, stage):
    """Every problem as a diagnostic, ordered by case, code and message."""
    from radlang.backends.glue import problem_diagnostics

    return problem_diagnostics(sorted(problems, key=lambda p: (str(p.get("case")), p.get("code", ""), p["message"])), stage)


def map_cases(ctx, stage, case_jobs, keys, check, work, weight, label):
    """Run `work` on every case job whose key is not cached (`weight(case_job)`: the larger, the earlier).
    -> (results {case: result}, problems of the cases left out)."""
    results: dict[str, dict] = {}
    todo = []
    for t, k in zip(case_jobs, keys):
        hit = ctx.cache.get(k) if k else None
        if hit is not None:
            results[t["case"]] = hit
        else:
            todo.append((t, k))
    problems: list[dict] = []
    if todo:
        # 1) cheap checks for every case first: all problems at once
        checks = dict(ctx.executor.map_quick(check, [t for t, _ in todo]))
        bad_cases = set()
        for i, probs in checks.items():
            problems.extend(probs)
            if probs:
                bad_cases.add(todo[i][0]["case"])
        if problems and ctx.on_error != "skip":
            raise RunError(case_diagnostics(problems, stage))
        run = [(t, k) for t, k in todo if t["case"] not in bad_cases]
        # 2) the work, heaviest cases first; each case cached the moment it finishes
        if run:
            with ctx.progress(len(run), stage.name) as prog:
                bar = prog.add_task(label, total=len(run))
                for i, res in ctx.executor.map(work, [t for t, _ in run], weights=[weight(t) for t, _ in run]):
                    t, k = run[i]
                    if res["problems"]:
                        problems.extend(res["problems"])
                    else:
                        entry = {n: v for n, v in res.items() if n not in ("case", "problems")}
                        if k:
                            ctx.cache.put(k, entry)
                        results[t["case"]] = entry
                    prog.advance(bar)
        if problems and ctx.on_error != "skip":
            raise RunError(case_diagnostics(problems, stage))
    return results, problems


def excluded_cases(problems) -> list[dict]:
    """The cases left out (on_error: skip), one entry per case: {case, reason, file}."""
    excluded = []
    for p in sorted(problems, key=lambda p: str(p["case"])):
        msg = f"{p.get('column') or ''}: {p['message']}".strip(": ")
        if excluded and excluded[-1]["case"] == p["case"]:
            excluded[-1]["reason"] += "; " + msg
        else:
            excluded.append({"case": p["case"], "reason": msg, "file": p.get("file")})
    return excluded
