"""Render hooks for operators run by an executor mode (radlang/backends/modes/) rather than their own `run`:
one module per executor-mode module, each with a `HOOKS` table (executor mode -> hook).

A hook says how a stage of its mode is wired into the rendered script. Normally that is
`call_mode`: the stage calls the executor mode's own function, inlined verbatim with the operator
code it reaches, so the script and `radlang run` run the same code in the same order. It never
re-implements a number. Operators that declare `run` need no hook (radlang/backends/render.py, `call_run`)."""
