"""Helpers the port program calls: compiling eval/exec code, formatting errors."""

from __future__ import annotations

from types import CodeType


def compile_eval(source: str) -> tuple[CodeType | None, CodeType | None]:
    """Split ``source`` into (statements, last expression).

    ``py:eval`` returns the value of the last expression statement, so that
    ``"import math\\nmath.pi"`` evaluates to pi; a plain expression takes the
    fast path.
    """
    try:
        return None, compile(source, "<eval>", "eval")
    except SyntaxError:
        pass
    import ast  # imported on first use: start-up time matters

    tree = ast.parse(source, "<eval>", "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        head = compile(tree, "<eval>", "exec") if tree.body else None
        return head, compile(last, "<eval>", "eval")
    return compile(tree, "<eval>", "exec"), None


def compile_exec(source: str) -> CodeType:
    return compile(source, "<exec>", "exec")


def format_exception(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def run_coroutine(coro: object) -> object:
    """A called function that returned a coroutine: run it to completion on
    a new ErlangEventLoop (erlang.run), as ``asyncio.run`` would on its own."""
    from ._policy import run

    return run(coro)  # type: ignore[arg-type]
