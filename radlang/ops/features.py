"""`pyradiomics`: radiomics features of a region of interest, by PyRadiomics, with every setting that
changes values mapped one to one (radlang name -> PyRadiomics name):

    bin_width -> binWidth            bin_count -> binCount          resample -> resampledPixelSpacing
    interpolator -> interpolator     pad_distance -> padDistance    normalize / normalize_scale -> normalize / normalizeScale
    remove_outliers -> removeOutliers  resegment / resegment_mode / resegment_shape -> resegmentRange / resegmentMode / resegmentShape
    force2d / force2d_dimension -> force2D / force2Ddimension       label -> label       distances -> distances
    voxel_array_shift -> voxelArrayShift   symmetrical_glcm -> symmetricalGLCM   weighting_norm -> weightingNorm   gldm_a -> gldm_a
    min_roi_dimensions / min_roi_size -> minimumROIDimensions / minimumROISize   pre_crop -> preCrop
    correct_mask / geometry_tolerance -> correctMask / geometryTolerance
    filters -> imageType: original, log(sigma), wavelet(wavelet, level, start_level), square, square_root, logarithm,
               exponential, gradient(use_spacing), lbp2d(radius, samples, method), lbp3d(levels, radius, subdivision)
    classes -> featureClass: firstorder, shape, shape2D, glcm, glrlm, glszm, gldm, ngtdm; `glcm(Contrast, Idm)` keeps named features
    params: "file.yaml" -> an existing PyRadiomics parameter file (from_params); settings written in the spec override it.

A setting left unset keeps PyRadiomics' default (or the params file's value). Results: a features table
indexed by case_id with PyRadiomics' own column names, written to <out>/features/<stage>.csv; PyRadiomics'
diagnostics_* go to <out>/features/<stage>.diagnostics.csv.

`pyradiomics_config`, `extract_features` and `features_csv` are self-contained (see radlang/registry.py).
The operator runs per case: `extract_case` (load, segment, check, perturb, extract one case) is mapped over the
cohort by radlang/backends/cases.py; `run_pyradiomics` builds the case jobs and writes the tables.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from radlang.diagnostics import did_you_mean
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.units import Intensity, Length
from radlang.values import CallValue, Settings, Variant, out_of_range, variants

# PyRadiomics 3.0.1 feature names per class (radiomics.getFeatureClasses()); `True` = deprecated /
# disabled by default (enable it by naming it). Kept here so `radlang check` never imports PyRadiomics.
FEATURES: dict[str, dict[str, bool]] = {
    "firstorder": dict.fromkeys(
        ["10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis", "Maximum", "Mean",
         "MeanAbsoluteDeviation", "Median", "Minimum", "Range", "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness",
         "TotalEnergy", "Uniformity", "Variance"], False) | {"StandardDeviation": True},
    "shape": dict.fromkeys(
        ["Elongation", "Flatness", "LeastAxisLength", "MajorAxisLength", "Maximum2DDiameterColumn", "Maximum2DDiameterRow",
         "Maximum2DDiameterSlice", "Maximum3DDiameter", "MeshVolume", "MinorAxisLength", "Sphericity", "SurfaceArea",
         "SurfaceVolumeRatio", "VoxelVolume"], False) | dict.fromkeys(["Compactness1", "Compactness2", "SphericalDisproportion"], True),
    "shape2D": dict.fromkeys(
        ["Elongation", "MajorAxisLength", "MaximumDiameter", "MeshSurface", "MinorAxisLength", "Perimeter", "PerimeterSurfaceRatio",
         "PixelSurface", "Sphericity"], False) | {"SphericalDisproportion": True},
    "glcm": dict.fromkeys(
        ["Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast", "Correlation", "DifferenceAverage",
         "DifferenceEntropy", "DifferenceVariance", "Id", "Idm", "Idmn", "Idn", "Imc1", "Imc2", "InverseVariance", "JointAverage",
         "JointEnergy", "JointEntropy", "MCC", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares"], False)
    | dict.fromkeys(["Dissimilarity", "Homogeneity1", "Homogeneity2", "SumVariance"], True),
    "glrlm": dict.fromkeys(
        ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance", "HighGrayLevelRunEmphasis",
         "LongRunEmphasis", "LongRunHighGrayLevelEmphasis", "LongRunLowGrayLevelEmphasis", "LowGrayLevelRunEmphasis", "RunEntropy",
         "RunLengthNonUniformity", "RunLengthNonUniformityNormalized", "RunPercentage", "RunVariance", "ShortRunEmphasis",
         "ShortRunHighGrayLevelEmphasis", "ShortRunLowGrayLevelEmphasis"], False),
    "glszm": dict.fromkeys(
        ["GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance", "HighGrayLevelZoneEmphasis",
         "LargeAreaEmphasis", "LargeAreaHighGrayLevelEmphasis", "LargeAreaLowGrayLevelEmphasis", "LowGrayLevelZoneEmphasis",
         "SizeZoneNonUniformity", "SizeZoneNonUniformityNormalized", "SmallAreaEmphasis", "SmallAreaHighGrayLevelEmphasis",
         "SmallAreaLowGrayLevelEmphasis", "ZoneEntropy", "ZonePercentage", "ZoneVariance"], False),
    "gldm": dict.fromkeys(
        ["DependenceEntropy", "DependenceNonUniformity", "DependenceNonUniformityNormalized", "DependenceVariance",
         "GrayLevelNonUniformity", "GrayLevelVariance", "HighGrayLevelEmphasis", "LargeDependenceEmphasis",
         "LargeDependenceHighGrayLevelEmphasis", "LargeDependenceLowGrayLevelEmphasis", "LowGrayLevelEmphasis",
         "SmallDependenceEmphasis", "SmallDependenceHighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis"], False)
    | dict.fromkeys(["DependencePercentage", "GrayLevelNonUniformityNormalized"], True),
    "ngtdm": dict.fromkeys(["Busyness", "Coarseness", "Complexity", "Contrast", "Strength"], False),
}
DEFAULT_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

INTERPOLATORS = {
    "nearest": "sitkNearestNeighbor", "linear": "sitkLinear", "bspline": "sitkBSpline", "gaussian": "sitkGaussian",
    "label_gaussian": "sitkLabelGaussian", "hamming_sinc": "sitkHammingWindowedSinc", "cosine_sinc": "sitkCosineWindowedSinc",
    "welch_sinc": "sitkWelchWindowedSinc", "lanczos_sinc": "sitkLanczosWindowedSinc", "blackman_sinc": "sitkBlackmanWindowedSinc",
}


# ---- filters (PyRadiomics image types) ----------------------------------------------------------

class Original(Variant):
    call_name = "original"


class LoG(Variant):
    call_name = "log"
    positional = ("sigma",)
    sigma: list[Length] = Field(min_length=1, description="Laplacian-of-Gaussian sigmas (mm)")

    @field_validator("sigma", mode="before")
    @classmethod
    def _one(cls, v):
        return v if isinstance(v, list) else [v]

    @field_validator("sigma")
    @classmethod
    def _pos(cls, v):
        if any(s <= 0 for s in v):
            raise out_of_range("LoG sigma must be > 0 mm")
        return v


class Wavelet(Variant):
    call_name = "wavelet"
    positional = ("wavelet",)
    wavelet: str = Field("coif1", description="PyWavelets wavelet name (coif1, haar, db2, ...)")
    level: int = Field(1, ge=1, le=5, description="number of decomposition levels")
    start_level: int = Field(0, ge=0, le=4, description="first level kept")

    @field_validator("wavelet", mode="before")
    @classmethod
    def _w(cls, v):
        return str(v)


class Square(Variant):
    call_name = "square"


class SquareRoot(Variant):
    call_name = "square_root"


class Logarithm(Variant):
    call_name = "logarithm"


class Exponential(Variant):
    call_name = "exponential"


class Gradient(Variant):
    call_name = "gradient"
    use_spacing: bool = Field(True, description="gradient in mm (true) or per voxel (false)")


class LBP2D(Variant):
    call_name = "lbp2d"
    radius: float = Field(1.0, gt=0)
    samples: int = Field(9, ge=1)
    method: Literal["default", "ror", "uniform", "var"] = "uniform"


class LBP3D(Variant):
    call_name = "lbp3d"
    levels: int = Field(2, ge=1)
    radius: float = Field(1.0, gt=0)
    subdivision: int = Field(1, ge=0)


FILTERS = (Original, LoG, Wavelet, Square, SquareRoot, Logarithm, Exponential, Gradient, LBP2D, LBP3D)
Filter = Annotated[Union[FILTERS], variants(*FILTERS)]  # noqa: UP007 -- a Union over a tuple of classes


# ---- feature classes, optionally with named features --------------------------------------------

class FeatureClass(Settings):
    name: str
    features: list[str] = Field(default_factory=list)


def _feature_class(v):
    if isinstance(v, FeatureClass):
        return v
    if isinstance(v, dict):
        return FeatureClass(**v)
    if isinstance(v, CallValue):
        if v.kwargs:
            raise ValueError(f"`{v.name}(...)` takes feature names, like `glcm(Contrast, Idm)`")
        name, feats = v.name, [str(a) for a in v.args]
    elif isinstance(v, str):
        name, feats = str(v), []
    else:
        raise ValueError("a feature class is a name, like `glcm`, or `glcm(Contrast, Idm)` for some of its features")
    if name not in FEATURES:
        hint = did_you_mean(name, FEATURES) or f"classes: {', '.join(FEATURES)}"
        raise ValueError(f"unknown feature class `{name}`; {hint}")
    for f in feats:
        if f not in FEATURES[name]:
            hint = did_you_mean(f, FEATURES[name]) or f"its features: {', '.join(sorted(FEATURES[name]))}"
            raise ValueError(f"`{name}` has no feature `{f}`; {hint}")
    return FeatureClass(name=name, features=feats)


ClassSel = Annotated[FeatureClass, BeforeValidator(_feature_class)]


def _from_params(v):
    if isinstance(v, CallValue):
        if v.name != "from_params" or len(v.args) != 1 or v.kwargs:
            raise ValueError('write `params: from_params("file.yaml")` or `params: "file.yaml"`')
        return str(v.args[0])
    return v


class PyradiomicsSettings(Settings):
    params: Annotated[str | None, BeforeValidator(_from_params)] = Field(
        None, description='a PyRadiomics parameter file (YAML/JSON), relative to the spec: `from_params("file.yaml")`; settings in the spec override it')
    bin_width: Intensity | None = Field(None, gt=0, description="binWidth: fixed bin width (PyRadiomics default 25)")
    bin_count: int | None = Field(None, ge=1, description="binCount: a fixed number of bins instead of a bin width")
    resample: list[Length] | None = Field(None, min_length=2, max_length=3, description="resampledPixelSpacing (mm); 0 keeps an axis' spacing")
    interpolator: Literal[tuple(INTERPOLATORS)] | None = Field(None, description="interpolator for resampling (PyRadiomics default bspline)")
    pad_distance: int | None = Field(None, ge=0, description="padDistance: voxels kept around the ROI when resampling")
    normalize: bool | None = Field(None, description="normalize: z-score the whole image before extraction")
    normalize_scale: float | None = Field(None, gt=0, description="normalizeScale: multiply the normalised image")
    remove_outliers: float | None = Field(None, gt=0, description="removeOutliers: clip to mean ± n·sd (with normalize)")
    resegment: list[Intensity] | None = Field(None, min_length=1, max_length=2, description="resegmentRange: [lo] or [lo, hi]")
    resegment_mode: Literal["absolute", "relative", "sigma"] | None = Field(None, description="resegmentMode")
    resegment_shape: bool | None = Field(None, description="resegmentShape: also compute shape on the resegmented mask")
    force2d: bool | None = Field(None, description="force2D: texture matrices per slice")
    force2d_dimension: Literal[0, 1, 2] | None = Field(None, description="force2Ddimension: the out-of-plane axis (0 = z)")
    label: int | None = Field(None, ge=1, description="label: mask value of the ROI (when the mask is a cohort's mask)")
    distances: list[int] | None = Field(None, min_length=1, description="distances: neighbour distances for texture matrices")
    voxel_array_shift: Intensity | None = Field(None, description="voxelArrayShift: added before Energy / TotalEnergy / RMS")
    symmetrical_glcm: bool | None = Field(None, description="symmetricalGLCM")
    weighting_norm: Literal["manhattan", "euclidean", "infinity", "no_weighting"] | None = Field(None, description="weightingNorm for GLCM/GLRLM angles")
    gldm_a: int | None = Field(None, ge=0, description="gldm_a: the GLDM dependence cut-off (whole grey levels)")
    min_roi_dimensions: Literal[1, 2, 3] | None = Field(None, description="minimumROIDimensions")
    min_roi_size: int | None = Field(None, ge=1, description="minimumROISize (voxels)")
    pre_crop: bool | None = Field(None, description="preCrop: crop to the ROI before filtering")
    correct_mask: bool | None = Field(None, description="correctMask: resample a mask whose geometry differs slightly")
    geometry_tolerance: float | None = Field(None, gt=0, description="geometryTolerance")
    filters: list[Filter] | None = Field(None, min_length=1, description="image types: original, log(sigma), wavelet, square, ... (default: original)")
    classes: list[ClassSel] | None = Field(None, min_length=1, description="feature classes, e.g. [firstorder, shape, glcm(Contrast, Idm)] (default: all but shape2D)")

    exclusive = (("bin_width", "bin_count"),)

    @field_validator("voxel_array_shift")
    @classmethod
    def _shift(cls, v):
        if v is not None and not float(v).is_integer():
            raise ValueError("voxel_array_shift must be a whole number (PyRadiomics takes an integer)")
        return v

    @field_validator("distances")
    @classmethod
    def _dist(cls, v):
        if v is not None and any(d < 1 for d in v):
            raise out_of_range("distances must be ≥ 1")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.filters is not None:
            kinds = [f.call_name for f in self.filters]
            dup = sorted({k for k in kinds if kinds.count(k) > 1})
            if dup:
                raise ValueError(f"filter `{dup[0]}` is listed twice; give one entry (e.g. log(sigma: [1mm, 3mm]))")
        if self.classes is not None:
            names = [c.name for c in self.classes]
            dup = sorted({k for k in names if names.count(k) > 1})
            if dup:
                raise ValueError(f"class `{dup[0]}` is listed twice")
        return self


IMAGE_TYPE_NAMES = {"original": "Original", "log": "LoG", "wavelet": "Wavelet", "square": "Square", "square_root": "SquareRoot",
                    "logarithm": "Logarithm", "exponential": "Exponential", "gradient": "Gradient", "lbp2d": "LBP2D", "lbp3d": "LBP3D"}

SETTING_NAMES = {
    "bin_width": "binWidth", "bin_count": "binCount", "resample": "resampledPixelSpacing", "interpolator": "interpolator",
    "pad_distance": "padDistance", "normalize": "normalize", "normalize_scale": "normalizeScale", "remove_outliers": "removeOutliers",
    "resegment": "resegmentRange", "resegment_mode": "resegmentMode", "resegment_shape": "resegmentShape", "force2d": "force2D",
    "force2d_dimension": "force2Ddimension", "label": "label", "distances": "distances", "voxel_array_shift": "voxelArrayShift",
    "symmetrical_glcm": "symmetricalGLCM", "weighting_norm": "weightingNorm", "gldm_a": "gldm_a",
    "min_roi_dimensions": "minimumROIDimensions", "min_roi_size": "minimumROISize", "pre_crop": "preCrop",
    "correct_mask": "correctMask", "geometry_tolerance": "geometryTolerance",
}
# settings that change what is extracted, not how the image is prepared (the merge pass may differ on these)
SELECTION_SETTINGS = ("filters", "classes")


def pyradiomics_config(params, params_file_text=None):
    """radlang settings (stage.params) -> a PyRadiomics parameter dict {setting, imageType, featureClass}.
    A params file (YAML/JSON text) is the base; every setting written in the spec overrides it."""
    import yaml

    base = yaml.safe_load(params_file_text) if params_file_text else {}
    base = base or {}
    setting = dict(base.get("setting") or {})
    image_type = {k: dict(v or {}) for k, v in (base.get("imageType") or {}).items()}
    feature_class = {k: (list(v) if v else []) for k, v in (base.get("featureClass") or {}).items()}
    interp = {"nearest": "sitkNearestNeighbor", "linear": "sitkLinear", "bspline": "sitkBSpline", "gaussian": "sitkGaussian",
              "label_gaussian": "sitkLabelGaussian", "hamming_sinc": "sitkHammingWindowedSinc",
              "cosine_sinc": "sitkCosineWindowedSinc", "welch_sinc": "sitkWelchWindowedSinc",
              "lanczos_sinc": "sitkLanczosWindowedSinc", "blackman_sinc": "sitkBlackmanWindowedSinc"}
    names = {
        "bin_width": "binWidth", "bin_count": "binCount", "resample": "resampledPixelSpacing", "interpolator": "interpolator",
        "pad_distance": "padDistance", "normalize": "normalize", "normalize_scale": "normalizeScale",
        "remove_outliers": "removeOutliers", "resegment": "resegmentRange", "resegment_mode": "resegmentMode",
        "resegment_shape": "resegmentShape", "force2d": "force2D", "force2d_dimension": "force2Ddimension", "label": "label",
        "distances": "distances", "voxel_array_shift": "voxelArrayShift", "symmetrical_glcm": "symmetricalGLCM",
        "weighting_norm": "weightingNorm", "gldm_a": "gldm_a", "min_roi_dimensions": "minimumROIDimensions",
        "min_roi_size": "minimumROISize", "pre_crop": "preCrop", "correct_mask": "correctMask",
        "geometry_tolerance": "geometryTolerance",
    }
    for ours, theirs in names.items():
        v = params.get(ours)
        if v is None:
            continue
        if ours == "interpolator":
            v = interp[v]
        if ours == "bin_width":
            setting.pop("binCount", None)
        if ours == "bin_count":
            setting.pop("binWidth", None)
        if ours in ("voxel_array_shift", "gldm_a"):
            v = int(v)
        setting[theirs] = list(v) if isinstance(v, list) else v
    if params.get("filters") is not None:
        image_type = {}
        for f in params["filters"]:
            kind = f["kind"]
            if kind == "original":
                image_type["Original"] = {}
            elif kind == "log":
                image_type["LoG"] = {"sigma": [float(s) for s in f["sigma"]]}
            elif kind == "wavelet":
                image_type["Wavelet"] = {"wavelet": f["wavelet"], "level": int(f["level"]), "start_level": int(f["start_level"])}
            elif kind == "gradient":
                image_type["Gradient"] = {"gradientUseSpacing": bool(f["use_spacing"])}
            elif kind == "lbp2d":
                image_type["LBP2D"] = {"lbp2DRadius": float(f["radius"]), "lbp2DSamples": int(f["samples"]), "lbp2DMethod": f["method"]}
            elif kind == "lbp3d":
                image_type["LBP3D"] = {"lbp3DLevels": int(f["levels"]), "lbp3DIcosphereRadius": float(f["radius"]),
                                       "lbp3DIcosphereSubdivision": int(f["subdivision"])}
            else:
                image_type[{"square": "Square", "square_root": "SquareRoot", "logarithm": "Logarithm",
                            "exponential": "Exponential"}[kind]] = {}
    if not image_type:
        image_type = {"Original": {}}
    if params.get("classes") is not None:
        feature_class = {c["name"]: list(c["features"]) for c in params["classes"]}
    if not feature_class:
        feature_class = {c: [] for c in ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}
    setting["additionalInfo"] = True
    return {"setting": setting, "imageType": image_type, "featureClass": feature_class}


def params_schema_problems(params):
    """PyRadiomics' own check of a parameter dict (pykwalify against radiomics/schemas/paramSchema.yaml):
    [] when it is valid, else the problems it lists."""
    import logging

    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    try:
        featureextractor.RadiomicsFeatureExtractor(params if isinstance(params, dict) else {})
    except Exception as e:  # noqa: BLE001 -- pykwalify's SchemaError, or what PyRadiomics raises on a value it cannot use
        lines = [ln.strip()[2:].removesuffix(": Path: '/'>") for ln in str(e).splitlines() if ln.strip().startswith("- ")]
        return lines or [str(e).strip() or type(e).__name__]
    return [] if isinstance(params, dict) or params is None else ["the file must hold a mapping (`key: value` lines)"]


def extract_features(image, mask, config, _extractors={}):  # noqa: B006 -- a per-process extractor cache
    """Run PyRadiomics on one case (SimpleITK image and mask). Returns (features, diagnostics):
    {PyRadiomics feature name: float} and {diagnostics_* name: str}. The extractor (its parameter
    validation costs ~0.1 s) is built once per configuration and process."""
    import json
    import logging

    import numpy as np
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    k = json.dumps(config, sort_keys=True)
    ext = _extractors.get(k)
    if ext is None:
        ext = _extractors[k] = featureextractor.RadiomicsFeatureExtractor(config)
    label = int(config["setting"].get("label", 1))
    result = ext.execute(image, mask, label=label)
    feats, diags = {}, {}
    for k, v in result.items():
        if k.startswith("diagnostics_"):
            diags[k] = str(v)
        else:
            feats[k] = float(np.asarray(v, dtype="float64"))
    return feats, diags


def perturb_case(image, mask, perturb, case_id):
    """A perturbation for robustness analyses, applied after segmentation and before extraction:
    {"kind": "erode"|"dilate", "radius": voxels} on the ROI (label 1), or {"kind": "noise", "sigma": s,
    "seed": n} Gaussian noise added to the image (seeded per case)."""
    import zlib

    import numpy as np
    import SimpleITK as sitk

    if not perturb:
        return image, mask
    kind = perturb["kind"]
    if kind in ("erode", "dilate"):
        r = int(perturb.get("radius", 1))
        m = sitk.Cast(mask > 0, sitk.sitkUInt8)
        f = sitk.BinaryErodeImageFilter() if kind == "erode" else sitk.BinaryDilateImageFilter()
        f.SetKernelRadius(r)
        f.SetKernelType(sitk.sitkBall)
        f.SetForegroundValue(1)
        out = f.Execute(m)
        return image, out
    if kind == "noise":
        rng = np.random.default_rng([int(perturb.get("seed", 0)), zlib.crc32(str(case_id).encode())])
        arr = sitk.GetArrayFromImage(image).astype("float64")
        arr = arr + rng.normal(0.0, float(perturb["sigma"]), arr.shape)
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(image)
        return out, mask
    raise ValueError(f"unknown perturbation {kind!r}")


def features_csv(rows, index_name="case_id"):
    """The feature table as CSV text: first column case_id, then the feature columns in the given order;
    floats written as their shortest round-trip representation (read back exactly with float_precision="round_trip")."""
    import io

    buf = io.StringIO()
    rows.to_csv(buf, index=True, index_label=index_name, lineterminator="\n")
    return buf.getvalue()


def member_columns(columns, params):
    """The columns of a merged PyRadiomics pass that one member stage asked for (its filters, LoG sigmas,
    classes and named features), in the pass's order. Names are `<image type>_<class>_<feature>`."""
    filters = params.get("filters") or [{"kind": "original"}]
    prefixes, starts = set(), []
    for f in filters:
        k = f["kind"]
        if k == "log":
            prefixes |= {"log-sigma-{}-mm-3D".format(str(float(s)).replace(".", "-")) for s in f["sigma"]}
        elif k == "wavelet":
            starts.append("wavelet")
        elif k == "lbp3d":
            starts.append("lbp-3D")
        else:
            prefixes.add({"original": "original", "square": "square", "square_root": "squareroot", "logarithm": "logarithm",
                          "exponential": "exponential", "gradient": "gradient", "lbp2d": "lbp-2D"}[k])
    classes = params.get("classes")
    wanted = ({c["name"]: set(c["features"]) for c in classes} if classes
              else {c: set() for c in ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")})
    out = []
    for col in columns:
        parts = col.split("_", 2)
        if len(parts) != 3:
            continue
        itype, cls, feat = parts
        if itype not in prefixes and not any(itype.startswith(s) for s in starts):
            continue
        if cls not in wanted or (wanted[cls] and feat not in wanted[cls]):
            continue
        out.append(col)
    return out


# --------------------------------------------------------------------------------------------------
# run time: one case job per case (radlang/backends/cases.py maps them over the process pool, with the cache)
# --------------------------------------------------------------------------------------------------

def feature_plan(ctx, stage) -> dict:
    """What one case job needs besides its files: the image column(s), the segmentation step, the
    PyRadiomics config and the content that keys the cache."""
    import os

    from radlang import registry
    from radlang.backends.executor import RunError
    from radlang.backends.glue import spec_dir
    from radlang.diagnostics import Diagnostic

    p = dict(stage.extra.get("merge", {}).get("params") or stage.params)
    text = None
    if p.get("params"):
        path = p["params"] if os.path.isabs(p["params"]) else str(spec_dir(stage, ctx) / p["params"])
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as e:
            raise RunError([Diagnostic("E602", f"`{stage.name}`: cannot read the PyRadiomics params file `{path}`: {e.strerror or e}",
                                       stage.span, hint="the path is relative to the spec file")]) from None
        ctx.hash_input(path)
    try:
        config = pyradiomics_config(p, text)
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        raise RunError([Diagnostic("E602", f"`{stage.name}`: the PyRadiomics params file is not valid YAML: {e}", stage.span)]) from None
    if text is not None:
        import yaml

        bad = params_schema_problems(yaml.safe_load(text))
        if bad:
            raise RunError([Diagnostic("E653", f"`{stage.name}`: the PyRadiomics params file `{path}`: {m}", stage.span,
                                       hint="PyRadiomics checks the file against its schema (radiomics/schemas/paramSchema.yaml)")
                            for m in bad])
    img_ref, mask_ref = stage.inputs["image"], stage.inputs["mask"]
    segment = None
    if mask_ref.attr == "mask":
        seg = {"op": None, "source": "mask", "label": int(config["setting"].get("label", 1))}
    else:
        seg_stage = ctx.study.by_name()[mask_ref.stage]
        seg_op = registry.get(seg_stage.op)
        if seg_op.case is None:
            # a stage that has already written one mask file per case (e.g. a network's `predict_mask`):
            # extract on those files, keyed by their content like any cohort mask
            seg = {"op": None, "source": "mask", "label": int(config["setting"].get("label", 1)), "table": mask_ref.stage}
        else:   # a segmenter: its per-case function runs inside each case job
            src = next(iter(seg_stage.inputs.values()))
            seg = {"op": seg_stage.op, "params": seg_stage.params, "version": seg_op.version, "source": src.attr or "mask"}
            segment = seg_op.case
            config["setting"]["label"] = 1
    try:
        from importlib.metadata import version

        prv = version("pyradiomics")
    except Exception:  # noqa: BLE001
        prv = "?"
    op = registry.get(stage.op)
    return {"config": config, "seg": seg, "segment": segment, "image_attr": img_ref.attr or "image", "cohort": img_ref.stage,
            "key": [stage.op, op.version, prv, config, seg]}


def image_columns(df, attr="image") -> list[str]:
    if attr == "image" and "image" in df.columns:
        return ["image"]
    cols = [c for c in df.columns if c.startswith("image.")]
    if attr.startswith("image.") and attr in df.columns:
        return [attr]
    return cols


def _case_problem(case_job, message, file=None, column=None, code="E603"):
    return {"case": case_job["case"], "file": file, "column": column, "message": message, "code": code}


def check_case(case_job) -> list[dict]:
    """Cheap checks before extraction: every file readable; for a cohort mask, geometry, emptiness and label."""
    import os

    import SimpleITK as sitk

    from radlang.ops.cohorts import image_payload_problem, read_image_header
    from radlang.ops.dicom import split_ref
    from radlang.ops.segment import check_mask, load_image

    problems = []
    headers = {}
    for col, path in case_job["images"]:
        if not path or not os.path.exists(split_ref(path)[0]):    # `folder#<series>`: one DICOM series of the folder
            problems.append(_case_problem(case_job, "file not found", path, col, "E601"))
            continue
        try:
            header = read_image_header(path)
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            problems.append(_case_problem(case_job, f"unreadable or corrupt image ({_short_error(e)})", path, col, "E602"))
            continue
        bad = image_payload_problem(path)
        if bad:
            problems.append({"case": case_job["case"], "column": col, **bad})
        else:
            headers[col] = header
    seg = case_job["seg"]
    if seg["source"] == "mask":
        path, col = case_job["mask"], case_job["mask_column"]
        if not path or not os.path.exists(path):
            problems.append(_case_problem(case_job, "file not found", path, col, "E601"))
            return problems
        bad = image_payload_problem(path)
        if bad:
            problems.append({"case": case_job["case"], "column": col, **bad})
            return problems
        try:
            mask = load_image(path)
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            problems.append(_case_problem(case_job, f"unreadable or corrupt mask ({_short_error(e)})", path, col, "E602"))
            return problems
        if not headers:
            return problems
        img_col, h = next(iter(headers.items()))
        if len(h["size"]) != mask.GetDimension():
            # the image is what differs from its cohort's masks (a 2D slice among 3D volumes, say): name the image
            img_path = dict(case_job["images"])[img_col]
            dims = " × ".join(str(int(x)) for x in h["size"])
            mdims = " × ".join(str(int(x)) for x in mask.GetSize())
            problems.append(_case_problem(case_job, f"the image is {len(h['size'])}D ({dims} voxels) but its mask `{path}` is "
                                                    f"{mask.GetDimension()}D ({mdims}): an image and its mask need the same dimensions",
                                          img_path, img_col, "E604"))
            return problems
        ref = sitk.Image([int(x) for x in h["size"]], sitk.sitkUInt8) if len(h["size"]) in (2, 3) else None
        if ref is None:
            return problems
        ref.SetSpacing(h["spacing"])
        ref.SetOrigin(h["origin"])
        ref.SetDirection(h["direction"])
        if seg["op"] is None:
            label, how, tol = seg["label"], "error", 1e-3
        else:
            label, how, tol = int(seg["params"]["label"]), seg["params"]["on_mismatch"], float(seg["params"]["tolerance"])
        if how == "resample" and ref.GetSize() != mask.GetSize():
            mask = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
        _, msgs = check_mask(ref, mask, label, how, tol)
        for code, m in msgs:
            problems.append(_case_problem(case_job, m, path, col, code))
    return problems


def _short_error(e) -> str:
    s = str(e).strip()
    for line in s.splitlines():
        line = line.strip()
        if line and not line.startswith("File") and "sitk::ERROR" not in line[:12]:
            return line[:200]
    return (s.splitlines()[0][:200] if s else type(e).__name__)


def extract_case(case_job) -> dict:
    """One case: load, segment, check, perturb, extract. Returns {case, features, diagnostics, problems}."""
    import math

    from radlang.ops.segment import check_mask, load_image

    out = {"case": case_job["case"], "features": {}, "diagnostics": {}, "problems": []}
    try:
        images = [(col, load_image(path)) for col, path in case_job["images"]]
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        out["problems"].append(_case_problem(case_job, f"unreadable or corrupt image ({_short_error(e)})", case_job["images"][0][1],
                                             case_job["images"][0][0], "E602"))
        return out
    seg = case_job["seg"]
    first = images[0][1]
    try:
        mask = load_image(case_job["mask"]) if seg["source"] == "mask" else None
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        out["problems"].append(_case_problem(case_job, f"unreadable or corrupt mask ({_short_error(e)})", case_job["mask"], case_job["mask_column"], "E602"))
        return out
    if case_job["segment"] is None:
        roi, msgs = check_mask(first, mask, seg["label"], "error")
        if msgs:
            roi = None
    else:
        roi, msgs = case_job["segment"](first, mask, seg["params"])
    if roi is None:
        f, c = (case_job["mask"], case_job["mask_column"]) if seg["source"] == "mask" else (case_job["images"][0][1], case_job["images"][0][0])
        for code, m in msgs:
            out["problems"].append(_case_problem(case_job, m, f, c, code))
        return out
    multi = len(images) > 1
    for col, img in images:
        try:
            img_p, roi_p = perturb_case(img, roi, case_job.get("perturb"), case_job["case"])
            feats, diags = extract_features(img_p, roi_p, case_job["config"])
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            out["problems"].append(_case_problem(case_job, f"PyRadiomics failed: {_short_error(e)}", case_job["images"][0][1], col, "E607"))
            return out
        prefix = f"{col}_" if multi else ""
        out["features"].update({prefix + k: v for k, v in feats.items()})
        out["diagnostics"].update({prefix + k: v for k, v in diags.items()})
        bad = [k for k, v in feats.items() if not math.isfinite(v)]
        if bad:
            shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
            out["problems"].append(_case_problem(case_job, f"PyRadiomics returned NaN/inf for {shown}", case_job["images"][0][1], col, "E608"))
    return out


def _case_jobs(ctx, plan, cohort_df, perturb):
    cols = image_columns(cohort_df, plan["image_attr"])
    names = cohort_df.attrs.get("radlang", {}).get("columns", {})
    table = plan["seg"].get("table")
    masks = {}
    if table is not None:
        mdf = ctx.results[table]
        masks = {str(c): m for c, m in zip(mdf["case_id"], mdf["mask"])}
    case_jobs = []
    for row in cohort_df.to_dict("records"):
        images = [(col, row[col]) for col in cols]
        if table is not None:
            mask, mask_col = masks.get(str(row["case_id"])), f"{table}.mask"
        else:
            mask, mask_col = (row["mask"] if "mask" in cohort_df.columns else None), names.get("mask", "mask")
        t = {"case": str(row["case_id"]), "images": [(names.get(c, c), p) for c, p in images],
             "mask": mask, "mask_column": mask_col,
             "seg": plan["seg"], "segment": plan["segment"], "config": plan["config"], "perturb": perturb}
        case_jobs.append(t)
    return case_jobs


def _case_weight(case_job) -> float:
    import os

    w = 0
    for _, p in case_job["images"]:
        try:
            w += os.path.getsize(p) if os.path.isfile(p) else sum(e.stat().st_size for e in os.scandir(p))
        except OSError:
            pass
    return w


def _case_key(ctx, plan, case_job) -> str | None:
    from radlang.backends.cache import key

    try:
        hashes = [ctx.hash_input(p) for _, p in case_job["images"]]
        mh = ctx.hash_input(case_job["mask"]) if case_job["seg"]["source"] == "mask" else None
    except OSError:
        return None
    return key("case", plan["key"], case_job["perturb"], [c for c, _ in case_job["images"]], hashes, mh)


def _extract(ctx, stage, cohort_df, perturb=None):
    """-> (features DataFrame, diagnostics DataFrame, excluded [{case, reason}], content key)."""
    import operator

    import numpy as np
    import pandas as pd

    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.cases import excluded_cases, map_cases
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    plan = feature_plan(ctx, stage)
    if not image_columns(cohort_df, plan["image_attr"]):
        raise RunError([Diagnostic("E603", f"`{stage.name}`: the cohort table has no image column", stage.span)])
    if plan["seg"]["source"] == "mask" and "mask" not in cohort_df.columns and not plan["seg"].get("table"):
        raise RunError([Diagnostic("E603", f"`{stage.name}`: the cohort table has no mask column", stage.span,
                                   hint="give the cohort a `mask:` column, or segment one (otsu/threshold)")])
    case_jobs = _case_jobs(ctx, plan, cohort_df, perturb)
    keys = [_case_key(ctx, plan, t) for t in case_jobs]
    what = cohort_df.attrs.get("radlang", {}).get("name") or "cohort"
    if perturb:
        what += f", {perturb['kind']}"
    results, problems = map_cases(ctx, stage, case_jobs, keys, check_case, extract_case, _case_weight, f"{stage.name} ({what}): extracting")
    excluded = excluded_cases(problems)
    order = [t["case"] for t in case_jobs if t["case"] in results]
    seen: dict[str, None] = {}
    for c in order:
        seen.update(dict.fromkeys(results[c]["features"]))
    cols = list(seen)
    if "merge" in stage.extra:
        cols = member_columns(cols, stage.params)
    # one float64 block built by numpy (a list of lists through pandas' object path costs ~0.1 s per 24 cases)
    nan = float("nan")
    pick = operator.itemgetter(*cols) if len(cols) > 1 else None

    def row(f):
        if pick is not None:
            try:
                return pick(f)          # every column present (the usual case): one C-level lookup per row
            except KeyError:
                pass
        return [f.get(n, nan) for n in cols]

    block = np.array([row(results[c]["features"]) for c in order], dtype="float64")
    feats = pd.DataFrame(block.reshape(len(order), len(cols)), index=pd.Index(order, name="case_id"), columns=cols, copy=False)
    dseen: dict[str, None] = {}
    for c in order:
        dseen.update(dict.fromkeys(results[c]["diagnostics"]))
    dcols = list(dseen)
    diag = pd.DataFrame([[results[c]["diagnostics"].get(n, "") for n in dcols] for c in order],
                        index=pd.Index(order, name="case_id"), columns=dcols)
    content = key("features", registry.get(stage.op).version, stage.name if "merge" in stage.extra else None, stage.params, list(keys))
    return feats, diag, excluded, content


def pyradiomics_on_cohort(ctx, stage, cohort_df, perturb=None):
    """Run the per-case chain that produces `stage` (image loading, segmentation, perturbation, extraction) on
    `cohort_df` (any cohort table with the same columns), using the cache. `perturb` is None or
    {"kind": "erode"|"dilate", "radius": int} or {"kind": "noise", "sigma": float, "seed": int}.
    Returns the features table (indexed by case_id, PyRadiomics column names); excluded cases (on_error: skip)
    are listed in ctx.excluded. Image stages between the cohort and `stage` (preprocessing) are applied first."""
    from radlang.backends.glue import upstream_on_cohort

    cohort_df = upstream_on_cohort(ctx, stage.inputs["image"].stage, cohort_df)
    feats, _, excluded, _ = _extract(ctx, stage, cohort_df, perturb)
    for e in excluded:
        ctx.excluded.append({"stage": stage.name, **e})
    feats.attrs["radlang"] = {"name": stage.name, "cohort": cohort_df.attrs.get("radlang", {}).get("name"),
                              "excluded": [e["case"] for e in excluded]}
    return feats


def thickness_warning(ctx, stage, cohort_df):
    """W636: the cohort's DICOM slice thicknesses (radlang/ops/dicom.py) differ by more than its
    `thickness_tolerance` while the features keep each image's own slice spacing (no resampling along z)."""
    meta = cohort_df.attrs.get("radlang", {})
    cases = set(cohort_df["case_id"])
    thick = {c: t for c, t in (meta.get("slice_thickness") or {}).items() if c in cases}
    spacing = feature_plan(ctx, stage)["config"]["setting"].get("resampledPixelSpacing")
    if len(thick) < 2 or (spacing and len(spacing) == 3 and spacing[2]):
        return
    lo, hi = min(thick, key=thick.get), max(thick, key=thick.get)
    tol = float(meta.get("thickness_tolerance", 0.5))
    if thick[hi] - thick[lo] > tol:
        ctx.warn("W636", f"`{stage.name}`: slice thickness in cohort `{meta.get('name')}` ranges from {thick[lo]:g} mm (case {lo}) to "
                         f"{thick[hi]:g} mm (case {hi}), more than its tolerance of {tol:g} mm, and the features do not resample: "
                         "texture features then partly measure the scanner protocol (set `resample: [..., ..., <mm>]`)")


def run_pyradiomics(stage, ctx):
    """Extract every case of the stage's cohort; write <out>/features/<stage>.csv, its diagnostics and its exclusions."""
    import hashlib
    import json

    from radlang.backends.cache import atomic_write_text, output_sha256

    cohort_df = ctx.results[stage.inputs["image"].stage]
    thickness_warning(ctx, stage, cohort_df)
    feats, diag, excluded, content = _extract(ctx, stage, cohort_df)
    for e in excluded:
        ctx.excluded.append({"stage": stage.name, **e})
    out = ctx.out / "features"
    # the stamp holds the content key of the files below and their SHA-256: files with that content are not rewritten;
    # a file changed since (edited by hand) or missing is written again
    stamp = out / f".{stage.name}.key"
    names = [f"{stage.name}.csv", f"{stage.name}.diagnostics.csv"]
    try:
        written = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = None
    now = {n: output_sha256(out / n) for n in names}
    if not isinstance(written, dict) or written.get("key") != content or written.get("sha256") != now:
        edited = [n for n in names if isinstance(written, dict) and written.get("key") == content and now[n] is not None
                  and now[n] != written.get("sha256", {}).get(n)]
        if edited:
            ctx.warn("W672", f"`{stage.name}`: {', '.join(f'features/{n}' for n in edited)} changed since radlang wrote it; "
                             "rewritten from the run's results")
        if stamp.exists():
            stamp.unlink()
        texts = {names[0]: features_csv(feats), names[1]: diag.to_csv(lineterminator="\n")}
        for n, text in texts.items():
            atomic_write_text(out / n, text)
        atomic_write_text(stamp, json.dumps({"key": content, "sha256": {n: hashlib.sha256(t.encode()).hexdigest()
                                                                        for n, t in texts.items()}}, sort_keys=True) + "\n")
    exc_path = out / f"{stage.name}.excluded.csv"
    if excluded:
        import pandas as pd

        atomic_write_text(exc_path, pd.DataFrame(excluded).to_csv(index=False, lineterminator="\n"))
    elif exc_path.exists():
        exc_path.unlink()
    feats.attrs["radlang"] = {"name": stage.name, "cohort": cohort_df.attrs.get("radlang", {}).get("name"),
                              "excluded": [e["case"] for e in excluded]}
    ctx.keys[stage.name] = content
    return feats


def resampled_twice(types, image_type, settings):
    """E327 for a feature stage (radlang/ops/preprocess.py): its image comes out of a `resample` stage and it resamples again (`resample`)."""
    head = types.get(image_type.detail.split(".")[0]) if image_type is not None else None
    return head is not None and head.detail.startswith("resample of ") and settings.resample is not None


def _features_type(ctx) -> RType:
    img, msk = ctx.inputs.get("image"), ctx.inputs.get("mask")
    s = ctx.settings
    if img is not None and msk is not None and img.cohort and msk.cohort and img.cohort != msk.cohort:
        ctx.error("E207", f"the image comes from cohort `{img.cohort}` but the mask from `{msk.cohort}`", port="mask",
                  hint="segment the same cohort whose images you extract from")
    if msk is not None and msk.detail and not msk.detail.endswith(".mask") and s.label not in (None, 1):
        ctx.error("E306", "a segment stage's mask marks its ROI with 1; set `label` on the `mask` segment stage instead", setting="label")
    if s.force2d is not True and s.classes is not None and any(c.name == "shape2D" for c in s.classes):
        ctx.error("E306", "`shape2D` needs `force2d: true` (or 2D images)", setting="classes")
    if resampled_twice(ctx.types, img, s):
        ctx.error("E327", f"`{img.detail}` is already resampled by a `resample` stage, and `resample` here resamples it again",
                  setting="resample", hint="resample once: drop this `resample` (or the `resample` stage)")
    return RType("Features", cohort=img.cohort if img else None, outcome=None, dims=img.dims if img else None, detail="pyradiomics")


def image_types(config: dict, dims: int = 3) -> list[tuple[str, int]]:
    """The derived images PyRadiomics computes for a parameter dict: [(image type, how many)], from its `imageType`
    section with each type's own settings over the general ones (as PyRadiomics merges them). LoG: one per sigma;
    Wavelet: 2^d - 1 detail images per level plus the last approximation (d = 3, or 2 with force2D); LBP3D: one per
    level plus the kurtosis image; every other type one."""
    general = config.get("setting") or {}
    out = []
    for kind, own in (config.get("imageType") or {}).items():
        kw = {**general, **(own or {})}
        if kind == "LoG":
            n = len(kw.get("sigma") or [])
        elif kind == "Wavelet":
            d = dims - 1 if kw.get("force2D") else dims
            n = int(kw.get("level", 1)) * (2 ** d - 1) + 1
        elif kind == "LBP3D":
            n = int(kw.get("lbp3DLevels", 2)) + 1
        else:
            n = 1
        out.append((kind, n))
    return out


def _plan(stage, memory):
    """What one case job computes, from the settings merged over the params file, as the run merges them."""
    import os

    p = stage.params
    lines, text = [], None
    if p.get("params"):
        from radlang.checks.data import spec_folder

        folder = spec_folder(stage)
        path = p["params"] if os.path.isabs(p["params"]) or folder is None else str(folder / p["params"])
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, ValueError) as e:                # ValueError: bad encoding, or a NUL byte in the path
            why = getattr(e, "strerror", None) or e
            lines.append(("warning", f"cannot read the params file `{path}` ({why}): the counts below leave it out"))
    try:
        config = pyradiomics_config(p, text)
    except Exception as e:  # noqa: BLE001 -- a params file that is not YAML: `check` and `run` report it
        config = pyradiomics_config(p)
        lines.append(("warning", f"the params file is not valid YAML ({type(e).__name__}): the counts below leave it out"))
    kinds = image_types(config, int(stage.type.dims or 3))
    total = sum(n for _, n in kinds)
    what = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds)
    lines.insert(0, ("info", f"per case, in one case job: load image + mask, segment, check, extract ({what}: {total} image(s))"))
    return lines


MERGE_SETTINGS = ("filters", "classes")
ALL_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def union_filters(lists):
    """Union of filter lists; LoG sigmas are merged. None if two members set one filter differently."""
    out: dict[str, dict] = {}
    for filters in lists:
        for f in filters or [{"kind": "original"}]:
            k = f["kind"]
            if k not in out:
                out[k] = dict(f)
            elif k == "log":
                out[k]["sigma"] = sorted(set(out[k]["sigma"]) | set(f["sigma"]))
            elif out[k] != f:
                return None
    return list(out.values())


def union_classes(lists):
    out: dict[str, list | None] = {}
    for classes in lists:
        for c in classes or [{"name": n, "features": []} for n in ALL_CLASSES]:
            have = out.get(c["name"], "absent")
            if have == "absent":
                out[c["name"]] = list(c["features"])
            elif have and c["features"]:
                out[c["name"]] = have + [f for f in c["features"] if f not in have]
            else:
                out[c["name"]] = []          # one member wants the whole class
    return [{"name": n, "features": f} for n, f in out.items()]


def merge_pyradiomics(params_list):
    """The merge pass's hook: stages on the same image and mask whose settings differ only in `filters` and `classes`
    extract once per case with the union of both (each filtered image computed once); the split back is
    `member_columns`. A stage with a params file is never merged (its filters come from the file)."""
    if any(p.get("params") for p in params_list):
        return None
    filters = union_filters([p.get("filters") for p in params_list])
    if filters is None:
        return None
    classes = union_classes([p.get("classes") for p in params_list])
    kinds = ", ".join(f["kind"] + (f"(sigma: {f['sigma']})" if f["kind"] == "log" else "") for f in filters)
    return dict(params_list[0], filters=filters, classes=classes), f"one PyRadiomics pass per case (filters computed once: {kinds})"


def pyradiomics_check_data(st, bound, folder, diags, listings):
    """`radlang check`: a params file (`params: from_params(...)`) is readable and within PyRadiomics' schema."""
    from radlang.checks.data import check_params_file

    if st.params.get("params") and folder is not None:
        check_params_file(st, bound, folder, diags)
    return None


def pyradiomics_code(params, seed):
    """The PyRadiomics extractor a stage's settings make (`pyradiomics_config`); a params file's own settings are read
    at run time, under the spec's."""
    import pprint

    text = pprint.pformat(pyradiomics_config(params), width=96, compact=True).split("\n")
    lines = ["featureextractor.RadiomicsFeatureExtractor(" + text[0], *("    " + x for x in text[1:])]
    lines[-1] += ")"
    return ([f"over the settings of {params['params']}:"] if params.get("params") else []) + lines
register(Operator(
    name="pyradiomics", kind="features", output="Features", settings=PyradiomicsSettings,
    behaviour="per_case", run=run_pyradiomics, case=extract_case, on_cohort=pyradiomics_on_cohort, check_data=pyradiomics_check_data,
    merge=merge_pyradiomics, merge_settings=MERGE_SETTINGS,
    inputs=(Port("image", ("Image",), doc="a cohort's image, e.g. `train.image`"),
            Port("mask", ("Mask",), doc="a cohort's mask (`train.mask`) or a segment stage")),
    positional=("image", "mask"), impl=extract_features, helpers=(pyradiomics_config, params_schema_problems, perturb_case, features_csv, member_columns),
    infer=_features_type, version="1", sink=True, plan=_plan, library_code=pyradiomics_code,
    worker_imports=("radlang.ops.features", "radlang.ops.cohorts", "radlang.ops.dicom", "radlang.ops.segment", "SimpleITK",
                    "radiomics.featureextractor"),
    doc=("Radiomics features by PyRadiomics, every value-changing setting mapped one to one; "
         "`params: from_params(\"file.yaml\")` imports an existing PyRadiomics parameter file. "
         "Writes <out>/features/<stage>.csv (case_id, then PyRadiomics' feature names) and a diagnostics side file."),
    examples=('features rad = pyradiomics(train.image, roi) { bin_width: 25, resample: [1mm, 1mm, 1mm], filters: [original, log(sigma: [1mm, 3mm]), wavelet] }',
              'features rad = pyradiomics(train.image, train.mask) { params: from_params("Params.yaml") }'),
))
