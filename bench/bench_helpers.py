"""Python helpers for bench/py_bench.erl (bench/ is put on sys.path through the
erlang_python app env `python_path`)."""

import time


def ident(x):
    """Returns its argument: the round trip of a value, with no work in Python."""
    return x


def spin(n):
    """CPU-bound pure Python for the pools bench: sums the integers below n,
    holding the GIL throughout (the bench calibrates n to about 5 ms)."""
    s = 0
    for i in range(n):
        s += i
    return s


def spin_timed(n):
    """Seconds spin(n) takes, timed in Python (for the calibration)."""
    t0 = time.perf_counter()
    spin(n)
    return time.perf_counter() - t0
