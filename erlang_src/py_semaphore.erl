%% @doc The limit on concurrent Python calls (app env `max_concurrent').
%%
%% A synchronous call takes a unit before it is sent and gives it back when it
%% has its reply; past the limit it fails at once with
%% `{error, {overloaded, Current, Max}}'. The count is one `atomics' cell
%% (no server, no ETS on the call path). A caller killed mid-call cannot give
%% its unit back itself: py_inflight, which already watches every calling
%% process for its pool's in-flight counter, gives it back for it.
-module(py_semaphore).

-export([init/0, max_concurrent/0, current/0, set_max_concurrent/1,
         acquire/0, release/0]).

-define(KEY, '$py_semaphore').   %% atomics: 1 current, 2 max

%% @doc Creates the counter (application start), with the limit of the app
%% env `max_concurrent' (default: unlimited, see the README).
-spec init() -> ok.
init() ->
    Ref = case persistent_term:get(?KEY, undefined) of
              undefined -> A = atomics:new(2, [{signed, true}]), persistent_term:put(?KEY, A), A;
              A -> A
          end,
    atomics:put(Ref, 2, configured_max()),
    ok.

%% @doc The limit.
-spec max_concurrent() -> pos_integer().
max_concurrent() ->
    atomics:get(ref(), 2).

%% @doc Calls in flight now.
-spec current() -> non_neg_integer().
current() ->
    max(0, atomics:get(ref(), 1)).

%% @doc Changes the limit at once (calls in flight are not affected).
-spec set_max_concurrent(pos_integer()) -> ok | {error, {badarg, term()}}.
set_max_concurrent(N) when is_integer(N), N > 0 ->
    atomics:put(ref(), 2, N);
set_max_concurrent(N) ->
    {error, {badarg, N}}.

%% @doc Takes a unit, or fails if the limit is reached.
-spec acquire() -> ok | {error, {overloaded, non_neg_integer(), pos_integer()}}.
acquire() ->
    Ref = ref(),
    Current = atomics:add_get(Ref, 1, 1),
    case atomics:get(Ref, 2) of
        Max when Current =< Max -> ok;
        Max -> atomics:sub(Ref, 1, 1), {error, {overloaded, Current - 1, Max}}
    end.

%% @doc Gives a unit back.
-spec release() -> ok.
release() ->
    atomics:sub(ref(), 1, 1).

ref() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> init(), persistent_term:get(?KEY);
        Ref -> Ref
    end.

configured_max() ->
    case application:get_env(erlang_python, max_concurrent) of
        {ok, N} when is_integer(N), N > 0 -> N;
        _ -> erlang:system_info(process_limit)
    end.
