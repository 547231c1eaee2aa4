from radlang.ir.nodes import (  # noqa: F401
    ArgV, Bool, Cast, CallV, Compare, ListV, Module, NoneV, Num, Ref, Setting, Stmt, Str, Study, Use, Value,
)
from radlang.ir.dump import dump  # noqa: F401
