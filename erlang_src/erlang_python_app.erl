%% @doc The erlang_python application: starts the supervision tree and the
%% default pool of Python contexts.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    erlang_python_sup:start_link().

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
