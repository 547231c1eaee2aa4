"""One run per output folder: a second run stops at once with E710 naming the holder (or waits with --wait), a lock
left by a killed run is taken over with W673, and two different specs racing into one folder never print each
other's numbers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from _cache_util import write_spec

from radlang.backends.outlock import HOLDER, LOCK

HOLD = """
import sys, time
from radlang.backends.outlock import OutDirLock
with OutDirLock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _holder(out, spec, seconds):
    """A process that takes the folder's lock as a run does and keeps it for `seconds`; returns once it holds it."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out), spec, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _radlang(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "radlang", *map(str, args)], check=False, capture_output=True, text=True, cwd=cwd, timeout=300)


SPEC = """
    study "s" {{ seed: 3 }}
    cohort train = phantom(12) {{ effect: {effect}, size: [16, 16, 16] }}
    features f = tabular(train)
    model clf = logistic(f, target: train.outcome)
    validate v = evaluate(clf) {{ cv: stratified_kfold(2), bootstrap: 10 }}
"""


def test_a_second_run_stops_with_e710_naming_the_holder_or_waits(tmp_path):
    spec = write_spec(tmp_path, SPEC.format(effect=1.0))
    out = tmp_path / "out"
    holder = _holder(out, "other.rad", 60)
    try:
        t0 = time.monotonic()
        r = _radlang("run", spec, "--out", out, "--quiet")
        assert r.returncode == 2, r.stderr
        assert "error[E710]" in r.stderr and str(out) in r.stderr and f"pid {holder.pid} " in r.stderr and "other.rad" in r.stderr
        assert "Traceback" not in r.stderr and time.monotonic() - t0 < 60
        assert not (out / ".cache").exists()                     # it wrote nothing
    finally:
        holder.kill()
        holder.wait()
    holder = _holder(out, "other.rad", 2)
    r = _radlang("run", spec, "--out", out, "--quiet", "--wait")
    assert holder.wait() == 0
    assert r.returncode == 0, r.stderr
    assert f"waiting for the run that holds `{out}` (pid {holder.pid} " in r.stderr
    assert not (out / HOLDER).exists() and (out / "metrics" / "v.json").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_notice(tmp_path):
    from _cache_util import run_spec

    spec = write_spec(tmp_path, SPEC.format(effect=1.0))
    out = tmp_path / "out"
    holder = _holder(out, "killed.rad", 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / HOLDER).exists() and (out / LOCK).exists()
    ctx = run_spec(spec, out)
    notes = [w for w in ctx.warnings if w.startswith("W673")]
    assert len(notes) == 1 and f"pid {holder.pid} " in notes[0] and "killed.rad" in notes[0]
    assert not (out / HOLDER).exists()                           # released at the end of the run
    again = run_spec(spec, out)
    assert not [w for w in again.warnings if w.startswith("W673")]


def _auc(stderr):
    m = re.search(r"^v: cross-validated AUC (\S+ \[\S+, \S+\])", stderr, re.MULTILINE)
    return m.group(1) if m else None


def test_two_specs_racing_into_one_folder_never_print_each_others_numbers(tmp_path):
    specs = {e: write_spec(tmp_path, SPEC.format(effect=e), f"effect{e}.rad") for e in ("0.3", "3.0")}
    from _cache_util import run_spec

    own = {e: _auc("\n".join(run_spec(spec, tmp_path / f"alone{e}").summary)) for e, spec in specs.items()}   # the lines `run` prints
    assert own["0.3"] != own["3.0"] and None not in own.values()
    refused = 0
    for trial in range(3):
        out = tmp_path / f"shared{trial}"
        procs = {e: subprocess.Popen([sys.executable, "-m", "radlang", "run", str(spec), "--out", str(out), "--workers", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for e, spec in specs.items()}
        for e, p in procs.items():
            _, err = p.communicate(timeout=300)
            if p.returncode == 2:
                assert "error[E710]" in err and str(out) in err, err
                refused += 1
            else:
                assert p.returncode == 0, err
                assert _auc(err) == own[e], (e, err)
    assert refused >= 1                  # the runs did overlap: the lock, not luck, kept them apart
