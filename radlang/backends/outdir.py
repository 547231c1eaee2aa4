"""The out folder of a run: refuse folders a run must not write into, and mark the ones radlang made.

A run writes only inside its out folder (the compiler refuses settings that would write elsewhere, E308).
Before writing, `prepare_out_dir` refuses, as usage errors:

- E720: `out` is an existing file;
- E721: `out` is the spec's folder, the current folder, or a folder above either (a run there would mix its
  outputs with the spec, the data or the user's other files), unless `force`;
- E722: `out` is an existing folder that is not empty and was not made by radlang, unless `force`;
- E723: `out` cannot be created or written.

A folder is radlang's when it holds the marker file `MARKER`, which `prepare_out_dir` writes first thing
into every folder it accepts, the lock record of a run that holds or held it (`.radlang.lock.json`), or (written by
a radlang from before the marker) both `run.json` and `.cache/`:
a re-run (also after an interrupted run) writes into it again without `force`.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = ".radlang-out"
_MARKER_TEXT = "This folder holds the outputs of `radlang run`; radlang writes into it again without --force.\n"


class OutDirError(Exception):
    """A usage error about the out folder (exit 2)."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        self.code, self.message, self.hint = code, message, hint
        super().__init__(message)


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _made_by_radlang(folder: Path) -> bool:
    """The marker, a run's lock (a run holds or held the folder), or an older radlang's run.json and cache."""
    return ((folder / MARKER).exists() or (folder / ".radlang.lock.json").exists()
            or ((folder / "run.json").is_file() and (folder / ".cache").is_dir()))


def prepare_out_dir(out_dir: Path, spec_file: str | os.PathLike, force: bool = False) -> Path:
    """Check `out_dir` (see the module doc), create it, mark it as radlang's; returns it."""
    out_dir = Path(out_dir)
    try:
        where = out_dir.resolve()
    except (OSError, ValueError) as e:
        raise OutDirError("E723", f"cannot use `{out_dir}` as the out folder: {e}") from e
    if where.exists() and not where.is_dir():
        raise OutDirError("E720", f"the out folder `{out_dir}` is an existing file",
                          hint="give a folder name with --out (or `out:` in the study block)")
    spec_dir, cwd = Path(spec_file).resolve().parent, Path.cwd().resolve()
    if not force:
        for name, folder in (("the spec's folder", spec_dir), ("the current folder", cwd)):
            if _within(folder, where):
                what = name if where == folder else f"a folder above {name} (`{folder}`)"
                raise OutDirError("E721", f"the out folder `{out_dir}` is {what}: a run would write among the files there",
                                  hint="write the outputs to their own folder, e.g. --out runs/study (or pass --force)")
        if where.is_dir() and not _made_by_radlang(where) and any(where.iterdir()):
            raise OutDirError("E722", f"the out folder `{out_dir}` is not empty and was not made by radlang",
                              hint=f"choose a new or empty folder (radlang marks its own with `{MARKER}`), or pass --force")
    try:
        where.mkdir(parents=True, exist_ok=True)
        if not (where / MARKER).exists():
            (where / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
    except OSError as e:
        raise OutDirError("E723", f"cannot create or write the out folder `{out_dir}`: {e.strerror or e}") from e
    return out_dir
