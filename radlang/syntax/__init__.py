from radlang.syntax.parser import SourceError, parse, parse_file  # noqa: F401
