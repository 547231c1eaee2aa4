"""Operators, one family per module. Each module declares its operators with
`radlang.registry.register`/`operator`. Heavy libraries are imported inside implementations only."""
