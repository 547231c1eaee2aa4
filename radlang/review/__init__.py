"""The review package: `radlang report` (one self-contained HTML file from a finished run) and the reporting checklists."""
