"""Every diagnostic code radlang raises, with its one meaning: the registry of codes.

A code is a letter and three digits. The first digit is the phase that finds the problem (`PHASES`);
`E` is an error, `W` a warning. A number has one meaning. Where one number carries both letters, the two
are the same problem at two severities, and share one meaning: W690 is what `radlang check` says about a
federated stage (it is checked and planned), E690 what `radlang run` says when it reaches one (it stops).

Call sites keep the literal code (`Diagnostic("E604", ...)`, `ctx.error("E242", ...)`, a problem dict's
`"code": "E602"`); this table says what each code means and which modules may raise it.
tests/test_codes.py holds the two together: a code literal in radlang/ that is not listed here, or that a
module not named on its line raises (a second meaning, most likely), fails; so does a line whose modules
no longer raise it, and two numbers with the same meaning. docs/language.md, section 6, is generated from
this table (`python docs/gen_codes.py`).

To add a code:
  1. take a free number in the range of the phase that finds the problem (E6xx for bad data met by
     `radlang run`, say), and not one allocated to work in progress elsewhere;
  2. add one line below, in numeric order:
        _c("E6nn", "the one-line meaning", "ops/features.py", "optional detail for the docs"),
     with the modules that raise it as paths under radlang/, separated by spaces;
  3. raise it with the literal code at the call site;
  4. run `python docs/gen_codes.py` to regenerate docs/language.md, section 6.

Importing this module is cheap (no imports beyond `typing`): `radlang check` imports it.
"""

from __future__ import annotations

from typing import NamedTuple

PHASES = {
    "0": "syntax",
    "1": "names",
    "2": "types",
    "3": "settings",
    "4": "graph",
    "5": "study design",
    "6": "runtime",
    "7": "usage",
}


class Code(NamedTuple):
    code: str                   # "E604": severity letter and number
    meaning: str                # one line; no other number has it
    modules: tuple[str, ...]    # the modules (paths under radlang/) whose code holds the literal: that raise it
    doc: str = ""               # detail for the docs: which cases the meaning covers, what the hint suggests

    @property
    def phase(self) -> str:
        return PHASES[self.code[1]]

    @property
    def severity(self) -> str:
        return "warning" if self.code.startswith("W") else "error"


def _c(code: str, meaning: str, modules: str, doc: str = "") -> Code:
    return Code(code, meaning, tuple(modules.split()), doc)


_EVAL = "ops/evaluation_run.py"

CODES: dict[str, Code] = {c.code: c for c in (
    # syntax: radlang/syntax/parser.py
    _c("E001", "unexpected token or character", "syntax/parser.py", "Lark's errors, translated (the hint lists what was expected); single quotes; a statement inside `study`"),
    _c("E002", "unterminated string", "syntax/parser.py"),
    _c("E003", "the text is not valid spec text", "syntax/parser.py", "invalid UTF-8, a NUL byte, an unknown string escape, a `\\u` escape naming a UTF-16 surrogate"),
    _c("E004", "the spec is empty", "syntax/parser.py"),
    _c("E005", "the spec exceeds a size limit", "syntax/parser.py", "larger than 2 MiB, brackets nested deeper than 64, a number longer than 100 digits or out of range"),
    # names
    _c("E101", "undefined name", "checks/bind.py", "a `like` target or a reference; the hint suggests the closest name"),
    _c("E102", "a name is defined twice", "checks/bind.py syntax/parser.py", "also a second `study` block"),
    _c("E103", "unknown operator", "checks/bind.py", "the hint suggests the closest name"),
    _c("E104", "unknown statement kind", "checks/bind.py"),
    _c("E105", "a `use`d preset is not found, unreadable or has errors", "checks/uses.py"),
    _c("E106", "circular `use`", "checks/uses.py"),
    _c("E107", "a preset file holds something other than presets", "checks/uses.py compiler.py", "a `study` block or a stage"),
    # types
    _c("E201", "an input or a statement kind of the wrong type", "checks/bind.py", "an input the port does not take, or an operator under another statement kind"),
    _c("E202", "a reference that names no stage output", "checks/bind.py", "not a stage reference, a preset used as a stage, or an attribute that does not exist"),
    _c("E203", "the cohort lacks what the stage needs", "checks/bind.py ops/fedavg.py ops/segmentation_metrics.py ops/supervised.py", "a site, mask or outcome column"),
    _c("E204", "`like` across operators", "checks/bind.py"),
    _c("E205", "missing input", "checks/bind.py"),
    _c("E206", "too many positional arguments", "checks/bind.py"),
    _c("E207", "the image does not fit its mask or segmentation", "ops/features.py ops/segment.py", "image and mask from different cohorts; several channels where one is segmented"),
    _c("E208", "nested statements in an operator that takes none", "compiler.py"),
    _c("E209", "the wrong kind of network for the stage", "ops/explain_cnn.py ops/netio.py", "Grad-CAM needs a convolutional classifier; segmenting needs a trained segmentation network"),
    _c("E210", "the network's dimensions (2D/3D) do not match the images", "ops/explain_cnn.py ops/fedavg.py ops/netio.py ops/supervised.py"),
    _c("E211", "the network's input channels do not match the cohort's image columns", "ops/explain_cnn.py ops/fedavg.py ops/netio.py ops/supervised.py"),
    _c("E212", "a classification network on an outcome that is not binary or multiclass", "ops/supervised.py"),
    _c("E241", "the selector does not support the outcome type", "ops/select.py"),
    _c("E242", "inputs come from different cohorts", "ops/validate.py registry.py", "features and target, or cross-validation groups and model"),
    _c("E243", "`icc` perturbations on a tabular feature table", "ops/select.py", "perturbations re-extract features from images"),
    _c("E244", "the model cannot fit the outcome type", "ops/models.py ops/net_models.py ops/late_fusion.py"),
    _c("E245", "a metric not defined for the outcome type", "ops/validate.py", "the hint lists the metrics for that outcome"),
    _c("E246", "an operating threshold on an outcome that is not binary", "ops/validate.py"),
    _c("E247", "validation by site on a cohort without a site column", "ops/validate.py", "`leave_one_site_out`, or cross-validation groups by site"),
    _c("E248", "the external cohort's outcome does not match the model's", "ops/validate.py"),
    _c("E250", "a join of tables from two cohorts that both carry outcomes", "ops/join.py", "join tables of one cohort, or an attribute table (a `table` without an outcome)"),
    _c("E251", "a 3D image patch cut from a cohort of 2D images", "ops/image_patches.py"),
    _c("E252", "image patches centred on (or holding) a mask the cohort does not have", "ops/image_patches.py", "`crop: whole` centres on the image"),
    _c("E253", "a join fuses a 2D image branch with a 3D one", "ops/join.py", "a network model reads one patch shape; cut both with the same `dims`"),
    _c("E254", "a network model's network does not fit its image input", "ops/net_models.py", "dimensions, input channels, or a network without an image backbone"),
    _c("E255", "image patches smaller than the network backbone's total downsampling", "ops/net_models.py", "its deepest feature map would be empty"),
    _c("E256", "a network model without a fixed-size image input", "ops/net_models.py", "its input needs a `patches` table (joined with the tabular branch, if any)"),
    _c("E257", "ComBat by site on a cohort without a site column", "ops/harmonise.py", "or name another batch column, e.g. `batch: scanner`"),
    _c("E258", "the outcome as a ComBat covariate", "ops/harmonise.py", "the held-out cases' outcomes are unknown when their features are harmonised: preserving it would need the test labels"),
    # settings
    _c("E301", "unknown setting", "checks/settings.py compiler.py ops/models.py", "also a hyper-parameter to search that the model does not have; with \"did you mean\""),
    _c("E302", "a setting out of range", "checks/settings.py ops/datasets.py ops/explain_cnn.py ops/networks.py ops/predict_mask.py"),
    _c("E303", "a wrong or missing unit", "checks/settings.py"),
    _c("E304", "a setting of the wrong type, or a value not allowed", "checks/settings.py compiler.py ops/validate.py"),
    _c("E305", "missing required setting", "checks/settings.py ops/models.py ops/select.py ops/validate.py ops/supervised.py"),
    _c("E306", "settings that contradict each other", "ops/cohorts.py ops/features.py checks/settings.py ops/fedavg.py ops/supervised.py ops/late_fusion.py", "also two settings of which only one may be given, such as `bin_width` and `bin_count`"),
    _c("E307", "a setting given twice", "checks/bind.py"),
    _c("E308", "a path the study would write resolves outside its out folder", "checks/settings.py", "today the phantom `prefix`: a plain name"),
    _c("E309", "a stacking meta-model that would be trained on in-fold predictions", "ops/late_fusion.py", "`cv` below 2; out-of-fold predictions from inner folds, or `meta: average`"),
    _c("E310", "late-fusion weights that do not give one non-negative weight per branch", "ops/late_fusion.py"),
    _c("E311", "a late-fusion branch fit on another cohort than the stacked model's target", "ops/late_fusion.py"),
    _c("E313", "the ComBat batch column is also a covariate", "ops/harmonise.py", "a batch effect cannot be removed and preserved at once"),
    _c("E314", "a ComBat covariate listed twice", "ops/harmonise.py"),
    _c("E323", "a cohort's `site` names a scanner attribute radlang does not read", "ops/cohorts.py", "`site: scanner.<name>` takes one of manufacturer, model, field_strength, kvp, kernel, slice_thickness, pixel_spacing"),
    # graph
    _c("E401", "a cycle", "checks/bind.py checks/graph.py", "stages that depend on each other, or a `like` chain"),
    _c("W402", "a stage is never used; it will not run", "checks/graph.py"),
    _c("W403", "the spec defines no stages", "compiler.py"),
    # study design
    _c("E501", "a stage upstream of a validation is fit on its external cohort", "checks/design.py", "one diagnostic per validation, listing every such stage"),
    _c("E502", "a validation trains and validates on the same cohort", "checks/design.py", "it explains the stages fit there: no E501 besides"),
    _c("E503", "a network scored on its training cohort", "ops/segmentation_metrics.py"),
    _c("E504", "a stage fit once on the cohort a validation cross-validates", "checks/design.py", "its held-out folds trained it; fit it inside the folds"),
    _c("E505", "a join of two branches of one table without `prefix: true`", "checks/design.py", "the same column could come out of both branches"),
    _c("E506", "the joins one validation refits match rows differently", "checks/design.py", "one `by:` for every join in a refit graph"),
    # runtime: radiomics data (cohorts and per-case feature extraction)
    _c("E601", "a cohort's case data is missing or malformed", "backends/glue.py ops/features.py ops/cohorts.py checks/data.py", "a file not found or not given, an empty or repeated case id, a missing or bad outcome (stray labels name their cases); `radlang check` finds a missing manifest, column or file"),
    _c("E602", "an unreadable or corrupt file", "ops/cohorts.py ops/dicom.py ops/features.py ops/netio.py checks/data.py ops/image_patches.py", "an image, a mask, a PyRadiomics params file; the message names case, column and file"),
    _c("E603", "the cohort table lacks the image or mask column the feature stage needs", "ops/features.py"),
    _c("E604", "the mask's geometry differs from the image's", "ops/segment.py ops/features.py", "size, spacing, origin or direction; `on_mismatch: resample` on `mask` resamples it. An image of another number of dimensions than its mask is named itself"),
    _c("E605", "the region of interest is empty", "ops/segment.py", "an empty mask, or a segmentation that selects no voxel"),
    _c("E606", "the label is absent from the mask", "ops/segment.py", "the message lists the labels present"),
    _c("E607", "PyRadiomics failed on a case", "ops/features.py"),
    _c("E608", "PyRadiomics returned NaN or infinite features", "ops/features.py", "the message names the features"),
    # runtime: deep learning (network stages)
    _c("E620", "a case's image channels or mask are not on one grid", "ops/netio.py ops/image_patches.py", "co-register them before training"),
    _c("E621", "a case has no mask to train or score a segmentation on", "ops/netio.py"),
    _c("E622", "a mask holds labels the network does not predict", "ops/netio.py", "the hint gives the `out_channels` that fits"),
    _c("E623", "a case has no outcome value to train a classification network on", "ops/netio.py"),
    _c("E624", "the patch size is not divisible by the network's downsampling", "ops/supervised.py"),
    _c("E625", "the network has no layer of that name", "ops/explain_cnn.py", "Grad-CAM's `layer`; the hint lists layers near the output"),
    # runtime: tabular data, validation
    _c("E626", "a DICOM mask does not refer to the case's image series", "ops/dicom.py",
       "an RTSTRUCT or SEG in another frame of reference, or referencing image instances the series lacks (the series it was drawn on is not there), or a case image that is not a DICOM series"),
    _c("E627", "no ROI or segment of a DICOM mask matches the selector", "ops/dicom.py", "the message lists the ROI names (RTSTRUCT) or segment numbers and labels (SEG)"),
    _c("E628", "several ROIs or segments of a DICOM mask match the selector", "ops/dicom.py", "the message lists the matches; narrow the pattern"),
    _c("E629", "an RTSTRUCT ROI has no closed planar contour", "ops/dicom.py", "an empty contour sequence, or contours of fewer than 3 points"),
    _c("E630", "an RTSTRUCT contour lies outside the image", "ops/dicom.py", "a slice outside the series, or points beyond the image border: the contour would be cut"),
    _c("E631", "several image series in a DICOM folder match the series rule", "ops/dicom.py", "the message lists every series (UID, modality, description); pick one with `modality`, `series_description` or `folder#<SeriesInstanceUID>`"),
    _c("E632", "no image series in a DICOM folder matches the series rule", "ops/dicom.py", "the message lists every series in the folder"),
    _c("E633", "a DICOM series mixes slice orientations", "ops/cohorts.py"),
    _c("E634", "a DICOM mask file is neither an RTSTRUCT nor a SEG", "ops/dicom.py"),
    _c("E635", "an RTSTRUCT contour does not lie in an image slice", "ops/dicom.py", "its points lie between the series' slice positions, or in another plane"),
    _c("W636", "slice thickness varies across the cohort beyond its tolerance and the features do not resample", "ops/features.py",
       "the cohort's `thickness_tolerance` (default 0.5 mm); set `resample` on the feature stage, or accept the variation knowingly"),
    _c("E640", "a built-in dataset cannot be loaded", "ops/datasets.py", "bad rows, a package that is not installed, a row range with no cases"),
    _c("E641", "a clinical column is not numeric", "ops/datasets.py"),
    _c("E642", "the outcome has a single class", _EVAL),
    _c("E643", "too few cases for the cross-validation", _EVAL, "fewer cases per class, or patients, than folds; fewer than two sites for leave-one-site-out"),
    _c("E644", "patients in both the training and the external cohort", _EVAL),
    _c("E645", "external cases with the same content as training cases", _EVAL),
    _c("E646", "the features cannot be built for the validation", "ops/evaluation_run.py backends/refit.py ops/datasets.py ops/image_patches.py", "no feature table, or a tabular table that cannot be re-extracted under a perturbation"),
    _c("E647", "cases without an outcome in the validation", _EVAL),
    _c("E648", "fitting a model failed", _EVAL, "the message names the cohort and the step"),
    _c("E649", "a patient's cases lie in different cross-validation groups", _EVAL, "they would straddle a split"),
    _c("E650", "an image file holds less voxel data than its header implies", "ops/cohorts.py",
       "a truncated file or gzip stream, or a detached header (`.nhdr`, `.mhd`, `.hdr`) whose data file is missing or short"),
    _c("E651", "a DICOM series with missing slices or uneven slice spacing", "ops/cohorts.py",
       "the message gives the slice positions and how many slices are missing"),
    _c("E652", "a select stage's inner cross-validation has more folds than a training set can hold",
       "checks/folds.py ops/evaluation_run.py",
       "lasso's `cv`: the message names the setting and the numbers, the hint the largest value that works; "
       "`radlang check` finds it where the cohort's size is known"),
    _c("E653", "a PyRadiomics params file breaks PyRadiomics' schema", "checks/data.py ops/features.py",
       "one diagnostic per problem; `radlang check` adds a \"did you mean\""),
    _c("E660", "a joined table lacks rows for some cases", "ops/join.py backends/refit.py", "the message names the table and the case ids"),
    _c("E661", "duplicate ids in a joined table", "ops/join.py backends/refit.py", "a table joined to another holds one row per case (or patient) id"),
    _c("E662", "the same column in two joined tables", "ops/join.py backends/refit.py", "`prefix: true` names each column `<table>.<column>`"),
    _c("E663", "new cases lack feature columns the saved model needs", "predict.py", "`radlang predict`"),
    _c("E664", "new images of another dimension or voxel spacing than the training images", "predict.py", "`radlang predict`, when the features do not resample"),
    _c("E665", "a case has no mask (or an empty one) to centre its image patch on or add as a channel", "ops/image_patches.py", "`crop: whole` centres on the image"),
    _c("W670", "a cache entry failed verification; the stage is recomputed", "backends/cache.py",
       "its bytes differ from the SHA-256 recorded with it, or no reader accepts them; the entry is rewritten"),
    _c("W671", "the file-hash index failed verification; it is rebuilt", "backends/cache.py",
       "`<out>/.cache/file-hashes.json`: every input file is hashed again"),
    _c("W672", "an output file changed since radlang wrote it; it is written again", "ops/features.py ops/predict_mask.py",
       "a feature table, or a predicted mask (predicted again)"),
    _c("W673", "a run that died held the output folder; this run takes it over", "backends/executor.py",
       "the warning names the dead run's pid, host and spec"),
    _c("E674", "the ComBat batch or covariate column is not in the cohort", "ops/harmonise.py", "a site column (`site:`) or a clinical column, in the training and the external cohort"),
    _c("E675", "a single batch for ComBat", "ops/harmonise.py", "every case of the cohort has the same batch"),
    _c("E676", "a batch with fewer cases than ComBat needs", "ops/harmonise.py", "`min_cases` (at least 2: a batch's scale is a variance), in the cohort or in a training fold"),
    _c("E677", "a held-out batch unseen in training, with `unseen: refuse`", "ops/harmonise.py", "leave-one-site-out, an external site, or a fold that trains on no case of a batch; the hint offers `unseen: transductive`"),
    _c("E678", "cases without a ComBat batch or covariate value", "ops/harmonise.py"),
    _c("E679", "too few held-out cases of an unseen batch to estimate it transductively", "ops/harmonise.py"),
    _c("E690", "federated execution is not implemented", "ops/fedavg.py", "`radlang run` stops at a federated stage"),
    _c("W690", "federated execution is not implemented", "ops/fedavg.py", "`radlang check` warns: the stage is checked and planned, but will not run"),
    # usage
    _c("E701", "an unreadable input file or a bad command-line option", "cli.py compiler.py"),
    _c("E702", "`render` cannot write the script where asked", "backends/render/script.py",
       "a .py name that is a folder, a missing or read-only folder, a review folder that is a file"),
    _c("E704", "operator code cannot be inlined into a standalone script", "backends/render/script.py"),
    _c("E705", "a value cannot be written as a Python literal", "backends/render/literals.py"),
    _c("E706", "the rendered script is not valid Python", "backends/render/script.py", "an internal error"),
    _c("E707", "the review folder holds files that a render did not write", "backends/render/script.py",
       "give `render -o` a new or empty folder"),
    _c("E710", "the output folder is in use by another `radlang run`", "cli.py",
       "the message names the folder and the run holding it (pid, host, spec); `--wait` waits for it instead"),
    _c("E715", "`run --executor`: the Dask scheduler cannot be reached", "backends/executors/dask.py",
       "within 5 s; checked before the output folder is created"),
    _c("E716", "`run --executor`: not an executor", "backends/executors/__init__.py",
       "`local`, `dask` or a scheduler address `tcp://HOST:PORT`"),
    _c("E717", "`run --executor`: dask.distributed is not installed", "backends/executors/__init__.py",
       "`dask[distributed]` is in the `science` extra"),
    _c("E718", "`run --executor`: the Dask scheduler has no workers", "backends/executors/dask.py",
       "none joined within 5 s"),
    _c("E719", "`run --executor`: the Dask workers cannot import radlang, or run another version of it",
       "backends/executors/dask.py"),
    _c("E720", "the out folder is an existing file", "backends/outdir.py"),
    _c("E721", "the out folder is the spec's or the current folder, or above them", "backends/outdir.py", "needs `--force`"),
    _c("E722", "the out folder is not empty and was not made by radlang", "backends/outdir.py", "needs `--force`"),
    _c("E723", "the out folder cannot be created or written", "backends/outdir.py"),
    _c("E730", "`radlang predict`: not a validation stage of the study", "predict.py"),
    _c("E731", "`radlang predict`: no saved model for the stage in the out folder", "predict.py", "run the study first, with the same `--out`"),
    _c("E732", "`radlang predict`: the saved model does not match the sha256 in its card", "predict.py", "it changed after the run"),
    _c("E733", "`radlang predict`: the training cohort reads no file, so new cases cannot be read like it", "predict.py"),
    _c("E735", "`radlang predict`: the saved model names a type radlang does not load", "predict.py", "only scikit-learn's, NumPy's and radlang's own types are trusted"),
    _c("E737", "`radlang predict`: the predictions file cannot be written there", "predict.py"),
)}
