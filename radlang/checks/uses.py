"""Resolve `use "preset"`: stdlib presets by name, or .rad files relative to the spec."""

from __future__ import annotations

from pathlib import Path

from radlang.diagnostics import Diagnostic, Related, did_you_mean
from radlang.ir.nodes import Module
from radlang.resources import stdlib_dir


def _locate(name: str, base: Path) -> Path | None:
    if name.endswith(".rad") or "/" in name:
        p = (base / name).resolve()
        return p if p.is_file() else None
    p = stdlib_dir() / f"{name}.rad"
    return p if p.is_file() else None


def stdlib_names() -> list[str]:
    try:
        return sorted(p.stem for p in stdlib_dir().glob("*.rad"))
    except FileNotFoundError:
        return []


def resolve_uses(module: Module, sources: dict[str, str], diags: list, _stack: tuple = ()) -> list[Module]:
    """Return the modules `module` pulls in (transitively, each once, in order)."""
    from radlang.syntax.parser import SourceError, parse

    out: list[Module] = []
    base = Path(module.file).resolve().parent if not module.file.startswith("<") else Path.cwd()
    stack = _stack + (str(Path(module.file).resolve()) if not module.file.startswith("<") else module.file,)
    for use in module.uses:
        path = _locate(use.path, base)
        if path is None:
            names = stdlib_names()
            hint = did_you_mean(use.path, names) or (f"stdlib presets: {', '.join(names)}; or give a path ending in .rad" if names
                                                     else "give a path ending in .rad, relative to this file")
            diags.append(Diagnostic("E105", f"preset `{use.path}` not found", use.span, hint=hint))
            continue
        key = str(path.resolve())
        if key in stack:
            diags.append(Diagnostic("E106", f"circular `use`: `{use.path}` is already being loaded",
                                    use.span, hint="remove one of the `use` lines that form the cycle"))
            continue
        display = f"<stdlib>/{path.name}" if path.parent == stdlib_dir() else str(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            diags.append(Diagnostic("E105", f"preset `{use.path}` cannot be read: {e.strerror or e}", use.span))
            continue
        sources[display] = data.decode("utf-8", "replace")
        try:
            sub = parse(data, file=display)
        except SourceError as e:
            diags.extend(e.diagnostics)
            diags.append(Diagnostic("E105", f"preset `{use.path}` has errors", use.span))
            continue
        sub = sub.model_copy(update={"file": display})
        # nested uses resolve relative to the preset's own file
        sub_for_uses = sub.model_copy(update={"file": str(path)})
        for nested in resolve_uses(sub_for_uses, sources, diags, stack + (key,)):
            if nested.file not in {m.file for m in out}:
                out.append(nested)
        if sub.study is not None:
            diags.append(Diagnostic("E107", "a preset must not contain a `study` block", sub.study.span,
                                    related=(Related(use.span, "used here"),)))
        if display not in {m.file for m in out}:
            out.append(sub)
    return out
