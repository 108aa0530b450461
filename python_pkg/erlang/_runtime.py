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
    """A called function that returned a coroutine: run it to completion."""
    import asyncio

    return asyncio.run(coro)


class SharedBuiltins(dict):
    """The ``__builtins__`` of a process's namespace (spec/PROTOCOL.md,
    "Namespaces"): Python's builtins, then the context's shared namespace, so
    that what the shared namespace defines (preload code, code run with env
    ``shared``) is visible to every process unless it defines its own."""

    __slots__ = ("shared",)

    def __missing__(self, key: str) -> object:
        return self.shared[key]


def shared_builtins(shared: dict) -> SharedBuiltins:
    import builtins

    chain = SharedBuiltins(vars(builtins))
    chain.shared = shared
    return chain
