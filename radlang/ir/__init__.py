from radlang.ir.dump import dump  # noqa: F401
from radlang.ir.nodes import (  # noqa: F401
    ArgV,
    Bool,
    CallV,
    Cast,
    Compare,
    ListV,
    Module,
    NoneV,
    Num,
    Ref,
    Setting,
    Stmt,
    Str,
    Study,
    Use,
    Value,
)
