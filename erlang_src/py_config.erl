%% @doc Where things are and how a port program is started.
-module(py_config).

-define(READ_SPIN_US, 100).

-export([port_program/0, python_pkg_dir/0, port_args/2, port_args/3, call_timeout/0,
         max_frame/0]).

%% @doc The port program: app env `port_program', else $EP_PORT_PROGRAM, else
%% priv/erlang_python_port next to this application's ebin.
-spec port_program() -> file:filename().
port_program() ->
    case application:get_env(erlang_python, port_program) of
        {ok, Path} -> Path;
        undefined ->
            case os:getenv("EP_PORT_PROGRAM") of
                false -> filename:join([app_root(), "priv", "erlang_python_port"]);
                Path -> Path
            end
    end.

%% @doc The directory holding the Python package `erlang'.
-spec python_pkg_dir() -> file:filename().
python_pkg_dir() ->
    %% A checkout has it next to ebin; `rebar3 compile' at the repository root
    %% links priv/ (only) into _build, so follow that link back to the checkout.
    Priv = filename:join(app_root(), "priv"),
    Linked = case file:read_link(Priv) of
                 {ok, Target} -> [filename:join(filename:dirname(filename:absname(Target, app_root())),
                                                "python_pkg")];
                 {error, _} -> []
             end,
    Candidates = [filename:join(app_root(), "python_pkg") | Linked],
    case [Dir || Dir <- Candidates, filelib:is_dir(Dir)] of
        [Dir | _] -> Dir;
        [] -> filename:join(Priv, "python")
    end.

%% @doc Command-line arguments of a port program hosting `Contexts' contexts.
-spec port_args(pos_integer(), [file:filename_all()]) -> [string()].
port_args(Contexts, PythonPath) ->
    port_args(Contexts, PythonPath, undefined).

%% @doc The same, with resident memory capped at `MaxMemory' bytes.
-spec port_args(pos_integer(), [file:filename_all()], pos_integer() | undefined) -> [string()].
port_args(Contexts, PythonPath, MaxMemory) ->
    Cap = case MaxMemory of
              N when is_integer(N), N > 0 -> ["--max-memory", integer_to_list(N)];
              _ -> []
          end,
    Cap ++ base_args(Contexts, PythonPath).

base_args(Contexts, PythonPath) ->
    Paths = [python_pkg_dir() | [to_list(P) || P <- PythonPath]],
    ["--contexts", integer_to_list(Contexts)]
        ++ lists:append([["--python-path", P] || P <- Paths])
        ++ ["--max-frame", integer_to_list(max_frame()),
            "--read-spin-us", integer_to_list(read_spin_us()),
            "--scheduling", atom_to_list(scheduling())].

%% How long a port program's reading thread polls before it sleeps (see
%% port_program/io/pipe_source.hpp); app env `read_spin_us', else
%% $EP_READ_SPIN_US, else ?READ_SPIN_US.
read_spin_us() ->
    case application:get_env(erlang_python, read_spin_us) of
        {ok, N} when is_integer(N), N >= 0, N =< 10000 -> N;
        _ ->
            case string:to_integer(os:getenv("EP_READ_SPIN_US", "")) of
                {N, ""} when N >= 0, N =< 10000 -> N;
                _ -> ?READ_SPIN_US
            end
    end.

%% The CPU scheduling policy of port programs (see port_program/main.cpp):
%% app env `port_scheduling', else $EP_PORT_SCHEDULING, else batch.
scheduling() ->
    case application:get_env(erlang_python, port_scheduling) of
        {ok, Policy} when Policy =:= batch; Policy =:= normal -> Policy;
        _ ->
            case os:getenv("EP_PORT_SCHEDULING") of
                "normal" -> normal;
                _ -> batch
            end
    end.

%% @doc Default timeout of py:call/eval/exec, in milliseconds.
-spec call_timeout() -> timeout().
call_timeout() ->
    application:get_env(erlang_python, call_timeout, 30000).

%% @doc The largest frame a port program accepts (app env `max_frame', default 64 MiB),
%% as the port programs started from now on get it.
-spec max_frame() -> pos_integer().
max_frame() ->
    application:get_env(erlang_python, max_frame, 64 bsl 20).

%% The application's root: code:lib_dir/1 needs the directory to be named after
%% the application, which a git checkout need not be.
app_root() ->
    filename:dirname(filename:dirname(code:which(?MODULE))).

to_list(P) when is_binary(P) -> binary_to_list(P);
to_list(P) -> P.
