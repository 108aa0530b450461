"""Generators for py_stream_SUITE."""

import asyncio

import erlang


def count(n):
    for i in range(n):
        yield i


def fails_after(n):
    for i in range(n):
        yield i
    raise ValueError("boom after %d" % n)


def unconvertible():
    yield 1
    yield {1, 2}


def endless(notify):
    """Yields forever; tells `notify` when it is closed (GeneratorExit)."""
    i = 0
    try:
        while True:
            yield i
            i += 1
    finally:
        erlang.send(notify, (erlang.Atom("generator_closed"), i))


async def async_gen(n):
    for i in range(n):
        await asyncio.sleep(0.01)
        yield i


async def async_endless(notify):
    i = 0
    try:
        while True:
            await asyncio.sleep(0.001)
            yield i
            i += 1
    finally:
        erlang.send(notify, (erlang.Atom("generator_closed"), i))


def tokens(prompt):
    for word in prompt.split():
        yield word


def gen_returner():
    return count(3)


def read_lines(path):
    with open(path) as f:
        for line in f:
            yield line.rstrip("\n")


def generate_data(a, b):
    yield a
    yield b


def not_iterable():
    return 42
