"""radlang's tests. A regular package, so that `tests.<module>` is this folder even where an installed distribution ships
a top-level `tests` package of its own (rt-utils does)."""
