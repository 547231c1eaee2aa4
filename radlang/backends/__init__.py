"""Backends: the executor (`radlang run`) and the renderer (`radlang render`)."""
