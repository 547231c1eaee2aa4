"""Cohort operators: where cases, images, masks and outcomes come from.

Every cohort stage produces the COHORT TABLE (a pandas DataFrame, one row per case, in manifest
order): `case_id`, `patient_id`, `image` (or `image.<column>` per channel), `mask`, `outcome`
(or `time` + `event`), `site`, `clinical.<column>`; `df.attrs["radlang"]` describes it.

- `manifest("file.csv")`: a CSV whose paths are relative to it (NIfTI, NRRD, MHA, DICOM series folder).
- `phantom(cases)`: seedable synthetic CT-like volumes with one lesion each, written as NIfTI + manifest.

The implementations below are self-contained (see radlang/registry.py): plain data in, plain data out.
Each operator's `run` (at the end of its section) is its run-time glue: where files live, caching, and
turning problems into E6xx diagnostics through radlang/backends/glue.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from radlang.diagnostics import label_cases
from radlang.ops.dicom import (
    contour_points,
    dicom_mask,
    is_dicom_file,
    name_matches,
    pick_series,
    rasterise_contours,
    rtstruct_mask,
    scanner_attributes,
    scanner_values,
    seg_mask,
    series_candidates,
    series_files,
    series_headers,
    split_ref,
)
from radlang.registry import Operator, register
from radlang.types import OUTCOME_KINDS, RType
from radlang.units import Intensity, Length
from radlang.values import CallValue, CastValue, Settings, Sym, outside_out


class OutcomeSpec(Settings):
    kind: Literal["binary", "multiclass", "continuous", "survival"]
    column: str | None = None          # binary / multiclass / continuous
    time: str | None = None            # survival
    event: str | None = None           # survival
    positive: str | int | None = None  # binary: the value that counts as the event (default: 1 / the larger label)


def parse_outcome(v):
    """`malignant as binary`, `grade as multiclass`, `survival(time: os_months, event: died)`."""
    if v is None or isinstance(v, OutcomeSpec):
        return v
    if isinstance(v, CastValue):
        kind = v.kind.name if isinstance(v.kind, CallValue) else str(v.kind)
        extra = dict(v.kind.kwargs) if isinstance(v.kind, CallValue) else {}
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"unknown outcome kind `{kind}`; use one of {', '.join(OUTCOME_KINDS)}")
        if kind == "survival":
            raise ValueError("write a survival outcome as `survival(time: <column>, event: <column>)`")
        return OutcomeSpec(kind=kind, column=str(v.value), **extra)
    if isinstance(v, CallValue) and v.name == "survival":
        args = dict(zip(("time", "event"), v.args))
        args.update(v.kwargs)
        if set(args) - {"time", "event"} or len(args) != 2:
            raise ValueError("`survival` takes `time` and `event` columns: survival(time: os_months, event: died)")
        return OutcomeSpec(kind="survival", time=str(args["time"]), event=str(args["event"]))
    if isinstance(v, dict):
        return OutcomeSpec(**v)
    raise ValueError("write the outcome as `<column> as binary|multiclass|continuous` or `survival(time: <col>, event: <col>)`")


class ManifestSettings(Settings):
    path: str = Field(description="CSV file with one row per case; paths inside it are relative to it")
    id: str = Field("case_id", description="column with the case id")
    patient: str | None = Field(None, description="column with the patient id (cases of one patient never straddle a split); default: the case id")
    image: str | list[str] = Field("image", description="column(s) holding image paths (NIfTI, NRRD, MHA, or a DICOM series folder); several = channels")
    mask: str | None = Field(None, description="column holding a mask path")
    outcome: OutcomeSpec | None = Field(None, description="`<column> as binary` or `survival(time: <col>, event: <col>)`")
    site: str | None = Field(None, description="column with the acquisition site / hospital")
    clinical: list[str] = Field(default_factory=list, description="tabular covariate columns")
    dims: Literal[2, 3] = Field(3, description="image dimensionality")
    modality: str | None = Field(None, description="DICOM: the Modality (CT, MR, PT, ...) of the series to read when an image folder holds several")
    series_description: str | None = Field(None, description="DICOM: a SeriesDescription pattern (globs, `|` between alternatives, any case) that picks the series")
    roi: str | None = Field(None, description="DICOM masks: the RTSTRUCT ROI name pattern (e.g. \"GTV*|gtv_1\") or the SEG segment label or number; a mask value `file#<pattern>` overrides it")
    fraction: float = Field(0.5, gt=0, le=1, description="DICOM-SEG: a fractional segment is the ROI where its value is at least this")
    scanner: list[str] = Field(
        default_factory=list, description="DICOM scanner attributes to carry as cohort columns `scanner.<name>` (`site: scanner.<name>` uses one as the site)")
    thickness_tolerance: Length = Field(0.5, ge=0, description="DICOM: warn (W636) when slice thicknesses differ by more than this and the features do not resample")

    _outcome = field_validator("outcome", mode="before")(lambda cls, v: parse_outcome(v))

    @field_validator("image", "id", "patient", "mask", "site", mode="before")
    @classmethod
    def _names(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else (str(v) if isinstance(v, Sym) else v)

    @field_validator("clinical", "scanner", mode="before")
    @classmethod
    def _clinical(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else v

    @field_validator("scanner")
    @classmethod
    def _scanner(cls, v):
        unknown = [a for a in v if a not in scanner_attributes()]
        if unknown:
            raise ValueError(f"unknown scanner attribute(s) {', '.join(unknown)}; known: {', '.join(scanner_attributes())}")
        return v

    @field_validator("modality", "series_description", "roi", mode="before")
    @classmethod
    def _text(cls, v):
        return str(v) if isinstance(v, Sym | int) else v


def cohort_type(ctx) -> RType:
    s = ctx.settings
    images = s.image if isinstance(s.image, list) else [s.image]
    if isinstance(s.image, list) and len(set(images)) != len(images):
        ctx.error("E306", "the same image column is listed twice", setting="image")
    if s.site and str(s.site).startswith("scanner.") and str(s.site)[len("scanner."):] not in scanner_attributes():
        ctx.error("E323", f"`{s.site}` is not a scanner attribute; use one of: {', '.join('scanner.' + a for a in scanner_attributes())}",
                  setting="site")
    return RType("Cohort", cohort=ctx.stmt.name, outcome=s.outcome.kind if s.outcome else None, dims=s.dims,
                 channels=len(images), has_site=s.site is not None, has_mask=s.mask is not None, detail=ctx.stmt.op.name)


# --------------------------------------------------------------------------------------------------
# Self-contained implementation: manifest -> cohort table
# --------------------------------------------------------------------------------------------------

def read_image_header(path):
    """Read an image's geometry without its pixels. A folder (or `folder#<SeriesInstanceUID>`) is a DICOM
    series. Returns a dict (size, spacing, origin, direction, dimension) or raises with a readable message."""
    import os

    import SimpleITK as sitk

    if os.path.isdir(split_ref(path)[0]):
        files = series_files(path)
        if not files:
            raise ValueError("the folder holds no DICOM series")
        heads = []
        for f in files[:2]:
            r = sitk.ImageFileReader()
            r.SetFileName(f)
            r.ReadImageInformation()
            heads.append(r)
        r = heads[0]
        size, spacing = list(r.GetSize()), list(r.GetSpacing())
        if len(size) == 3:
            size[2] = len(files)
            if len(heads) == 2:   # the slice spacing is the distance between the first two slices (sorted by position)
                spacing[2] = sum((a - b) ** 2 for a, b in zip(heads[1].GetOrigin(), r.GetOrigin())) ** 0.5
        return {"size": size, "spacing": spacing, "origin": list(r.GetOrigin()),
                "direction": list(r.GetDirection()), "dimension": r.GetDimension(), "series": len(files)}
    r = sitk.ImageFileReader()
    r.SetFileName(str(path))
    r.ReadImageInformation()
    return {"size": list(r.GetSize()), "spacing": list(r.GetSpacing()), "origin": list(r.GetOrigin()),
            "direction": list(r.GetDirection()), "dimension": r.GetDimension()}


def gzip_payload_size(path, offset=0, expected=None):
    """The decompressed size of the gzip data in `path` from byte `offset` (one or more gzip members).
    Returns (size, complete): `complete` is False when the stream stops before a member's end (a truncated
    file) or is corrupt. When `expected` is given and the last member's trailer (ISIZE, the size modulo
    2**32) records it, the stream is taken as complete without decompressing it."""
    import os
    import zlib

    with open(path, "rb") as fh:
        if expected is not None and os.path.getsize(path) - offset >= 18:
            fh.seek(-4, os.SEEK_END)
            if int.from_bytes(fh.read(4), "little") == expected % 2 ** 32:
                return expected, True
        fh.seek(offset)
        d = zlib.decompressobj(31)
        n, started = 0, False
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                while chunk:
                    if not started and not chunk.strip(b"\0"):
                        chunk = b""          # zero padding after the last member
                        break
                    n += len(d.decompress(chunk, 1 << 24))
                    started = True
                    if d.eof:
                        chunk, d, started = d.unused_data, zlib.decompressobj(31), False
                    else:
                        chunk = d.unconsumed_tail
        except zlib.error:
            return n, False
    return n, not started


def image_payload_problem(path):
    """Check that an image holds all the voxel data its header implies: NIfTI (.nii, .nii.gz, .hdr/.img),
    MetaImage (.mha, .mhd + data file), NRRD (.nrrd, .nhdr + data file), and a DICOM series folder (no
    missing slices, uniform slice spacing). It reads headers and file sizes; a gzip stream is taken as
    complete when its trailer records the expected size, and is decompressed (not kept) only when it does
    not. Returns None, or a problem dict {code, file, message, hint}. SimpleITK reads a truncated NIfTI
    without complaint and fills the missing voxels with zeros, so this runs before any image is used."""
    import bz2
    import gzip
    import math
    import os
    import struct

    hint = "copy the file again from its source: radlang never computes features from missing voxels"

    def short(file, have, want, what="voxel data"):
        return {"code": "E650", "file": file, "hint": hint,
                "message": f"incomplete image: the file holds {have:,} bytes of {what} where its header implies {want:,} "
                           "(a truncated copy or download?)"}

    def compressed(file, offset, want, kind):
        if kind == "bzip2":
            try:
                with open(file, "rb") as fh:
                    fh.seek(offset)
                    have, complete = len(bz2.decompress(fh.read())), True
            except (OSError, ValueError, EOFError):
                have, complete = 0, False
        else:
            have, complete = gzip_payload_size(file, offset, want)
        if not complete:
            return {"code": "E650", "file": file, "hint": hint,
                    "message": f"incomplete image: the {kind} stream ends early or is corrupt after {have:,} of the "
                               f"{want:,} bytes its header implies (a truncated copy or download?)"}
        return short(file, have, want, f"{kind}-decompressed voxel data") if have < want else None

    if os.path.isdir(split_ref(path)[0]):
        return dicom_series_problem(path)
    low = str(path).lower()
    if low.endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz")):
        with open(path, "rb") as fh:
            zipped = fh.read(2) == b"\x1f\x8b"          # by content: a `.nii.gz` may hold plain bytes, as readers allow
        try:
            with (gzip.open(path, "rb") if zipped else open(path, "rb")) as fh:
                h = fh.read(540)
        except (OSError, EOFError):
            h = b""
        if len(h) < 348:
            return {"code": "E650", "file": path, "hint": hint,
                    "message": "incomplete image: the file ends inside its NIfTI header (a truncated copy or download?)"}
        e = "<" if struct.unpack("<i", h[:4])[0] in (348, 540) else ">"
        if struct.unpack(e + "i", h[:4])[0] == 540:
            bitpix = struct.unpack(e + "h", h[14:16])[0]
            dim = struct.unpack(e + "8q", h[16:80])
            offset = struct.unpack(e + "q", h[168:176])[0]
        elif struct.unpack(e + "i", h[:4])[0] == 348:
            bitpix = struct.unpack(e + "h", h[72:74])[0]
            dim = struct.unpack(e + "8h", h[40:56])
            offset = int(struct.unpack(e + "f", h[108:112])[0])
        else:
            return None                      # not a NIfTI header: the reader reports it
        if not 1 <= dim[0] <= 7 or bitpix <= 0 or any(d < 1 for d in dim[1:dim[0] + 1]):
            return None
        want = math.prod(dim[1:dim[0] + 1]) * bitpix // 8
        if low.endswith((".hdr", ".hdr.gz")):          # a header/data pair (NIfTI or Analyze): the voxels are in the .img
            data = str(path)[:-7 if low.endswith(".gz") else -4] + ".img"
            data_zipped = not os.path.exists(data) and os.path.exists(data + ".gz")
            data = data + ".gz" if data_zipped else data
            if not os.path.exists(data):
                return {"code": "E650", "file": data, "hint": "a .hdr header needs its .img data file next to it",
                        "message": f"incomplete image: the data file `{os.path.basename(data)}` of the header "
                                   f"`{os.path.basename(path)}` is missing"}
            if data_zipped:
                return compressed(data, 0, offset + want, "gzip")
            have = os.path.getsize(data) - offset
            return short(data, max(have, 0), want) if have < want else None
        if zipped:
            return compressed(path, 0, offset + want, "gzip")
        have = os.path.getsize(path) - offset
        return short(path, max(have, 0), want) if have < want else None

    if low.endswith((".mha", ".mhd")):
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        fields, end, pos = {}, None, 0
        for line in head.split(b"\n"):
            pos += len(line) + 1
            k, sep, v = line.decode("latin-1").partition("=")
            if not sep:
                continue
            fields[k.strip().lower()] = v.strip()
            if k.strip().lower() == "elementdatafile":
                end = pos
                break
        sizes = {"met_char": 1, "met_uchar": 1, "met_short": 2, "met_ushort": 2, "met_int": 4, "met_uint": 4,
                 "met_long": 4, "met_ulong": 4, "met_long_long": 8, "met_ulong_long": 8, "met_float": 4, "met_double": 8}
        try:
            dims = [int(x) for x in fields["dimsize"].split()]
            elem = sizes[fields["elementtype"].lower()] * int(fields.get("elementnumberofchannels", "1"))
            source = fields["elementdatafile"]
        except (KeyError, ValueError):
            return None                      # an unusual header: the reader reports what it cannot read
        if source.upper() == "LIST" or "%" in source or " " in source.strip():
            return None                      # one file per slice: not checked here
        want = math.prod(dims) * elem
        if source.upper() == "LOCAL":
            data, offset = path, end
        else:
            data = source if os.path.isabs(source) else os.path.join(os.path.dirname(path), source)
            offset = max(int(fields.get("headersize", "0")), 0)
            if not os.path.exists(data):
                return {"code": "E650", "file": data, "hint": "the data file named by the header's ElementDataFile must sit next to it",
                        "message": f"incomplete image: the header `{os.path.basename(path)}` names the data file `{source}`, which is missing"}
        have = os.path.getsize(data) - offset
        if fields.get("compresseddata", "false").lower() == "true":
            if "compresseddatasize" in fields:
                want_z = int(float(fields["compresseddatasize"]))
                return short(data, max(have, 0), want_z, "compressed voxel data") if have < want_z else None
            import zlib

            with open(data, "rb") as fh:
                fh.seek(offset)
                d = zlib.decompressobj()
                try:
                    got = len(d.decompress(fh.read()))
                except zlib.error:
                    got = 0
                if not d.eof:
                    return {"code": "E650", "file": data, "hint": hint,
                            "message": "incomplete image: the compressed voxel data ends early or is corrupt (a truncated copy or download?)"}
            return short(data, got, want) if got < want else None
        return short(data, max(have, 0), want) if have < want else None

    if low.endswith((".nrrd", ".nhdr")):
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        if not head.startswith(b"NRRD"):
            return None
        cut = head.find(b"\n\n")
        end = cut + 2 if cut >= 0 else None
        fields = {}
        for line in head[:cut if cut >= 0 else len(head)].split(b"\n")[1:]:
            text = line.decode("latin-1").rstrip("\r")
            if text.startswith("#"):
                continue
            k, sep, v = text.partition(":")
            if sep and not v.startswith("="):
                fields[k.strip().lower()] = v.strip()
        one = {"signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"}
        two = {"short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
               "unsigned short", "unsigned short int", "uint16", "uint16_t"}
        four = {"int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"}
        eight = {"longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
                 "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"}
        t = fields.get("type", "").lower()
        elem = 1 if t in one else 2 if t in two else 4 if t in four else 8 if t in eight else None
        try:
            dims = [int(x) for x in fields["sizes"].split()]
        except (KeyError, ValueError):
            return None
        encoding = {"raw": "raw", "gz": "gzip", "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2"}.get(fields.get("encoding", "").lower())
        source = fields.get("data file", fields.get("datafile"))
        if elem is None or encoding is None or int(fields.get("line skip", fields.get("lineskip", "0"))) != 0:
            return None                      # text encodings, `block` types and line skips: not checked here
        if source is not None and (source.upper().startswith("LIST") or "%" in source or " " in source.strip()):
            return None                      # one file per slice: not checked here
        want = math.prod(dims) * elem
        skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
        if source is None:
            if end is None:
                return {"code": "E650", "file": path, "hint": hint, "message": "incomplete image: the file ends inside its NRRD header"}
            data, offset = path, end
        else:
            data = source if os.path.isabs(source) else os.path.join(os.path.dirname(path), source)
            offset = 0
            if not os.path.exists(data):
                return {"code": "E650", "file": data, "hint": "the data file named by the header's `data file:` field must sit next to it",
                        "message": f"incomplete image: the header `{os.path.basename(path)}` names the data file `{source}`, which is missing"}
        if encoding != "raw":
            return compressed(data, offset, want, encoding)
        have = os.path.getsize(data) - offset - max(skip, 0)
        return short(data, max(have, 0), want) if have < want else None
    return None


def dicom_series_problem(path):
    """A DICOM series folder (or `folder#<SeriesInstanceUID>`) whose slices differ in orientation (E633), or
    whose slice positions (along the slice normal) are not evenly spaced: missing slices, or slices from another
    acquisition (E651). Reads every slice's header, not its pixels. Returns None or a problem dict
    {code, file, message, hint}."""
    from itertools import pairwise

    import SimpleITK as sitk

    files = series_files(path)
    pos, first = [], None
    for f in files:
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        r.ReadImageInformation()
        d, o = r.GetDirection(), r.GetOrigin()
        if len(d) != 9:
            return None
        first = first or (f, d)
        if max(abs(a - b) for a, b in zip(d, first[1])) > 1e-4:
            return {"code": "E633", "file": split_ref(path)[0],
                    "message": f"the DICOM series mixes slice orientations: `{f.rsplit('/', 1)[-1]}` has direction "
                               f"({', '.join(f'{v:.3g}' for v in d[:6])}), `{first[0].rsplit('/', 1)[-1]}` "
                               f"({', '.join(f'{v:.3g}' for v in first[1][:6])})",
                    "hint": "a series must be one stack of parallel slices; export each orientation as its own series and pick one"}
        pos.append(o[0] * d[2] + o[1] * d[5] + o[2] * d[8])
    if len(pos) < 3:
        return None
    steps = [b - a for a, b in pairwise(pos)]
    step = sorted(abs(s) for s in steps)[len(steps) // 2]
    tol = max(0.01, 0.05 * step)
    odd = [(i, s) for i, s in enumerate(steps) if abs(abs(s) - step) > tol]
    if not odd:
        return None
    i, s = odd[0]
    if step > 0 and abs(s) > step and abs(abs(s) / step - round(abs(s) / step)) * step <= tol:
        missing = round(abs(s) / step) - 1
        msg = (f"the DICOM series has {len(odd)} gap(s) in its slice positions: {missing} slice(s) missing between slice "
               f"{i + 1} and {i + 2} (at {pos[i]:g} and {pos[i + 1]:g} mm; the other slices are {step:g} mm apart)")
    else:
        msg = (f"the DICOM series has uneven slice spacing: slices {i + 1} and {i + 2} are {abs(s):g} mm apart, the others "
               f"{step:g} mm ({len(odd)} uneven step(s) of {len(steps)})")
    return {"code": "E651", "file": split_ref(path)[0], "message": msg,
            "hint": "export the complete series again; a series with missing or unevenly spaced slices would be read as a wrong volume"}


def write_derived_mask(mask, folder, case_id):
    """Write a mask rasterised from DICOM as `<folder>/<case_id>.nii.gz`, leaving a file with the same bytes
    untouched (its content hash, and so every cache key, stays). Returns the path."""
    import filecmp
    import os
    import tempfile

    import SimpleITK as sitk

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{case_id}.nii.gz")
    fd, tmp = tempfile.mkstemp(prefix=f".{case_id}.", suffix=".nii.gz", dir=folder)
    os.close(fd)
    try:
        sitk.WriteImage(mask, tmp, True)
        if os.path.exists(path) and filecmp.cmp(tmp, path, shallow=False):
            os.remove(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def manifest_columns(params):
    """The columns a manifest must have, as (role, column) pairs: id, image(s), mask, site, patient,
    outcome (or survival time and event), clinical covariates."""
    images = params["image"] if isinstance(params["image"], list) else [params["image"]]
    outcome = params.get("outcome")
    wanted = [("id", params["id"])] + [("image", c) for c in images]
    for role in ("mask", "site", "patient"):
        if params.get(role) and not (role == "site" and str(params[role]).startswith("scanner.")):
            wanted.append((role, params[role]))
    if outcome:
        if outcome["kind"] == "survival":
            wanted += [("outcome time", outcome["time"]), ("outcome event", outcome["event"])]
        else:
            wanted.append(("outcome", outcome["column"]))
    wanted += [("clinical", c) for c in params.get("clinical") or []]
    return wanted


def load_manifest(params, manifest_path, name, check_files=True, *, derived_dir):
    """Read a manifest CSV into the cohort table.

    DICOM (radlang/ops/dicom.py): an image folder with several image series becomes `folder#<SeriesInstanceUID>`
    of the series the settings pick; a mask that is an RTSTRUCT or SEG file is rasterised onto its case's image
    series and written as `<derived_dir>/<case id>.nii.gz` (a folder inside the run's out folder), which the
    table then names; `scanner` attributes become `scanner.<name>` columns. Only the DICOM attributes named
    there are read into the table: no patient identifier leaves the files.

    Returns (table, problems). A problem is a dict {case, file, column, message, fatal}; `fatal`
    problems (a missing column) leave no table (None). Case problems (a missing or unreadable file,
    a duplicate id, a bad outcome) are listed, all of them, and the table keeps every row."""
    import math
    import os

    import pandas as pd

    problems = []
    mpath = os.path.abspath(manifest_path)
    try:
        raw = pd.read_csv(mpath, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        return None, [{"case": None, "file": mpath, "column": None, "message": "manifest not found", "fatal": True}]
    except (OSError, ValueError) as e:  # unreadable CSV: parser errors, empty file and bad encoding are ValueErrors
        return None, [{"case": None, "file": mpath, "column": None, "message": f"cannot read the manifest: {e}", "fatal": True}]
    raw.columns = [c.strip() for c in raw.columns]
    images = params["image"] if isinstance(params["image"], list) else [params["image"]]
    outcome = params.get("outcome")
    for role, col in manifest_columns(params):
        if col not in raw.columns:
            import difflib

            close = difflib.get_close_matches(col, list(raw.columns), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; its columns are: {', '.join(raw.columns)}"
            problems.append({"case": None, "file": mpath, "column": col, "fatal": True,
                             "message": f"the manifest has no column `{col}` (the {role} column){hint}"})
    if problems:
        return None, problems

    base = os.path.dirname(mpath)
    ids = [str(x).strip() for x in raw[params["id"]]]
    first_row = {}
    for i, cid in enumerate(ids):
        if cid == "":
            problems.append({"case": f"row {i + 2}", "file": mpath, "column": params["id"], "message": "empty case id"})
        elif "/" in cid or "\\" in cid or "\0" in cid or ".." in cid:
            problems.append({"case": cid, "file": mpath, "column": params["id"],
                             "message": f"the case id holds `/`, `\\` or `..` (row {i + 2}): output files are named after case ids",
                             "hint": "rename the case (e.g. replace `/` with `_`)"})
        elif cid in first_row:
            problems.append({"case": cid, "file": mpath, "column": params["id"],
                             "message": f"duplicate case id `{cid}` (rows {first_row[cid] + 2} and {i + 2})"})
        else:
            first_row[cid] = i
    out = pd.DataFrame({"case_id": ids})
    out["patient_id"] = [str(x).strip() for x in raw[params["patient"]]] if params.get("patient") else out["case_id"]
    path_cols = [(("image" if len(images) == 1 else f"image.{c}"), c) for c in images]
    if params.get("mask"):
        path_cols.append(("mask", params["mask"]))
    rule = {"modality": params.get("modality"), "description": params.get("series_description")}
    scanner = [None] * len(ids)          # the scanner attributes of each case's first image, when a DICOM series
    sources = []                         # DICOM files read into the table (masks rasterised from them)
    for canon, col in path_cols:
        paths = []
        for i, v in enumerate(raw[col]):
            v = str(v).strip()
            cid = ids[i] or f"row {i + 2}"
            if not v:
                problems.append({"case": cid, "file": mpath, "column": col, "message": "no path given"})
                paths.append("")
                continue
            ref, selector = split_ref(v)
            p = ref if os.path.isabs(ref) else os.path.normpath(os.path.join(base, ref))
            paths.append(p if selector is None else f"{p}#{selector}")
            if not check_files:
                continue
            if not os.path.exists(p):
                problems.append({"case": cid, "file": p, "column": col, "message": "file not found"})
                continue
            if canon != "mask" and os.path.isdir(p):
                series, bad = pick_series(p, {**rule, "uid": selector} if selector else rule)
                if bad:
                    problems.append({"case": cid, "column": col, **bad})
                    continue
                paths[-1] = p if selector is None and series["alone"] else f"{p}#{series['uid']}"
                if scanner[i] is None:
                    scanner[i] = scanner_values(series_headers(series["files"][:1])["first"])
            elif canon == "mask" and is_dicom_file(p):
                image = out[path_cols[0][0]][i]
                if not image or not ids[i] or any(q["case"] == cid for q in problems):
                    continue               # the image's or the case id's own problem is reported
                try:
                    mask, bad = dicom_mask(p, selector or params.get("roi"), image, float(params.get("fraction", 0.5)))
                except Exception as e:  # noqa: BLE001 -- an unreadable DICOM object is bad data, reported as a diagnostic
                    mask, bad = None, {"code": "E602", "message": f"unreadable DICOM mask ({str(e)[:160]})",
                                       "hint": "a DICOM mask is an RTSTRUCT or a DICOM-SEG file"}
                if bad:
                    problems.append({"case": cid, "file": p, "column": col, **bad})
                    continue
                sources.append(p)
                paths[-1] = write_derived_mask(mask, derived_dir, cid)
                continue
            try:
                read_image_header(paths[-1])
            except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                # SimpleITK's first line names its C++ source; the reason follows "ERROR:" on a later line
                msg = next((ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln), lines[0] if lines else type(e).__name__)
                problems.append({"case": cid, "file": p, "column": col, "code": "E602",
                                 "message": f"unreadable or corrupt image ({msg[:160]})",
                                 "hint": "radlang reads NIfTI, NRRD, MHA and DICOM series folders"})
                continue
            bad = image_payload_problem(paths[-1])
            if bad:
                problems.append({"case": cid, "column": col, **bad})
        out[canon] = paths

    classes = None
    if outcome:
        kind = outcome["kind"]
        if kind == "survival":
            times, events = [], []
            for i, (t, e) in enumerate(zip(raw[outcome["time"]], raw[outcome["event"]])):
                cid = ids[i] or f"row {i + 2}"
                try:
                    tv = float(t)
                    if math.isnan(tv) or tv < 0:
                        raise ValueError
                except ValueError:
                    problems.append({"case": cid, "file": mpath, "column": outcome["time"], "message": f"survival time `{t}` is not a number ≥ 0"})
                    tv = float("nan")
                ev = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "1.0": 1, "0.0": 0}.get(str(e).strip().lower())
                if ev is None:
                    problems.append({"case": cid, "file": mpath, "column": outcome["event"], "message": f"event `{e}` is not 0/1"})
                    ev = -1
                times.append(tv)
                events.append(ev)
            out["time"] = pd.Series(times, dtype="float64")
            out["event"] = pd.Series(events, dtype="int64")
        else:
            col = outcome["column"]
            vals = [str(v).strip() for v in raw[col]]
            for i, v in enumerate(vals):
                if v == "" or v.lower() in ("na", "nan", "none", "null"):
                    problems.append({"case": ids[i] or f"row {i + 2}", "file": mpath, "column": col, "message": "missing outcome"})
            present = [v for v in vals if v != "" and v.lower() not in ("na", "nan", "none", "null")]

            def num(v):
                try:
                    return float(v)
                except ValueError:
                    return None

            if kind == "continuous":
                cont = []
                for i, v in enumerate(vals):
                    x = num(v) if v in present else None
                    if x is None and v in present:
                        problems.append({"case": ids[i], "file": mpath, "column": col, "message": f"outcome `{v}` is not a number"})
                    cont.append(float("nan") if x is None else x)
                out["outcome"] = pd.Series(cont, dtype="float64")
            else:
                labels = sorted(set(present), key=lambda v: (num(v) is None, num(v) if num(v) is not None else 0, v))
                if kind == "binary":
                    pos = outcome.get("positive")
                    if pos is not None:
                        pos = str(pos)
                        if pos not in labels and labels:
                            problems.append({"case": None, "file": mpath, "column": col,
                                             "message": f"positive label `{pos}` never occurs; labels: {', '.join(labels)}"})
                        neg = [v for v in labels if v != pos]
                        classes = neg + [pos]
                    elif len(labels) > 2:
                        seen = [(v, ids[i] or f"row {i + 2}") for i, v in enumerate(vals) if v in present]
                        problems.append({"case": None, "file": mpath, "column": col, "fatal": True,
                                         "message": f"a binary outcome needs two labels, found {len(labels)}: {label_cases(seen)}",
                                         "hint": "correct the stray labels, name the event with `as binary(positive: ...)`, "
                                                 "or read the column `as multiclass`"})
                        classes = labels
                    else:
                        classes = labels
                    if pos is not None:
                        codes = [(1 if v == pos else 0) if v in present else -1 for v in vals]
                    else:
                        codes = [(classes.index(v) if len(classes) == 2 else (1 if num(v) == 1 else 0)) if v in present else -1 for v in vals]
                else:
                    classes = labels
                    codes = [labels.index(v) if v in present else -1 for v in vals]
                out["outcome"] = pd.Series(codes, dtype="int64")
    for attr in params.get("scanner") or []:
        vals = [(s or {}).get(attr) for s in scanner]
        numeric = all(v is None or isinstance(v, float) for v in vals)
        out[f"scanner.{attr}"] = pd.Series(vals, dtype="float64") if numeric else vals
    if params.get("site"):
        if str(params["site"]).startswith("scanner."):
            attr = str(params["site"])[len("scanner."):]
            out["site"] = [str(s[attr]) if s and s.get(attr) is not None else "" for s in scanner]
            for i, (cid, s) in enumerate(zip(ids, scanner)):
                if cid and (s or {}).get(attr) is None and not any(q["case"] == cid for q in problems):
                    problems.append({"case": cid, "file": out[path_cols[0][0]][i], "column": params["site"],
                                     "message": f"the image is not a DICOM series with the attribute `{attr}`, "
                                                "which the cohort uses as its site",
                                     "hint": "name the site in a manifest column for images without this DICOM attribute"})
        else:
            out["site"] = [str(v).strip() for v in raw[params["site"]]]
    for c in params.get("clinical") or []:
        col = raw[c].map(lambda v: str(v).strip())
        nums = pd.to_numeric(col.replace({"": None, "NA": None, "nan": None, "NaN": None}), errors="coerce")
        blank = col.isin(["", "NA", "nan", "NaN"])
        out[f"clinical.{c}"] = nums.astype("float64") if bool((nums.notna() | blank).all()) else col
    cols = {"case_id": params["id"], "patient_id": params.get("patient") or params["id"]}
    cols.update({canon: col for canon, col in path_cols})
    if outcome:
        if outcome["kind"] == "survival":
            cols.update({"time": outcome["time"], "event": outcome["event"]})
        else:
            cols["outcome"] = outcome["column"]
    if params.get("site"):
        cols["site"] = params["site"]
    cols.update({f"clinical.{c}": c for c in params.get("clinical") or []})
    thickness = {cid: s["slice_thickness"] for cid, s in zip(ids, scanner) if s and s.get("slice_thickness") is not None}
    out.attrs["radlang"] = {"name": name, "source": mpath, "columns": cols, "dicom_sources": sources,
                            "slice_thickness": thickness, "thickness_tolerance": float(params.get("thickness_tolerance", 0.5)),
                            "images": [canon for canon, col in path_cols if canon != "mask"],
                            "outcome": outcome["kind"] if outcome else None, "classes": classes}
    return out, problems


def _cached_manifest(ctx, version, params, path, name):
    """load_manifest, reused when the manifest's content and every file it names (by mtime and size) are unchanged:
    a warm re-run then skips reading every image header again. Masks rasterised from DICOM go to
    <out>/data/<stage>-masks-<hash of the manifest's path>/."""
    from radlang.backends.cache import key
    from radlang.backends.glue import file_stat

    derived = str(ctx.out / "data" / f"{name}-masks-{key(str(path))[:12]}")
    if not path.exists():
        return load_manifest(params, str(path), name, derived_dir=derived)
    mhash = ctx.hash_input(path)
    cache = ctx.cache.uncounted()          # its own counters: the run manifest's hits/misses count case entries
    k = key("manifest-table", version, params, str(path), mhash)
    hit = cache.get(k)
    if hit is not None and all(file_stat(f) == s for f, s in hit["stats"].items()):
        return hit["table"], hit["problems"]
    df, problems = load_manifest(params, str(path), name, derived_dir=derived)
    if df is not None:
        files = [split_ref(f)[0] for c in df.columns if c in ("image", "mask") or c.startswith("image.") for f in df[c] if f]
        files += df.attrs["radlang"].get("dicom_sources", [])      # the RTSTRUCT / SEG files a mask was rasterised from
        files += [p["file"] for p in problems if p.get("file")]      # e.g. an external data file found incomplete
        cache.put(k, {"table": df, "problems": problems, "stats": {f: file_stat(f) for f in files}})
    return df, problems


# the DICOM readers (radlang/ops/dicom.py) load_manifest calls
DICOM_HELPERS = (split_ref, name_matches, is_dicom_file, series_candidates, pick_series, series_files, series_headers,
                 scanner_attributes, scanner_values, rasterise_contours, contour_points, rtstruct_mask, seg_mask, dicom_mask, write_derived_mask)


def run_manifest(stage, ctx):
    """The cohort table of a manifest stage; its path is relative to the spec's folder."""
    from pathlib import Path

    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.glue import cohort_key, finish_cohort, spec_dir

    op = registry.get(stage.op)
    path = Path(stage.params["path"])
    if not path.is_absolute():
        path = spec_dir(stage, ctx) / path
    df, problems = _cached_manifest(ctx, op.version, stage.params, path, stage.name)
    df = finish_cohort(stage, ctx, df, problems)
    ctx.keys[stage.name] = key("cohort", stage.op, op.version, cohort_key(df))
    return df


MANIFEST_MISSING = ("", "na", "nan", "none", "null")   # outcome values load_manifest reads as missing


def manifest_check_data(st, bound, folder, diags, listings):
    """`radlang check`: the manifest's header names every column the stage names, and every image and mask exists."""
    from radlang.checks.data import check_csv

    if folder is None:
        return None
    p = st.params
    images = p["image"] if isinstance(p["image"], list) else [p["image"]]
    in_lists = {"image": images if isinstance(p["image"], list) else [], "clinical": p.get("clinical") or []}
    wanted = [(role, c, {"outcome time": "outcome", "outcome event": "outcome"}.get(role, role),
               in_lists[role].index(c) if c in in_lists.get(role, []) else None) for role, c in manifest_columns(p)]
    paths = [(c, "image", i if isinstance(p["image"], list) else None) for i, c in enumerate(images)]
    if p.get("mask"):
        paths.append((p["mask"], "mask", None))
    return check_csv(st, bound, folder, diags, listings, what="manifest", code="E601", wanted=wanted, path_cols=paths,
                     missing=MANIFEST_MISSING)


def phantom_check_data(st, bound, folder, diags, listings):
    """`radlang check`: nothing to read; the cohort's size and classes follow from the settings (a grade outcome: the
    equal-size groups make_phantom cuts, rank r of n in grade r * grades // n)."""
    n = int(st.params["cases"])
    if st.params.get("outcome") == "grade":
        g = int(st.params["grades"])
        return {"cases": n, "classes": {str(k): sum(1 for r in range(n) if r * g // n == k) for k in range(g)}, "grouped": False}
    return {"cases": n, "classes": {"0": n - n // 2, "1": n // 2}, "grouped": False}


def manifest_read_file(ctx, stage, path):
    """`radlang predict`: another manifest, read with this cohort's column settings."""
    from dataclasses import replace

    return run_manifest(replace(stage, params={**stage.params, "path": str(path), "outcome": None}), ctx)


register(Operator(
    name="manifest", kind="cohort", output="Cohort", settings=ManifestSettings, positional=("path",),
    behaviour="stateless", run=run_manifest, cli_paths=("path",), read_file=manifest_read_file, check_data=manifest_check_data,
    infer=cohort_type, sink=False, impl=load_manifest,
    helpers=(manifest_columns, label_cases, read_image_header, image_payload_problem, gzip_payload_size, dicom_series_problem,
             *DICOM_HELPERS),
    doc="A cohort read from a CSV manifest: one row per case, columns for id, images, mask, outcome, site and covariates.",
    examples=('cohort train = manifest("data/train.csv") { image: ct, mask: roi, outcome: malignant as binary, site: hospital }',),
))


# --------------------------------------------------------------------------------------------------
# phantom: a synthetic CT-like cohort written to disk
# --------------------------------------------------------------------------------------------------

class PhantomSettings(Settings):
    cases: int = Field(40, ge=4, le=10000, description="number of cases")
    seed: int | None = Field(None, description="generator seed (default: the stage seed, from the study seed and the stage name)")
    effect: float = Field(1.0, ge=0, le=10, description="effect size: how strongly lesion texture and shape depend on the outcome (0 = none)")
    sites: int = Field(1, ge=1, le=8, description="number of acquisition sites (≥ 2 adds a site column with scanner-like shifts)")
    site_shift: Intensity = Field(0.0, description="extra intensity offset for every case (an external scanner), e.g. 30HU")
    noise: Intensity = Field(8.0, ge=0, description="image noise standard deviation (HU)")
    size: list[Annotated[int, Field(ge=16, le=512)]] = Field(default_factory=lambda: [40, 40, 40], min_length=3, max_length=3,
                                                            description="volume size in voxels (x, y, z)")
    spacing: list[Annotated[Length, Field(gt=0)]] = Field(default_factory=lambda: [1.0, 1.0, 1.0], min_length=3, max_length=3,
                                                          description="voxel spacing (mm)")
    prefix: str | None = Field(None, description="case id prefix (default: the stage name); a plain name: case ids name files")
    site_effect: float = Field(1.0, ge=0, le=5, description=("scanner shift between sites: site k adds `site_effect` x its intensity "
                               "offset (0, 25, -15, 40, -30, 10, 55, -5 HU) and multiplies the noise SD by its factor (1, 1.6, 0.7, 1.3, "
                               "0.9, 2, 1.1, 0.8) to the power `site_effect`; 0 = sites differ only by name"))
    site_blur: Length = Field(0.0, ge=0, description="scanner blur: site k of n is smoothed by a Gaussian of SD k/(n-1) x `site_blur` (mm) before noise")
    grades: int = Field(0, ge=0, le=5, description=("≥ 2 adds an ordinal `grade` column (1..grades): the latent lesion severity (which "
                        "drives texture and lobulation, and is `effect` higher in malignant cases) cut into equal-size groups"))
    stage_effect: float | None = Field(None, ge=0, le=5, description=("adds a clinical `stage` column (1-4): round(2.5 + stage_effect x "
                                       "(malignant - 0.5) + N(0, 0.8)), clipped; `age` is always N(60 + 3 x effect x malignant, 9) years"))
    outcome: Literal["malignant", "grade"] = Field("malignant", description="the cohort's outcome: `malignant` (binary) or `grade` (multiclass; needs `grades`)")

    _o = field_validator("outcome", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v):
        if v is not None and (v == "" or "/" in v or "\\" in v or "\0" in v or ".." in v):
            raise outside_out(f"`{v}` is not a plain name: the phantom writes cases/<prefix>_000_image.nii.gz, and every file "
                              "a run writes stays inside its out folder (no `/`, `\\`, `..`)")
        return v


def phantom_type(ctx) -> RType:
    s = ctx.settings
    if s.outcome == "grade" and s.grades < 2:
        ctx.error("E306", "`outcome: grade` needs a grade column: set `grades` (2 to 5)", setting="outcome", hint="add `grades: 3`")
    return RType("Cohort", cohort=ctx.stmt.name, outcome="multiclass" if s.outcome == "grade" else "binary", dims=3, channels=1,
                 has_site=s.sites >= 2, has_mask=True, detail="phantom")


# the phantom settings added after its first version: a spec that leaves them at these defaults gets the same files,
# and the same data folder name, as before they existed
PHANTOM_LATER = {"site_effect": 1.0, "site_blur": 0.0, "grades": 0, "stage_effect": None, "outcome": "malignant"}


def make_phantom(params, seed, out_dir, prefix):
    """Write a synthetic CT-like cohort: per case a NIfTI image (int16 HU) and lesion mask, plus
    `manifest.csv` (case_id, image, mask, malignant, site, age, then grade and stage when asked for). Returns the
    manifest path.

    Each case has soft tissue (~40 HU) with smooth noise and one lobulated lesion. The outcome
    `malignant` is balanced; a latent score s = effect * malignant + N(0, 0.5) raises the lesion's
    texture heterogeneity and surface lobulation. Sites add an intensity offset and a noise scale (scaled by
    `site_effect`) and a blur (`site_blur`). `grades` cuts s into equal-size ordinal groups; `stage_effect` draws a
    clinical stage associated with `malignant`. Draws for the later settings come from their own streams, so the
    files of a phantom without them do not change."""
    import csv
    import io
    import os
    import tempfile

    import numpy as np
    import SimpleITK as sitk
    from scipy import ndimage

    n = int(params["cases"])
    nx_, ny_, nz_ = (int(v) for v in params["size"])
    sp = [float(v) for v in params["spacing"]]
    effect = float(params["effect"])
    sites = int(params["sites"])
    offsets = [0.0, 25.0, -15.0, 40.0, -30.0, 10.0, 55.0, -5.0]
    scales = [1.0, 1.6, 0.7, 1.3, 0.9, 2.0, 1.1, 0.8]
    os.makedirs(os.path.join(out_dir, "cases"), exist_ok=True)
    master = np.random.default_rng(seed)
    labels = master.permutation(np.arange(n) % 2)
    site_of = master.permutation(np.arange(n) % sites)
    site_effect = float(params.get("site_effect", 1.0))
    site_blur = float(params.get("site_blur", 0.0))
    grades = int(params.get("grades", 0))
    stage_effect = params.get("stage_effect")
    latent = []
    z, y, x = np.meshgrid(np.arange(nz_) * sp[2], np.arange(ny_) * sp[1], np.arange(nx_) * sp[0], indexing="ij")
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        lab = int(labels[i])
        site = int(site_of[i])
        s = effect * lab + rng.normal(0.0, 0.5)
        latent.append(s)
        extent = np.array([nx_ * sp[0], ny_ * sp[1], nz_ * sp[2]])
        r0 = float(rng.uniform(0.18, 0.26) * extent.min())
        c = extent / 2 + rng.uniform(-0.08, 0.08, 3) * extent
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        r = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-9
        theta = np.arccos(np.clip(dz / r, -1, 1))
        phi = np.arctan2(dy, dx)
        lob = float(np.clip(0.06 + 0.07 * s, 0.0, 0.3))
        k, m = int(rng.integers(3, 6)), int(rng.integers(2, 5))
        ph1, ph2 = rng.uniform(0, 2 * np.pi, 2)
        surface = r0 * (1 + lob * np.cos(k * phi + ph1) * np.sin(theta) + lob * 0.7 * np.cos(m * theta + ph2))
        lesion = r < surface
        tissue = ndimage.gaussian_filter(rng.normal(0.0, 1.0, lesion.shape), 2.0)
        tissue *= 6.0 / (tissue.std() + 1e-9)
        tex = ndimage.gaussian_filter(rng.normal(0.0, 1.0, lesion.shape), 1.0)
        tex /= tex.std() + 1e-9
        hetero = float(np.clip(12.0 + 9.0 * s, 3.0, 60.0))
        img = 40.0 + tissue
        img = np.where(lesion, float(rng.uniform(55, 75)) + hetero * tex, img)
        img = img + offsets[site % 8] * site_effect + float(params["site_shift"])
        if site_blur > 0 and sites > 1 and site > 0:
            img = ndimage.gaussian_filter(img, [site_blur * site / (sites - 1) / v for v in (sp[2], sp[1], sp[0])])
        img = img + rng.normal(0.0, float(params["noise"]) * scales[site % 8] ** site_effect, img.shape)
        arr = np.clip(np.round(img), -1024, 3071).astype(np.int16)
        cid = f"{prefix}_{i:03d}"
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing(sp)
        mk = sitk.GetImageFromArray(lesion.astype(np.uint8))
        mk.CopyInformation(im)
        ip = os.path.join("cases", f"{cid}_image.nii.gz")
        mp = os.path.join("cases", f"{cid}_mask.nii.gz")
        for volume, rel in ((im, ip), (mk, mp)):          # each file under a unique temporary name, then renamed
            fd, tmp = tempfile.mkstemp(prefix=f".{cid}.", suffix=".nii.gz", dir=os.path.join(out_dir, "cases"))
            os.close(fd)
            try:
                sitk.WriteImage(volume, tmp, True)
                os.replace(tmp, os.path.join(out_dir, rel))
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
        age = int(np.clip(round(rng.normal(60 + 3 * effect * lab, 9)), 25, 95))
        rows.append([cid, ip, mp, lab, f"site{site + 1}", age])
    header = ["case_id", "image", "mask", "malignant", "site", "age"]
    if grades >= 2:   # the latent severity cut by rank into equal-size groups, 1 = the lowest
        rank = np.argsort(np.argsort(np.asarray(latent), kind="stable"), kind="stable")
        header.append("grade")
        for row, r in zip(rows, rank):
            row.append(int(1 + r * grades // n))
    if stage_effect is not None:   # its own stream per case
        header.append("stage")
        for i, row in enumerate(rows):
            jitter = np.random.default_rng([seed, i, 1]).normal(0.0, 0.8)
            row.append(int(np.clip(round(2.5 + float(stage_effect) * (int(labels[i]) - 0.5) + jitter), 1, 4)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path = os.path.join(out_dir, "manifest.csv")
    fd, tmp = tempfile.mkstemp(prefix=".manifest.csv.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def phantom_manifest_params(params):
    """The manifest settings under which a phantom's manifest.csv is read: the outcome is `malignant` (binary) or
    `grade` (multiclass); `age`, `stage` and a grade that is not the outcome are clinical columns."""
    grade = int(params.get("grades", 0)) >= 2
    by_grade = params.get("outcome", "malignant") == "grade"
    clinical = ["age"] + (["grade"] if grade and not by_grade else []) + (["stage"] if params.get("stage_effect") is not None else [])
    return {"path": "manifest.csv", "id": "case_id", "patient": None, "image": "image", "mask": "mask",
            "outcome": {"kind": "multiclass" if by_grade else "binary", "column": "grade" if by_grade else "malignant", "time": None,
                        "event": None, "positive": None},
            "site": "site" if int(params["sites"]) >= 2 else None, "clinical": clinical, "dims": 3}


def run_phantom(stage, ctx):
    """Write the phantom's volumes and manifest under <out>/data/<stage>-<hash of its settings>/ (unless the same ones
    are there), then read
    the manifest back like any manifest cohort."""
    import json

    from radlang import registry
    from radlang.backends.cache import atomic_write_text, key
    from radlang.backends.glue import cohort_key, finish_cohort

    op = registry.get(stage.op)
    p = stage.params
    seed = p["seed"] if p.get("seed") is not None else stage.seed
    prefix = p.get("prefix") or stage.name
    want = {"params": {k: v for k, v in p.items() if k not in PHANTOM_LATER or v != PHANTOM_LATER[k]}, "seed": seed, "prefix": prefix,
            "version": op.version}
    out_dir = ctx.out / "data" / f"{stage.name}-{key(want)[:16]}"     # named by content: other settings, other folder
    stamp = out_dir / "phantom.json"
    manifest = out_dir / "manifest.csv"
    try:
        have = json.loads(stamp.read_text())
    except (OSError, ValueError):
        have = None
    if have != want or not manifest.exists():
        if stamp.exists():
            stamp.unlink()
        make_phantom(p, seed, str(out_dir), prefix)
        atomic_write_text(stamp, json.dumps(want, sort_keys=True, indent=1) + "\n")
    df, problems = load_manifest(phantom_manifest_params(p), str(manifest), stage.name, derived_dir=str(out_dir / "masks"))
    df = finish_cohort(stage, ctx, df, problems)
    ctx.keys[stage.name] = key("cohort", stage.op, op.version, cohort_key(df))
    return df


def phantom_read_file(ctx, stage, path):
    """`radlang predict`: a manifest laid out like a phantom's own (e.g. another phantom's <out>/data/.../manifest.csv)."""
    from dataclasses import replace

    return run_manifest(replace(stage, op="manifest", params={**phantom_manifest_params(stage.params), "path": str(path), "outcome": None}), ctx)


register(Operator(
    name="phantom", kind="cohort", output="Cohort", settings=PhantomSettings, positional=("cases",),
    behaviour="stateless", run=run_phantom, read_file=phantom_read_file, check_data=phantom_check_data, infer=phantom_type,
    impl=make_phantom,
    helpers=(phantom_manifest_params, load_manifest, manifest_columns, label_cases, read_image_header,
             image_payload_problem, gzip_payload_size, dicom_series_problem, *DICOM_HELPERS),
    version="1",
    doc=("A synthetic CT-like cohort (no download): per case a small 3D volume with one lesion, written as NIfTI with a "
         "manifest under <out>/data/<stage>-<settings hash>/. The binary outcome `malignant` changes lesion texture and shape by `effect`; "
         "`sites` add scanner-like intensity, noise (`site_effect`) and blur (`site_blur`) shifts, written in a `site` column; "
         "`grades` adds an ordinal grade (which `outcome: grade` makes the outcome) and `stage_effect` a clinical stage "
         "associated with the outcome; `site_shift` and another `seed` make an external cohort."),
    examples=("cohort train = phantom(40) { effect: 1.0, sites: 2 }",
              "cohort external = phantom(20, seed: 99) { site_shift: 30HU }",
              "cohort multi = phantom(48) { sites: 3, site_effect: 2.0, site_blur: 1.5mm, grades: 3, stage_effect: 1.5 }"),
))
