%% Helpers shared by the Common Test suites.
-module(py_test_util).

-export([start_app/1, stop_app/1, events_py/0, wait_until/2]).

-define(APP, erlang_python).

%% @doc (Re)starts erlang_python with `Dirs' as its python_path; returns what
%% stop_app/1 needs to restore the application environment.
-spec start_app([file:filename()]) -> [{old_python_path, undefined | {ok, term()}}].
start_app(Dirs) ->
    _ = application:stop(?APP),
    _ = application:load(?APP),
    OldPath = application:get_env(?APP, python_path),
    ok = application:set_env(?APP, python_path, Dirs),
    {ok, _} = application:ensure_all_started(?APP),
    [{old_python_path, OldPath}].

%% @doc Stops erlang_python and restores the python_path start_app/1 replaced.
-spec stop_app(list()) -> ok.
stop_app(Config) ->
    _ = application:stop(?APP),
    case proplists:get_value(old_python_path, Config) of
        {ok, Old} -> application:set_env(?APP, python_path, Old);
        _ -> application:unset_env(?APP, python_path)
    end.

%% @doc Polls Fun every 10 ms until it returns something other than false, and
%% returns that; fails the test case after Timeout ms.
-spec wait_until(fun(() -> term()), non_neg_integer()) -> term().
wait_until(Fun, Timeout) ->
    wait_until(Fun, erlang:monotonic_time(millisecond) + Timeout, Timeout).

wait_until(Fun, Deadline, Timeout) ->
    case Fun() of
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({condition_not_met_within, Timeout});
                false -> timer:sleep(10), wait_until(Fun, Deadline, Timeout)
            end;
        Value ->
            Value
    end.

%% @doc Python source of named events shared by the contexts of one port
%% program: wait_event(Name, Notify, Timeout) (tells Notify, if not None, it
%% waits) and set_event(Name). Part of the suites' helper modules.
-spec events_py() -> binary().
events_py() ->
    <<"
import os
import threading

import erlang

_events = {}
_events_lock = threading.Lock()


def _event(name):
    with _events_lock:
        return _events.setdefault(name, threading.Event())


def wait_event(name, notify, timeout):
    \"\"\"Tells `notify` (if any) it waits, then waits for set_event(name) from
    another context of the same port program.\"\"\"
    ev = _event(name)
    if notify is not None:
        erlang.send(notify, (erlang.Atom('waiting'), name, os.getpid()))
    return ev.wait(timeout)


def set_event(name):
    _event(name).set()
    return True
">>.
