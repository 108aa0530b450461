"""Python helpers for bench/py_bench.erl (bench/ is put on sys.path through the
erlang_python app env `python_path`)."""


def ident(x):
    """Returns its argument: the round trip of a value, with no work in Python."""
    return x
