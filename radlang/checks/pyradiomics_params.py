"""A PyRadiomics parameter file checked against PyRadiomics' own schema, without importing PyRadiomics.

PyRadiomics validates a parameter file with pykwalify against `radiomics/schemas/paramSchema.yaml` and five
custom functions (`schemaFuncs.py`, which import PyRadiomics and PyWavelets). `radlang check` must not import
them, so this module reads the schema file of the installed package (located with `importlib.util.find_spec`,
which does not import the package) and applies the part of pykwalify that schema uses: maps (unknown keys are
errors), sequences, the scalar types `int`, `float`, `bool`, `str`, `any`, ranges, enums and `regex;` keys.
The custom functions are restated: feature classes and names (radlang's table of PyRadiomics' names), image
types, interpolators and weighting norms. Only the wavelet name is left to the run, where PyWavelets knows it.
tests/extraction/test_check_data.py holds the verdicts equal to PyRadiomics' own on valid and invalid files.
"""

from __future__ import annotations

from pathlib import Path

from radlang.diagnostics import did_you_mean

IMAGE_TYPES = ("Exponential", "Gradient", "LBP2D", "LBP3D", "LoG", "Logarithm", "Original", "Square", "SquareRoot", "Wavelet")
INTERPOLATORS = ("sitkNearestNeighbor", "sitkLinear", "sitkBSpline", "sitkGaussian", "sitkLabelGaussian", "sitkHammingWindowedSinc",
                 "sitkCosineWindowedSinc", "sitkWelchWindowedSinc", "sitkLanczosWindowedSinc", "sitkBlackmanWindowedSinc")
WEIGHTING_NORMS = ("euclidean", "manhattan", "infinity", "no_weighting")


def schema_file() -> Path | None:
    """paramSchema.yaml of the installed PyRadiomics, or None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("radiomics")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        f = Path(root) / "schemas" / "paramSchema.yaml"
        if f.is_file():
            return f
    return None


_SCHEMA: list = []


def schema() -> dict | None:
    if not _SCHEMA:
        import yaml

        f = schema_file()
        _SCHEMA.append(yaml.safe_load(f.read_text(encoding="utf-8")) if f is not None else None)
    return _SCHEMA[0]


def _type_ok(value, t: str) -> bool:
    """pykwalify's scalar types (pykwalify/types.py): a float is anything float() accepts except a bool."""
    if t == "any":
        return True
    if t == "bool":
        return isinstance(value, bool)
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "str":
        return isinstance(value, (str, bytes))
    if t == "float":
        if isinstance(value, bool):
            return False
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return True
    return True


def _range_problem(value, r: dict) -> str | None:
    try:
        v = len(value)
    except TypeError:
        v = value
    v = float(v)
    for key, ok, words in (("min", v >= r.get("min", v), "≥"), ("max", v <= r.get("max", v), "≤"),
                           ("min-ex", "min-ex" not in r or v > r["min-ex"], ">"), ("max-ex", "max-ex" not in r or v < r["max-ex"], "<")):
        if key in r and not ok:
            return f"must be {words} {r[key]:g}"
    return None


def _custom(func: str, value, path: str) -> list[str]:
    from radlang.ops.features import FEATURES

    out = []
    if func == "checkFeatureClass":
        if value is None:
            return [f"`{path}` cannot be empty"]
        for cls, feats in value.items():
            if cls not in FEATURES:
                out.append(f"`{path}.{cls}` is not a PyRadiomics feature class; "
                           + (did_you_mean(cls, FEATURES) or f"classes: {', '.join(FEATURES)}"))
            elif feats is not None:
                if not isinstance(feats, list):
                    out.append(f"`{path}.{cls}` must be a list of feature names")
                    continue
                for f in feats:
                    if f not in FEATURES[cls]:
                        out.append(f"`{path}.{cls}` has no feature `{f}`; " + (did_you_mean(str(f), FEATURES[cls]) or
                                                                             f"its features: {', '.join(sorted(FEATURES[cls]))}"))
    elif func == "checkImageType":
        if value is None:
            return [f"`{path}` cannot be empty"]
        for t in value:
            if t not in IMAGE_TYPES:
                out.append(f"`{path}.{t}` is not a PyRadiomics image type; " + (did_you_mean(str(t), IMAGE_TYPES) or
                                                                             f"image types: {', '.join(IMAGE_TYPES)}"))
    elif func == "checkInterpolator":
        if isinstance(value, str) and value not in INTERPOLATORS:
            out.append(f"`{path}` is `{value}`, not an interpolator; " + (did_you_mean(value, INTERPOLATORS) or ", ".join(INTERPOLATORS)))
        elif isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 10:
            out.append(f"`{path}` must be between 1 and 10 (it is {value})")
        elif value is not None and not isinstance(value, (str, int)):
            out.append(f"`{path}` must be an interpolator name or number")
    elif func == "checkWeighting":
        if value is not None and value not in WEIGHTING_NORMS:
            out.append(f"`{path}` is `{value}`; use one of {', '.join(WEIGHTING_NORMS)}")
    elif func == "checkWavelet" and not isinstance(value, str):
        out.append(f"`{path}` must be a wavelet name (a string)")
    return out


def _validate(value, rule: dict, path: str, out: list[str]):
    if rule.get("func"):
        out.extend(_custom(rule["func"], value, path))
        if value is None:
            return
    where = path or "the file"
    if "mapping" in rule or rule.get("type") == "map":
        if not isinstance(value, dict):      # pykwalify: an empty value is not a mapping either
            out.append(f"`{where}` must be a mapping (`key: value` lines)" + (", not empty" if value is None else ""))
            return
        mapping = rule.get("mapping") or {}
        wild = next((r for k, r in mapping.items() if k.startswith("regex;")), None)
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if k in mapping:
                _validate(v, mapping[k], sub, out)
            elif wild is not None:
                _validate(v, wild, sub, out)
            else:
                known = [m for m in mapping if not m.startswith("regex;")]
                out.append(f"`{sub}` is not a PyRadiomics {'section' if not path else 'setting'}; "
                           + (did_you_mean(str(k), known) or f"known: {', '.join(known)}"))
        return
    if value is None:
        return
    if "seq" in rule:
        if not isinstance(value, list):
            out.append(f"`{where}` must be a list")
            return
        for i, item in enumerate(value):
            _validate(item, rule["seq"][0], f"{path}[{i}]", out)
        return
    t = rule.get("type", "str")
    if not _type_ok(value, t):
        out.append(f"`{where}` must be {'a' if t != 'int' else 'an'} {t} (it is {value!r})")
        return
    if "enum" in rule and value not in rule["enum"]:
        out.append(f"`{where}` is `{value}`; use one of {', '.join(map(str, rule['enum']))}")
    if "range" in rule:
        bad = _range_problem(value, rule["range"])
        if bad:
            out.append(f"`{where}` {bad} (it is {value})")


def params_problems(data) -> list[str]:
    """Every way a parsed parameter file (YAML/JSON) breaks PyRadiomics' schema, as messages; [] when it is valid
    or when PyRadiomics (and so its schema) is not installed."""
    s = schema()
    if s is None:
        return []
    out: list[str] = []
    _validate(data, s, "", out)
    return out
