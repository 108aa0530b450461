"""Helpers the port program calls: compiling eval/exec code, formatting errors."""

from __future__ import annotations

import ast
import asyncio
import traceback
from types import CodeType
from typing import Any, Optional, Tuple


def compile_eval(source: str) -> Tuple[Optional[CodeType], Optional[CodeType]]:
    """Split ``source`` into (statements, last expression).

    ``py:eval`` returns the value of the last expression statement, so that
    ``"import math\\nmath.pi"`` evaluates to pi; a plain expression takes the
    fast path.
    """
    try:
        return None, compile(source, "<eval>", "eval")
    except SyntaxError:
        pass
    tree = ast.parse(source, "<eval>", "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        head = compile(tree, "<eval>", "exec") if tree.body else None
        return head, compile(last, "<eval>", "eval")
    return compile(tree, "<eval>", "exec"), None


def compile_exec(source: str) -> CodeType:
    return compile(source, "<exec>", "exec")


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def run_coroutine(coro: Any) -> Any:
    """A called function that returned a coroutine: run it to completion."""
    return asyncio.run(coro)
