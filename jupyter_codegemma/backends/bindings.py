"""What a piece of Python binds and reads, and where: pure `ast`, nothing runs. The suggestion check
(candidates.py) asks which names a suggestion reads that nothing binds; the line still to write
(line_to_write.py), which names the code after the cursor reads before anything binds them."""

from __future__ import annotations

import ast
from typing import Callable, Iterator


def _declared(node: ast.AST) -> Iterator[tuple[str, ast.AST | None]]:
    """The names `node` binds other than as a plain name's store (`x = …`, `for x in …`), each with the
    node from whose start it holds, or None where it holds throughout: a parameter (its function's body)
    and a `global` or `nonlocal` name (its scope). A star import yields the name "*". The kinds of
    binding are listed here once: `bindings` and `bound_at` differ only in what they keep of each (and
    ask each node in the walk they make anyway, rather than walk the tree once more)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name, node
    elif isinstance(node, ast.arg):  # a function's or lambda's parameter
        yield node.arg, None
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield (alias.asname or alias.name).split(".")[0], node
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        for name in node.names:
            yield name, None
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        yield node.name, node
    elif isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest, node


def bindings(tree: ast.Module) -> tuple[set[str], list[ast.Name]] | None:
    """The names `tree` binds anywhere, and its reads (None: a star import binds names it does not show)."""
    bound: set[str] = set()
    read: list[ast.Name] = []
    # `s += x` reads `s` before it binds it: an UnboundLocalError where nothing else binds `s`.
    updated = {id(node.target) for node in ast.walk(tree) if isinstance(node, ast.AugAssign)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read.append(node) if isinstance(node.ctx, ast.Load) or id(node) in updated else bound.add(node.id))
        else:
            for name, _ in _declared(node):
                if name == "*":
                    return None
                bound.add(name)
    return bound, read


def positions(code: str, end: bool = False) -> Callable[[ast.AST], int]:
    """The character offset in `code` where a node starts (or ends) (ast gives lines and UTF-8 byte columns)."""
    line_starts = [0]
    for line in code.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)

    def position(node: ast.AST) -> int:
        lineno, column = (node.end_lineno, node.end_col_offset) if end else (node.lineno, node.col_offset)
        line = code[line_starts[lineno - 1]:line_starts[lineno] - 1]
        return line_starts[lineno - 1] + len(line.encode()[:column].decode(errors="ignore"))

    return position


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def bound_at(tree: ast.Module, code: str) -> Callable[[ast.Name], int]:
    """For a read, the offset in `code` from which the name it reads is bound in a scope it sees (its
    own, or one around it: a name a nested function or a comprehension binds is not bound outside it):
    an assignment's targets once its value is computed (the statement's end: `m = max(m, x)` reads `m`
    first), a comprehension's variables from its start, parameters from the first character, any other
    binding where it is written; past the end of `code` where none is."""
    start, end = positions(code), positions(code, end=True)
    scope_of: dict[int, ast.AST] = {}  # each node's innermost scope: a function, class, comprehension or the module
    parent_scope: dict[int, ast.AST | None] = {id(tree): None}

    stack: list[tuple[ast.AST, ast.AST]] = [(tree, tree)]  # a stack, not recursion: `1+1+...` nests deep
    while stack:
        node, scope = stack.pop()
        for child in ast.iter_child_nodes(node):
            scope_of[id(child)] = scope
            if isinstance(child, _SCOPES):
                parent_scope[id(child)] = scope
            stack.append((child, child if isinstance(child, _SCOPES) else scope))
    held: dict[tuple[int, str], int] = {}
    placed: set[int] = set()  # the Name nodes bound by the first walk

    def bind(scope: ast.AST, name: str, at: int) -> None:
        held[id(scope), name] = min(held.get((id(scope), name), at), at)

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            targets, at = (node.targets if isinstance(node, ast.Assign) else [node.target]), end(node)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            targets, at = [generator.target for generator in node.generators], start(node)
        else:
            continue
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    # A walrus in a comprehension binds in the scope around it; the rest where they are.
                    scope = scope_of[id(name)]
                    if isinstance(node, ast.NamedExpr):
                        while isinstance(scope, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                            scope = parent_scope[id(scope)]
                    bind(scope, name.id, at)
                    placed.add(id(name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load) and id(node) not in placed:
                bind(scope_of[id(node)], node.id, start(node))  # a for loop's or with's target, a del
        elif node is not tree:
            for name, where in _declared(node):
                # A parameter belongs to its function (the arg's scope); a def, class or import to the
                # scope it is written in; global and nonlocal hold throughout the scope that declares them.
                bind(scope_of[id(node)], name, 0 if where is None else start(where))

    def at(read: ast.Name) -> int:
        scope: ast.AST | None = scope_of[id(read)]
        first, innermost = len(code) + 1, True
        while scope is not None:
            if innermost or not isinstance(scope, ast.ClassDef):  # a class's names are not its methods'
                first = min(first, held.get((id(scope), read.id), first))
            scope, innermost = parent_scope[id(scope)], False
        return first

    return at
