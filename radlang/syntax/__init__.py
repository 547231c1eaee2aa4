from radlang.syntax.parser import parse, parse_file, SourceError  # noqa: F401
