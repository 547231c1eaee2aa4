"""radlang: a declarative language and compiler for radiomics and medical-imaging AI studies."""

__version__ = "0.1.0"
