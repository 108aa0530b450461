"""Python side of py_logging_SUITE."""

import logging
import threading

import erlang


def my_function():
    logging.getLogger("mymodule").warning("from my_function")
    return 42


def every_level():
    log = logging.getLogger("levels")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")


@erlang.trace()
def traced_plain():
    return 42


@erlang.trace(name='custom-name')
def traced_named():
    pass


def spans_in_threads(n):
    def work(i):
        with erlang.Span('thread-outer', i=i):
            with erlang.Span('thread-inner', i=i):
                pass

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
