%% @doc The erlang_python application: starts the supervision tree and the
%% default pool of Python contexts.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    %% What Python's None comes back as: `none' (default) or `nil' (Elixir).
    case py_msgpack:set_none_as(application:get_env(erlang_python, none_as, none)) of
        ok -> erlang_python_sup:start_link();
        {error, _} = Error -> Error
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
