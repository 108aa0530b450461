"""Python side of py_state_SUITE: the examples of shared-dict.md and
getting-started.md."""

import threading

import erlang
from erlang import SharedDict, state_decr, state_delete, state_get, state_incr, state_keys, state_set


def python_api_example():
    # getting-started.md, "From Python"
    state_set('my_key', {'data': [1, 2, 3]})
    value = state_get('my_key')
    a = state_incr('requests')
    b = state_incr('requests', 10)
    c = state_decr('requests')
    keys = state_keys()
    state_delete('my_key')
    return value, a, b, c, sorted(keys), state_get('my_key')


def scalability_example(data):
    config = state_get('app_config')
    state_incr('requests_total')
    state_incr('bytes_processed', len(data))
    return config


def incr_in_threads(key, threads, times):
    def work():
        for _ in range(times):
            state_incr(key)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return True


def process_with_config(sd_handle):
    # shared-dict.md, "Python Side"
    sd = SharedDict(sd_handle)
    config = sd['config']
    host = config.get('host') or config.get(b'host')
    sd['result'] = {'status': 'ok', 'count': 42}
    seen = []
    if 'config' in sd:
        seen.append('config found')
    for key in sd.keys():
        seen.append(key)
    result = sd['result']
    del sd['result']
    return host, seen, result, 'result' in sd


def process_data(sd_handle):
    # shared-dict.md, "Configuration Passing"
    sd = SharedDict(sd_handle)
    db_config = sd['db']
    port = db_config.get('port') or db_config.get(b'port')
    sd['results'] = {'rows_processed': 1000, 'port': port}


def add_to_cart(session, item):
    # shared-dict.md, "Session State"
    sd = SharedDict(session)
    sd['cart'] = sd['cart'] + [item]
    return len(sd['cart'])


def dict_errors(sd_handle):
    sd = SharedDict(sd_handle)
    out = []
    try:
        sd['missing']
    except KeyError:
        out.append('getitem KeyError')
    try:
        del sd['missing']
    except KeyError:
        out.append('delitem KeyError')
    out.append(sd.get('missing'))
    out.append(sd.get('missing', 'default'))
    try:
        sd['bad'] = {1, 2}
    except TypeError:
        out.append('set TypeError')
    return out


def destroy_from_python(sd_handle):
    sd = SharedDict(sd_handle)
    sd.destroy()
    sd.destroy()
    try:
        sd['x']
    except RuntimeError:
        return 'destroyed'
    return 'still there'
