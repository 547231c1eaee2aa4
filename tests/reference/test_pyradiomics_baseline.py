"""PyRadiomics' published baseline, run through `radlang run`.

Every baseline column whose images are in ../shared/data (brain1, brain2, breast1; the lung cases and the
*_2d columns are not shipped) is written as radlang settings (`_baseline.rad_settings`), compiled and run
through the case mode in the process pool. First-order and texture features must agree within 1e-6
relative, shape within 3% (the tolerance PyRadiomics' own tests use; the shape baseline was made with an
older release and differs by up to ~1e-3)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, shared):
    import _baseline

    from radlang.backends.executor import run_study
    from radlang.compiler import compile_file

    data = shared()
    shared("pyradiomics", "baseline")
    folder = tmp_path_factory.mktemp("baseline")
    spec, members = _baseline.build_spec(data, folder)
    res = compile_file(spec)
    assert res.ok, [d.message for d in res.diagnostics]
    ctx = run_study(res.study, out=folder / "out", workers=2, quiet=True)
    return ctx, members, _baseline.load_baseline(data), folder


def test_every_shipped_baseline_column_is_covered(baseline_run):
    _, members, base, _ = baseline_run
    covered = {col for mem in members.values() for col, _ in mem}
    expected = {c for df in base.values() for c in df.columns
                if df.loc["diagnostics_Configuration_TestCase", c] in ("brain1", "brain2", "breast1") and not c.endswith("_2d")}
    assert covered == expected
    # 3 cases x (default, FBN, combined, flatRegion, normalization, resampling, resegmentation)
    assert len(covered) == 21


def test_features_match_baseline(baseline_run):
    ctx, members, base, folder = baseline_run
    worst = {"shape": 0.0, "other": 0.0}
    n = 0
    failures = []
    for stage, mem in members.items():
        got = pd.read_csv(folder / "out" / "features" / f"{stage}.csv", index_col=0, float_precision="round_trip")
        pd.testing.assert_frame_equal(got, ctx.results[stage], check_exact=True, check_dtype=False)  # the CSV round-trips exactly
        for col, cls in mem:
            case = base[cls].loc["diagnostics_Configuration_TestCase", col]
            for feat, ref in base[cls][col].items():
                if feat.startswith("diagnostics_") or pd.isna(ref):
                    continue
                value, ref = float(got.loc[case, feat]), float(ref)
                rel = abs(value - ref) / abs(ref) if ref != 0 else abs(value)
                # The issue's bounds are 3% (shape, PyRadiomics' own test tolerance) and 1e-6 (the rest); we hold
                # tighter ones, a few times the measured worst cases (shape 9.1e-4 from an older baseline release,
                # the rest 1.1e-12), so a real regression can't hide in the slack.
                tol = 3e-3 if cls == "shape" else 1e-9
                group = "shape" if cls == "shape" else "other"
                worst[group] = max(worst[group], rel)
                n += 1
                if rel > tol:
                    failures.append(f"{col} {feat}: radlang {value!r} vs baseline {ref!r} (rel {rel:.2e})")
    assert not failures, "\n".join(failures[:20])
    assert n == 1770          # every baseline value of the 21 shipped columns
    print(f"\n{n} baseline values; worst relative difference: first-order/texture {worst['other']:.1e}, shape {worst['shape']:.1e}")
