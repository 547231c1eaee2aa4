"""IBSI chapter 1 <-> PyRadiomics: which IBSI feature each PyRadiomics feature computes, and how to compare a value
with the IBSI consensus value and tolerance. Used by `radlang selftest` (on the IBSI digital phantom shipped with
radlang) and by the reference tests (tests/reference/, also on the CT phantom).

`MAP` gives, per PyRadiomics feature, the IBSI tag stem; `ibsi_tag` adds the aggregation suffix that
PyRadiomics' computation corresponds to: 3D texture -> `_3D_avg` (GLCM, GLRLM: per-direction features,
averaged) or `_3D` (GLSZM, GLDM, NGTDM); force2D -> `_2_5D_avg` / `_2_5D` (in-plane directions, matrices
merged over slices). IBSI kurtosis is excess kurtosis (PyRadiomics' value - 3). First-order features other
than entropy and uniformity use the raw intensities in PyRadiomics, so they map to IBSI `stat_*`; entropy
and uniformity use the discretised intensities (`ih_*`)."""

from __future__ import annotations

from math import floor, log10

MAP = {
    # first order
    "firstorder_Mean": "stat_mean", "firstorder_Variance": "stat_var", "firstorder_Skewness": "stat_skew",
    "firstorder_Kurtosis": "stat_kurt", "firstorder_Median": "stat_median", "firstorder_Minimum": "stat_min",
    "firstorder_10Percentile": "stat_p10", "firstorder_90Percentile": "stat_p90", "firstorder_Maximum": "stat_max",
    "firstorder_InterquartileRange": "stat_iqr", "firstorder_Range": "stat_range", "firstorder_MeanAbsoluteDeviation": "stat_mad",
    "firstorder_RobustMeanAbsoluteDeviation": "stat_rmad", "firstorder_Energy": "stat_energy", "firstorder_RootMeanSquared": "stat_rms",
    "firstorder_Entropy": "ih_entropy", "firstorder_Uniformity": "ih_uniformity",
    # morphology
    "shape_MeshVolume": "morph_volume", "shape_VoxelVolume": "morph_vol_approx", "shape_SurfaceArea": "morph_area_mesh",
    "shape_SurfaceVolumeRatio": "morph_av", "shape_Compactness1": "morph_comp_1", "shape_Compactness2": "morph_comp_2",
    "shape_SphericalDisproportion": "morph_sph_dispr", "shape_Sphericity": "morph_sphericity", "shape_Maximum3DDiameter": "morph_diam",
    "shape_MajorAxisLength": "morph_pca_maj_axis", "shape_MinorAxisLength": "morph_pca_min_axis",
    "shape_LeastAxisLength": "morph_pca_least_axis", "shape_Elongation": "morph_pca_elongation", "shape_Flatness": "morph_pca_flatness",
    # GLCM
    "glcm_MaximumProbability": "cm_joint_max", "glcm_JointAverage": "cm_joint_avg", "glcm_SumSquares": "cm_joint_var",
    "glcm_JointEntropy": "cm_joint_entr", "glcm_DifferenceAverage": "cm_diff_avg", "glcm_DifferenceVariance": "cm_diff_var",
    "glcm_DifferenceEntropy": "cm_diff_entr", "glcm_SumAverage": "cm_sum_avg", "glcm_SumVariance": "cm_sum_var",
    "glcm_SumEntropy": "cm_sum_entr", "glcm_JointEnergy": "cm_energy", "glcm_Contrast": "cm_contrast",
    "glcm_Dissimilarity": "cm_dissimilarity", "glcm_Id": "cm_inv_diff", "glcm_Idn": "cm_inv_diff_norm", "glcm_Idm": "cm_inv_diff_mom",
    "glcm_Idmn": "cm_inv_diff_mom_norm", "glcm_InverseVariance": "cm_inv_var", "glcm_Correlation": "cm_corr",
    "glcm_Autocorrelation": "cm_auto_corr", "glcm_ClusterTendency": "cm_clust_tend", "glcm_ClusterShade": "cm_clust_shade",
    "glcm_ClusterProminence": "cm_clust_prom", "glcm_Imc1": "cm_info_corr1", "glcm_Imc2": "cm_info_corr2",
    # GLRLM
    "glrlm_ShortRunEmphasis": "rlm_sre", "glrlm_LongRunEmphasis": "rlm_lre", "glrlm_LowGrayLevelRunEmphasis": "rlm_lgre",
    "glrlm_HighGrayLevelRunEmphasis": "rlm_hgre", "glrlm_ShortRunLowGrayLevelEmphasis": "rlm_srlge",
    "glrlm_ShortRunHighGrayLevelEmphasis": "rlm_srhge", "glrlm_LongRunLowGrayLevelEmphasis": "rlm_lrlge",
    "glrlm_LongRunHighGrayLevelEmphasis": "rlm_lrhge", "glrlm_GrayLevelNonUniformity": "rlm_glnu",
    "glrlm_GrayLevelNonUniformityNormalized": "rlm_glnu_norm", "glrlm_RunLengthNonUniformity": "rlm_rlnu",
    "glrlm_RunLengthNonUniformityNormalized": "rlm_rlnu_norm", "glrlm_RunPercentage": "rlm_r_perc",
    "glrlm_GrayLevelVariance": "rlm_gl_var", "glrlm_RunVariance": "rlm_rl_var", "glrlm_RunEntropy": "rlm_rl_entr",
    # GLSZM
    "glszm_SmallAreaEmphasis": "szm_sze", "glszm_LargeAreaEmphasis": "szm_lze", "glszm_LowGrayLevelZoneEmphasis": "szm_lgze",
    "glszm_HighGrayLevelZoneEmphasis": "szm_hgze", "glszm_SmallAreaLowGrayLevelEmphasis": "szm_szlge",
    "glszm_SmallAreaHighGrayLevelEmphasis": "szm_szhge", "glszm_LargeAreaLowGrayLevelEmphasis": "szm_lzlge",
    "glszm_LargeAreaHighGrayLevelEmphasis": "szm_lzhge", "glszm_GrayLevelNonUniformity": "szm_glnu",
    "glszm_GrayLevelNonUniformityNormalized": "szm_glnu_norm", "glszm_SizeZoneNonUniformity": "szm_zsnu",
    "glszm_SizeZoneNonUniformityNormalized": "szm_zsnu_norm", "glszm_ZonePercentage": "szm_z_perc",
    "glszm_GrayLevelVariance": "szm_gl_var", "glszm_ZoneVariance": "szm_zs_var", "glszm_ZoneEntropy": "szm_zs_entr",
    # NGTDM
    "ngtdm_Coarseness": "ngt_coarseness", "ngtdm_Contrast": "ngt_contrast", "ngtdm_Busyness": "ngt_busyness",
    "ngtdm_Complexity": "ngt_complexity", "ngtdm_Strength": "ngt_strength",
    # GLDM (IBSI NGLDM with coarseness 0, distance 1)
    "gldm_SmallDependenceEmphasis": "ngl_lde", "gldm_LargeDependenceEmphasis": "ngl_hde", "gldm_LowGrayLevelEmphasis": "ngl_lgce",
    "gldm_HighGrayLevelEmphasis": "ngl_hgce", "gldm_SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge",
    "gldm_SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge", "gldm_LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge",
    "gldm_LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge", "gldm_GrayLevelNonUniformity": "ngl_glnu",
    "gldm_GrayLevelNonUniformityNormalized": "ngl_glnu_norm", "gldm_DependenceNonUniformity": "ngl_dcnu",
    "gldm_DependenceNonUniformityNormalized": "ngl_dcnu_norm", "gldm_DependencePercentage": "ngl_dc_perc",
    "gldm_GrayLevelVariance": "ngl_gl_var", "gldm_DependenceVariance": "ngl_dc_var", "gldm_DependenceEntropy": "ngl_dc_entr",
}

# The digital phantom's reference sets, as radlang settings of a `pyradiomics` stage
DIGITAL_PHANTOM_CONFIGS = {
    "digital_phantom_3D": ("digital_phantom", ["bin_width: 1"]),
    "digital_phantom_2.5D": ("digital_phantom", ["bin_width: 1", "force2d: true"]),
}

# Features of the digital phantom that PyRadiomics computes differently from IBSI (its PCA-based axis lengths), as
# docs/ibsi_coverage.md records; every other mapped feature matches, and `radlang selftest` fails when one does not.
DIGITAL_PHANTOM_DEVIATIONS = {
    "shape_LeastAxisLength": "PyRadiomics' known deviation in its PCA-based axis lengths",
    "shape_MinorAxisLength": "PyRadiomics' known deviation in its PCA-based axis lengths",
}


def ibsi_tag(name: str, force2d: bool) -> str | None:
    """PyRadiomics column (`original_glcm_Contrast`) -> IBSI tag, or None when there is no counterpart."""
    key = name.split("_", 1)[1]
    stem = MAP.get(key)
    if stem is None:
        return None
    cls = key.split("_", 1)[0]
    if cls in ("glcm", "glrlm"):
        return stem + ("_2_5D_avg" if force2d else "_3D_avg")
    if cls in ("glszm", "gldm", "ngtdm"):
        return stem + ("_2_5D" if force2d else "_3D")
    return stem


def compare_rows(features: dict, reference: dict, force2d: bool) -> list[dict]:
    """One row per PyRadiomics feature: IBSI tag, values, tolerance, status (matched / mismatched / no counterpart /
    no reference value). `reference`: IBSI tag -> (consensus value, tolerance), or (None, None) without consensus.

    A feature matches when |value - IBSI| <= tolerance + half a unit in the reference value's third significant
    digit (IBSI reports 3 significant digits)."""
    rows = []
    for name, value in features.items():
        tag = ibsi_tag(name, force2d)
        if tag is None:
            rows.append({"feature": name, "tag": None, "radlang": value, "ibsi": None, "tolerance": None, "status": "no counterpart"})
            continue
        r, tol = reference.get(tag, (None, None))
        if r is None:
            rows.append({"feature": name, "tag": tag, "radlang": value, "ibsi": None, "tolerance": None, "status": "no reference value"})
            continue
        v = value - 3.0 if name.endswith("firstorder_Kurtosis") else value
        rounding = 0.5 * 10 ** (floor(log10(abs(r))) - 2) if r != 0 else 0.0
        ok = abs(v - r) <= tol + rounding + 1e-12
        rows.append({"feature": name, "tag": tag, "radlang": v, "ibsi": r, "tolerance": tol, "status": "matched" if ok else "mismatched"})
    return rows


def read_reference(path) -> dict:
    """An IBSI reference-value CSV (columns `tag`, `reference value`, `tolerance`) -> {tag: (value, tolerance)}."""
    import csv

    out = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            tag, value = row.get("tag"), (row.get("reference value") or "").strip()
            if tag:
                out[tag] = (float(value), float(row["tolerance"] or 0)) if value else (None, None)
    return out


def all_classes_setting() -> str:
    """`classes: [...]` naming every PyRadiomics feature, deprecated ones included (several have IBSI counterparts)."""
    from radlang.ops.features import FEATURES

    parts = [f"{c}({', '.join(sorted(f))})" for c, f in FEATURES.items() if c != "shape2D"]
    return "classes: [" + ", ".join(parts) + "]"
