"""Every diagnostic code radlang raises, with its one meaning: the registry of codes.

A code is a letter and three digits. The first digit is the phase that finds the problem (`PHASES`);
`E` is an error, `W` a warning. A number has one meaning. Where one number carries both letters, the two
are the same problem at two severities, and share one meaning: W690 is a federated client that failed in a round
that went on without it (`min_clients` allowed it), E690 the same failure when too few clients were left.

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
    _c("E203", "the cohort lacks what the stage needs", "checks/bind.py ops/segmentation_metrics.py ops/supervised.py ops/split.py ops/expression.py", "a site, mask or outcome column"),
    _c("E204", "`like` across operators", "checks/bind.py"),
    _c("E205", "missing input", "checks/bind.py"),
    _c("E206", "too many positional arguments", "checks/bind.py"),
    _c("E207", "the image does not fit its mask or segmentation", "ops/features.py ops/segment.py", "image and mask from different cohorts; several channels where one is segmented"),
    _c("E208", "nested statements in an operator that takes none", "compiler.py"),
    _c("E209", "the wrong kind of network for the stage", "ops/explain_cnn.py ops/netio.py", "Grad-CAM needs a convolutional classifier; segmenting needs a trained segmentation network"),
    _c("E210", "the network's dimensions (2D/3D) do not match the images", "ops/explain_cnn.py ops/netio.py ops/supervised.py"),
    _c("E211", "the network's input channels do not match the cohort's image columns", "ops/explain_cnn.py ops/netio.py ops/supervised.py"),
    _c("E212", "a classification network on an outcome that is not binary or multiclass", "ops/supervised.py"),
    _c("E241", "the selector does not support the outcome type", "ops/select.py"),
    _c("E242", "inputs come from different cohorts", "ops/validate.py registry.py ops/split.py", "features and target, a split and model, or cross-validation groups and model"),
    _c("E243", "`icc` perturbations on a tabular feature table", "ops/select.py", "perturbations re-extract features from images"),
    _c("E244", "the model cannot fit the outcome type", "ops/models.py ops/net_models.py ops/late_fusion.py ops/multitask.py"),
    _c("E245", "a metric not defined for the outcome type", "ops/validate.py", "the hint lists the metrics for that outcome"),
    _c("E246", "an operating threshold on an outcome that is not binary", "ops/validate.py"),
    _c("E247", "validation by site on a cohort without a site column", "ops/validate.py ops/split.py", "`leave_one_site_out`, or cross-validation groups by site"),
    _c("E248", "the external cohort's outcome does not match the model's", "ops/validate.py"),
    _c("E250", "a join of tables from two cohorts that both carry outcomes", "ops/join.py ops/association.py", "join (or associate) tables of one cohort, or an attribute table (a `table` without an outcome)"),
    _c("E251", "a 3D image patch cut from a cohort of 2D images", "ops/image_patches.py"),
    _c("E252", "image patches centred on (or holding) a mask the cohort does not have", "ops/image_patches.py", "`crop: whole` centres on the image"),
    _c("E253", "a join fuses a 2D image branch with a 3D one without a stated reduction", "ops/join.py", "a network model reads one patch shape; reduce the 3D branch to a slice: `patches(...) { dims: 2, slices: center | max_area | mip }`"),
    _c("E254", "a network model's network does not fit its image input", "ops/net_models.py", "dimensions, input channels, or a network without an image backbone"),
    _c("E255", "image patches smaller than the network backbone's total downsampling", "ops/net_models.py", "its deepest feature map would be empty (DenseNet121: a run-time error), one cell of padding (ResNet, SegResNet), or one voxel (a UNet with instance normalisation, which needs twice its strides' product)"),
    _c("E256", "a network model without a fixed-size image input", "ops/net_models.py", "its input needs a `patches` table (joined with the tabular branch, if any)"),
    _c("E257", "ComBat by site on a cohort without a site column", "ops/harmonise.py", "or name another batch column, e.g. `batch: scanner`"),
    _c("E258", "the outcome as a ComBat covariate", "ops/harmonise.py", "the held-out cases' outcomes are unknown when their features are harmonised: preserving it would need the test labels"),
    _c("E260", "a model needs scikit-survival, which is not installed", "ops/models.py", "random_survival_forest and gradient_boosted_survival; scikit-survival is GPL-3, the optional `survival-gpl` extra"),
    _c("E266", "models in one comparison validated on different cohorts", "ops/compare.py", "`compare` pairs the predictions of the same cases"),
    _c("E267", "a comparison of outcomes it has no metric for, or of different outcome kinds", "ops/compare.py", "`compare` takes binary (AUC) or survival (C-index) evaluations"),
    _c("E268", "evaluations in one comparison that do not hold out one shared split", "ops/compare.py", "declare the folds once with `split s = folds(train)` and give each `evaluate` `split: s`"),
    _c("E278", "an image preprocessing stage on a cohort with several image channels", "ops/preprocess.py", "one cohort per sequence, each preprocessed on its own"),
    _c("E279", "a preprocessing stage takes its statistics within the ROI of a cohort without a mask", "ops/preprocess.py", "`within: roi` on `zscore` or `nyul`; `within: body` or `image` needs none"),
    _c("E281", "a SHAP explanation of a stage whose model it cannot explain", "ops/explain_shap.py",
       "not an `evaluate` stage of a `model` (a `train` stage's network: Grad-CAM explains it), a stacked model with a network branch, or a multiclass outcome"),
    _c("E282", "a SHAP setting for another kind of model", "ops/explain_shap.py",
       "`explainer: linear` on a network; `regions` or `group_by: channel` on a scikit-learn model"),
    _c("E283", "SHAP image regions that do not cut the network's patch", "ops/explain_shap.py",
       "`regions` needs one number per patch axis, each from 1 to that axis' voxels"),
    _c("E285", "a federated model that cannot fit the outcome", "ops/fedavg.py", "`cox` fits survival, `logistic` binary or multiclass, `linear` continuous outcomes"),
    _c("E286", "a federated stage's cohort has no site column", "ops/fedavg.py", "the training or the test cohort: each site is a client"),
    _c("E287", "a federated stage's test cohort has another outcome than its training cohort", "ops/fedavg.py"),
    _c("E288", "a federated stage tests on its training cohort", "ops/fedavg.py", "name a held-out cohort of the same sites as `test`"),
    _c("E291", "a multi-task head without a target column", "ops/multitask.py", "a head names `target: <cohort>.outcome`, or `target: <cohort>.clinical` with `column:` (survival: `time:` and `event:`)"),
    _c("E292", "heads of one multi-task network on different cohorts", "ops/multitask.py", "every head reads the cohort whose images the network reads"),
    _c("E293", "no head, or several, of a multi-task model predict the model's target", "ops/multitask.py", "exactly one head is on `<cohort>.outcome`: the primary head that `evaluate` measures"),
    _c("E294", "a multi-task head whose kind does not fit its target", "ops/multitask.py", "a binary head on a multiclass outcome, or a target that is neither the outcome nor a clinical column"),
    _c("E295", "two heads of a multi-task model with one name", "ops/multitask.py"),
    _c("E296", "DANN on a cohort without a site column", "ops/dann.py", "the domain head predicts the site; or train a `cnn`"),
    _c("E297", "DANN on a cohort with one site", "ops/dann.py", "a phantom with `sites: 1`, or a manifest whose site column lists one site (`check` reads it); there is nothing to adapt across"),
    # settings
    _c("E301", "unknown setting", "checks/settings.py compiler.py ops/models.py", "also a hyper-parameter to search that the model does not have; with \"did you mean\""),
    _c("E302", "a setting out of range", "checks/settings.py ops/datasets.py ops/multisite.py ops/explain_cnn.py ops/networks.py ops/predict_mask.py"),
    _c("E303", "a wrong or missing unit", "checks/settings.py"),
    _c("E304", "a setting of the wrong type, or a value not allowed", "checks/settings.py compiler.py ops/validate.py ops/split.py"),
    _c("E305", "missing required setting", "checks/settings.py ops/models.py ops/select.py ops/validate.py ops/supervised.py"),
    _c("E306", "settings that contradict each other", "ops/cohorts.py ops/features.py checks/settings.py ops/supervised.py ops/late_fusion.py", "also two settings of which only one may be given, such as `bin_width` and `bin_count`"),
    _c("E307", "a setting given twice", "checks/bind.py"),
    _c("E308", "a path the study would write resolves outside its out folder", "checks/settings.py", "today the phantom `prefix`: a plain name"),
    _c("E309", "a stacking meta-model that would be trained on in-fold predictions", "ops/late_fusion.py", "`cv` below 2; out-of-fold predictions from inner folds, or `meta: average`"),
    _c("E310", "late-fusion weights that do not give one non-negative weight per branch", "ops/late_fusion.py"),
    _c("E311", "a late-fusion branch fit on another cohort than the stacked model's target", "ops/late_fusion.py"),
    _c("E313", "the ComBat batch column is also a covariate", "ops/harmonise.py", "a batch effect cannot be removed and preserved at once"),
    _c("E314", "a ComBat covariate listed twice", "ops/harmonise.py"),
    _c("E315", "survival metrics at horizons without `horizons`", "ops/validate.py", "td_auc, brier, ibs and calibration of a survival model"),
    _c("E316", "`horizons` on an evaluation that is not of a survival model", "ops/validate.py"),
    _c("E317", "the integrated Brier score with fewer than two horizons", "ops/validate.py"),
    _c("E319", "`cv` or `groups` given together with a shared split", "ops/validate.py", "the `split` stage decides the folds: drop `cv` and `groups` from the `evaluate`"),
    _c("E320", "a gene-set stage without gene sets, or with a set named twice", "ops/pathways.py", "`singscore` needs `sets` or `gmt`"),
    _c("E321", "a gene set in the spec with fewer genes than `min_genes`", "ops/pathways.py"),
    _c("E322", "`l1_ratio` without an elastic-net penalty", "ops/models.py", "set `penalty: elasticnet`"),
    _c("E323", "a cohort's `site` names a scanner attribute radlang does not read", "ops/cohorts.py", "`site: scanner.<name>` takes one of manufacturer, model, field_strength, kvp, kernel, slice_thickness, pixel_spacing"),
    _c("E327", "an image resampled twice: by a `resample` stage and by the feature stage's `resample`", "ops/features.py", "resample once"),
    _c("E331", "`output: log_odds` on an outcome that is not binary", "ops/explain_shap.py"),
    _c("E335", "a federated stage's clients are not the cohort's sites", "ops/fedavg.py", "`by:` names another attribute than `site`"),
    _c("E345", "a multi-task model with fewer than two heads", "ops/multitask.py", "a single target is a `cnn`"),
    _c("E346", "a survival model's grid search given a `scoring`", "ops/models.py", "its inner CV scores candidates by Harrell's C"),
    _c("E350", "a join fuses a 2D slice of a 3D volume, reduced without a stated `slices`, with another image branch", "ops/join.py", "state the reduction: `slices: center`, `max_area` or `mip`"),
    _c("E351", "joined image branches with different patch sizes", "ops/join.py", "joined image branches are stacked as the channels of one patch"),
    _c("E352", "a slice reduction (`slices`) of a cohort of 2D images", "ops/image_patches.py", "there is no volume to reduce"),
    _c("E353", "a segmentation head on a network without a decoder path", "ops/multitask.py", "DenseNet121 and ResNet end in their deepest feature map; a `unet` or `segresnet` decodes back to the patch through skip connections"),
    _c("E354", "a segmentation head whose input does not hold the mask's crop", "ops/multitask.py", "`patches(...) { mask_target: true }` adds it as a target, never an input"),
    _c("E355", "a segmentation head's patch not a multiple of the backbone's total downsampling", "ops/multitask.py", "the decoder could not give back the patch's size"),
    _c("E360", "a fused branch describes other cases than the join's rows", "ops/join.py",
       "an image branch or a table of another cohort of cases (images or an outcome), or cases joined to an attribute table's rows"),
    _c("E361", "a joined tabular branch has no row keyed by any of the rows' case (or patient) ids", "ops/join.py",
       "found by `check` from the table's and the manifest's ids; the hint names `by:` or the table's `id:` column"),
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
    _c("E523", "a selector re-extracts its input through an image stage that a validation refits in each training fold", "checks/design.py",
       "perturbations or a retest cohort of `icc` through `nyul`: the re-extractions are made once, with landmarks fit on every case"),
    _c("E526", "a SHAP background set larger than the training data", "ops/explain_shap.py", "the hint gives the largest background"),
    _c("E527", "the SHAP explainer's budget does not fit the model's features", "ops/explain_shap.py", "`exact` on more than 16 features or with `max_evals` below 2^features, or a permutation `max_evals` below 2 x features + 1"),
    _c("E528", "`explainer: linear` on a model that is not linear in its features", "ops/explain_shap.py", "checked on the training cases"),
    _c("E529", "a stage upstream of a federated stage is fit on the pooled cases of its sites", "checks/privacy.py",
       "a selector, scaler, ComBat or model fit across sites: make it per-site or federated"),
    _c("E530", "a stage fits on or resamples the pooled cases of a federated cohort", "checks/privacy.py",
       "a validation's cross-validation or bootstrap, or a model, on the cohort a federated stage keeps apart by site"),
    _c("E536", "a multi-task head reads a column its validation's cohort does not have", "ops/multitask.py", "found when `evaluate` reads the cohort tables, before any fold runs"),
    _c("E537", "a multi-task head's target holds values its kind cannot take", "ops/multitask.py", "a binary head's values are 0 or 1, a multiclass head's integers, a survival head's time positive and event 0 or 1; a blank is missing (masked), not wrong"),
    _c("E540", "a site-adapted model (DANN) validated with folds that train on the held-out cases' own sites", "ops/validate.py", "k-fold puts every site's labels in training; `leave_one_site_out`, or `cv: none` with an external site"),
    # runtime: radiomics data (cohorts and per-case feature extraction)
    _c("E541", "a federated stage's model input is not a network model it can train", "ops/fedavg.py", "`fedavg` trains a `cnn` or `multitask` model, or a feature table with its target"),
    _c("E542", "a federated network model given a setting or input the network declares itself", "ops/fedavg.py", "`model`, `lr` or `target` with a `cnn` or `multitask` input: its own target, optimiser and learning rate apply"),
    _c("E543", "a federated network trained in batches of one case", "ops/fedavg.py", "batch normalisation needs two cases per step"),
    _c("E544", "a cohort listed twice among a federation's client and test cohorts", "ops/fedavg.py"),
    _c("E545", "a federation's client cohorts differ in outcome or feature columns", "ops/fedavg.py checks/privacy.py", "found by `check` from the outcomes, image columns and declared columns (`clinical`, `columns`, `features`), or by the run from each client's feature table, naming the cohort and the columns"),
    _c("E546", "a federation of fewer than two client cohorts", "ops/fedavg.py"),
    _c("E547", "a federated stage whose clients or target are not cohort outcomes", "ops/fedavg.py", "a `clients` or `tests` entry other than `<cohort>.outcome`, or a feature table with neither `target` nor `clients`"),
    _c("E548", "a federated stage's features come from a cohort that is not one of its clients", "ops/fedavg.py", "the feature recipe is declared on one client cohort and computed at every client"),
    _c("E549", "a federated stage's test cohorts do not pair with its client cohorts", "ops/fedavg.py", "`tests` without `clients`, of another length, or together with `test`"),
    _c("E601", "a cohort's case data is missing or malformed", "backends/glue.py ops/features.py ops/cohorts.py checks/data.py", "a file not found or not given, an empty or repeated case id, a missing or bad outcome (stray labels name their cases); `radlang check` finds a missing manifest, column or file"),
    _c("E602", "an unreadable or corrupt file", "ops/cohorts.py ops/dicom.py ops/features.py ops/netio.py checks/data.py ops/image_patches.py ops/preprocess.py", "an image, a mask, a PyRadiomics params file; the message names case, column and file"),
    _c("E603", "the cohort table lacks the image or mask column the feature stage needs", "ops/features.py ops/preprocess.py"),
    _c("E604", "the mask's geometry differs from the image's", "ops/segment.py ops/features.py", "size, spacing, origin or direction; `on_mismatch: resample` on `mask` resamples it. An image of another number of dimensions than its mask is named itself"),
    _c("E605", "the region of interest is empty", "ops/segment.py", "an empty mask, or a segmentation that selects no voxel"),
    _c("E606", "the label is absent from the mask", "ops/segment.py", "the message lists the labels present"),
    _c("E607", "PyRadiomics failed on a case", "ops/features.py"),
    _c("E608", "PyRadiomics returned NaN or infinite features", "ops/features.py", "the message names the features"),
    _c("E610", "a federated cohort without sites", "ops/fedavg.py", "no site column at run time, or cases with an empty site: the message names them"),
    _c("E611", "a federation of one site", "ops/fedavg.py", "the message names the site; train centrally instead"),
    _c("E612", "a site without cases", "ops/fedavg.py", "no training case with features, or test cases at a site that has no training case"),
    _c("E613", "a site with one outcome class, or no event", "ops/fedavg.py", "its local training is degenerate: the message names the site"),
    _c("E614", "a federated case with a missing or non-finite feature value", "ops/fedavg.py",
       "a site's NaN would reach the federation's mean and SD and every site's training: the message names the cohort, its file, the site, the cases and the columns"),
    # runtime: deep learning (network stages)
    _c("E620", "a case's image channels or mask are not on one grid", "ops/netio.py ops/image_patches.py",
       "co-register them before training; `check` finds it from the image headers of a manifest's files"),
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
    _c("E640", "a built-in dataset cannot be loaded", "ops/datasets.py ops/fed_tcga_brca.py", "bad rows, a package that is not installed, a row range with no cases"),
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
    _c("E654", "a preprocessing step meant for one modality on an image whose DICOM header states another", "ops/preprocess.py",
       "`n4` and `nyul` are for MR, `hu_clip` for CT; the message names the case, the file and the modality"),
    _c("E655", "N4 bias-field correction met non-positive intensities where it fits the field", "ops/preprocess.py",
       "the bias field is multiplicative: a CT in HU, or a zero background with `within: image`"),
    _c("E656", "intensities constant within the region a z-score normalises by", "ops/preprocess.py", "the standard deviation is 0"),
    _c("E657", "an image whose Nyúl landmarks do not increase", "ops/preprocess.py", "too few distinct intensities within the region"),
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
    _c("W672", "an output file changed since radlang wrote it; it is written again", "ops/features.py ops/predict_mask.py ops/preprocess.py",
       "a feature table, a predicted mask (predicted again), or a preprocessed image (computed again)"),
    _c("W673", "a run that died held the output folder; this run takes it over", "backends/executor.py",
       "the warning names the dead run's pid, host and spec"),
    _c("E674", "the ComBat batch or covariate column is not in the cohort", "ops/harmonise.py", "a site column (`site:`) or a clinical column, in the training and the external cohort"),
    _c("E675", "a single batch for ComBat", "ops/harmonise.py", "every case of the cohort has the same batch"),
    _c("E676", "a batch with fewer cases than ComBat needs", "ops/harmonise.py", "`min_cases` (at least 2: a batch's scale is a variance), in the cohort or in a training fold"),
    _c("E677", "a held-out batch unseen in training, with `unseen: refuse`", "ops/harmonise.py", "leave-one-site-out, an external site, or a fold that trains on no case of a batch; the hint offers `unseen: transductive`"),
    _c("E678", "cases without a ComBat batch or covariate value", "ops/harmonise.py"),
    _c("E679", "too few held-out cases of an unseen batch to estimate it transductively", "ops/harmonise.py"),
    _c("E680", "a survival horizon outside follow-up", "ops/evaluation_run.py checks/horizons.py", "beyond the last follow-up of the cohort, or outside the follow-up of a fold's held-out cases or of the external cohort; names the time column and the cases"),
    _c("E690", "a federated client failed in a round", "ops/fedavg.py",
       "fewer clients than `min_clients` succeeded, so the round stops: the message names the round, the sites and their errors"),
    _c("W690", "a federated client failed in a round", "ops/fedavg.py",
       "the round went on without it, as `min_clients` allows: the warning names the round and the site"),
    _c("E692", "a shared split cannot be drawn on its cohort", "ops/split.py", "fewer patients than folds, fewer cases of a class than stratified folds, fewer than two sites"),
    _c("E693", "cases of a validation that its shared split assigns to no fold", "ops/split.py"),
    _c("E694", "genes of a gene set are missing from the expression table", "ops/pathways.py", "an error when fewer than `min_genes` remain: the message names the set, the counts and the missing genes"),
    _c("W694", "genes of a gene set are missing from the expression table", "ops/pathways.py", "a warning with the counts: the set is scored on the genes present (at least `min_genes`)"),
    _c("E695", "a GMT file of gene sets is missing or malformed", "ops/pathways.py", "the message names the file and the line; `radlang check` finds it too"),
    _c("E696", "an expression table with missing values", "ops/pathways.py", "a rank-based single-sample score needs every gene of a sample; the message names the samples and genes"),
    _c("E697", "an association of a table that is fit inside validation folds", "ops/association.py", "associate the tables before selection"),
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
    _c("E735", "`radlang predict`: the saved model names a type radlang does not load", "predict.py", "only scikit-learn's, scikit-survival's, NumPy's, SciPy's and radlang's own types are trusted"),
    _c("E737", "`radlang predict`: the predictions file cannot be written there", "predict.py"),
    _c("E738", "`radlang report`: the folder is not the out folder of a finished run", "review/report.py", "it lacks manifest.json or run.json"),
    _c("E739", "`radlang report`: the report file cannot be written there", "review/report.py"),
    _c("E750", "`render --target flower`: the study has no federated stage", "backends/render/flower.py"),
    _c("E751", "`render --target flower`: the study has several federated stages", "backends/render/flower.py", "one Flower app renders one stage"),
    _c("E752", "`render --target flower`: the app folder is a file", "backends/render/flower.py"),
    _c("E753", "a Flower deployment's SuperLink cannot be reached", "backends/render/flower_loopback.py",
       "the SuperNodes gave up after their bounded retries; the message names the address and the sites"),
    _c("E754", "a Flower deployment did not finish", "backends/render/flower_loopback.py",
       "the SuperLink did not start, the run ended without a result, or it ran past its time limit; the message carries the logs"),
)}
