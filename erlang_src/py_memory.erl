%% @doc Python memory: statistics, garbage collection, tracemalloc.
%%
%% `memory_stats/0' answers for the context the caller would use in the
%% `default' pool (the one it used last, if idle): each port program has its
%% own heap. `gc/0,1' collects in every context of this node and returns the
%% total collected. `tracemalloc_start/0,1' traces in every context of the
%% node, including ones started later, until `tracemalloc_stop/0'.
-module(py_memory).

-include("py_protocol.hrl").

-export([memory_stats/0, gc/0, gc/1, tracemalloc_start/0, tracemalloc_start/1,
         tracemalloc_stop/0]).

-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    py:call('erlang._memory', stats, []).

-spec gc() -> {ok, non_neg_integer()} | {error, term()}.
gc() ->
    gc(2).

%% @doc Collects generations 0 up to `Generation' (0, 1 or 2).
-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    Timeout = py_config:call_timeout(),
    Build = fun(C) -> fun(R) -> [?PY_MSG_CALL, R, C, <<"erlang._memory">>, <<"collect">>, [Generation], #{}] end end,
    Sent = [py_request:send(Ctx, Build) || Ctx <- py_setup:local_contexts()],
    Results = [case S of {ok, Ref} -> py_request:wait(Ref, Timeout); E -> E end || S <- Sent],
    case [E || {error, _} = E <- Results] of
        [] -> {ok, lists:sum([N || {ok, N} <- Results])};
        [Error | _] -> Error
    end;
gc(Other) ->
    {error, {badarg, Other}}.

-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() ->
    tracemalloc_start(1).

%% @doc Starts tracing allocations, keeping `Frames' frames of each.
-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(Frames) when is_integer(Frames), Frames >= 1 ->
    py_setup:put(tracemalloc, <<"__import__('erlang._memory')._memory.tracemalloc_start(",
                                (integer_to_binary(Frames))/binary, ")">>);
tracemalloc_start(Other) ->
    {error, {badarg, Other}}.

-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    py_setup:delete(tracemalloc, <<"__import__('erlang._memory')._memory.tracemalloc_stop()">>).
