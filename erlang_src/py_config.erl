%% @doc Where things are and how a port program is started.
-module(py_config).

-include("py_protocol.hrl").

-define(READ_SPIN_US, 100).
%% The port program refuses more (port_program/main.cpp).
-define(MAX_READ_SPIN_US, 10000).
-define(NODE_RETRY_MS, 5000).

-export([port_program/0, python_pkg_dir/0, port_args/2, port_args/3, call_timeout/0,
         max_frame/0, node_retry/0, interrupt_grace/0, read_spin_us/0, choice/4,
         port_env/1]).
%% The reference's application env (see the README, Configuration)
-export([default_pool_size/0, default_pool_mode/0, execution_mode/0, check_env/0,
         known_keys/0]).

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

%% @doc The environment a port program is started with: a pool's own `env'
%% (`Env') and, unless that sets it, `MALLOC_ARENA_MAX' from app env
%% `malloc_arena_max' (default 2; `system' leaves glibc's default, or what the
%% VM's own environment says). glibc gives each thread that allocates while
%% another holds an arena an arena of its own (up to 8 per core), and a port
%% program runs Python on many threads (executor, streams, event loops): the
%% soak grew its port programs 11% in resident memory that way, flat with 2.
-spec port_env([{string(), string() | false}]) -> [{string(), string() | false}].
port_env(Env) ->
    case lists:keymember("MALLOC_ARENA_MAX", 1, Env) of
        true -> Env;
        false ->
            case application:get_env(erlang_python, malloc_arena_max, 2) of
                N when is_integer(N), N > 0 -> [{"MALLOC_ARENA_MAX", integer_to_list(N)} | Env];
                _ -> Env
            end
    end.

%% How long a port program's reading thread polls before it sleeps (see
%% port_program/io/pipe_source.hpp); app env `read_spin_us', else
%% $EP_READ_SPIN_US, else ?READ_SPIN_US. The linked-in driver's executors
%% poll their queue as long.
-spec read_spin_us() -> non_neg_integer().
read_spin_us() ->
    case application:get_env(erlang_python, read_spin_us) of
        {ok, N} when is_integer(N), N >= 0, N =< ?MAX_READ_SPIN_US -> N;
        _ ->
            case string:to_integer(os:getenv("EP_READ_SPIN_US", "")) of
                {N, ""} when N >= 0, N =< ?MAX_READ_SPIN_US -> N;
                _ -> ?READ_SPIN_US
            end
    end.

%% The CPU scheduling policy of port programs (see port_program/main.cpp):
%% app env `port_scheduling', else $EP_PORT_SCHEDULING, else batch.
scheduling() ->
    choice(port_scheduling, "EP_PORT_SCHEDULING", [batch, normal], batch).

%% @doc App env `Key' if it is one of `Allowed', else the OS environment
%% variable `OsVar' if it names one of them, else `Default'.
-spec choice(atom(), string(), [atom()], atom()) -> atom().
choice(Key, OsVar, Allowed, Default) ->
    case application:get_env(erlang_python, Key) of
        {ok, Value} when is_atom(Value) ->
            case lists:member(Value, Allowed) of
                true -> Value;
                false -> os_choice(OsVar, Allowed, Default)
            end;
        _ ->
            os_choice(OsVar, Allowed, Default)
    end.

os_choice(OsVar, Allowed, Default) ->
    Names = [{atom_to_list(A), A} || A <- Allowed],
    proplists:get_value(os:getenv(OsVar, ""), Names, Default).

%% @doc Default timeout of py:call/eval/exec, in milliseconds.
-spec call_timeout() -> timeout().
call_timeout() ->
    application:get_env(erlang_python, call_timeout, 30000).

%% @doc How long a request whose caller timed out (and which was interrupted)
%% may take to end before its port program counts as stuck and is restarted:
%% app env `interrupt_grace' (ms or `infinity', default 5000); a pool's
%% option of that name wins.
-spec interrupt_grace() -> timeout().
interrupt_grace() ->
    case application:get_env(erlang_python, interrupt_grace, 5000) of
        infinity -> infinity;
        N when is_integer(N), N >= 0 -> N;
        _ -> 5000
    end.

%% @doc The largest frame a port program accepts (app env `max_frame', default 64 MiB),
%% as the port programs (and channels) started from now on get it.
-spec max_frame() -> pos_integer().
max_frame() ->
    application:get_env(erlang_python, max_frame, ?PY_DEFAULT_MAX_FRAME).

%% @doc Default `node_retry' of a pool with `nodes' (py_context_router:start_pool/3):
%% milliseconds between attempts to start a member on a node that has none.
-spec node_retry() -> timeout().
node_retry() ->
    ?NODE_RETRY_MS.

%% The application's root: code:lib_dir/1 needs the directory to be named after
%% the application, which a git checkout need not be.
app_root() ->
    filename:dirname(filename:dirname(code:which(?MODULE))).

to_list(P) when is_binary(P) -> binary_to_list(P);
to_list(P) -> P.

%%--------------------------------------------------------------------
%% The reference's application env, beside ours
%%--------------------------------------------------------------------

%% @doc Contexts of the `default' pool: app env `default_pool_size', else the
%% reference's `num_contexts', else one per scheduler.
-spec default_pool_size() -> pos_integer().
default_pool_size() ->
    case env_first([default_pool_size, num_contexts]) of
        {ok, N} when is_integer(N), N > 0 -> N;
        _ -> erlang:system_info(schedulers)
    end.

%% @doc Mode of the `default' pool: app env `default_pool_mode', else the
%% reference's `context_mode' (`owngil': a port program per context, i.e.
%% `process'; `worker': the contexts as threads of one port program), else
%% `auto' (which is `process' for the default pool).
-spec default_pool_mode() -> atom().
default_pool_mode() ->
    case application:get_env(erlang_python, default_pool_mode) of
        {ok, Mode} -> Mode;
        undefined ->
            case application:get_env(erlang_python, context_mode) of
                {ok, owngil} -> process;
                {ok, Mode} -> Mode;
                undefined -> auto
            end
    end.

%% @doc The reference's execution mode of the default pool: `owngil' when
%% each context has a GIL of its own (its own port program), else `worker'.
-spec execution_mode() -> worker | owngil.
execution_mode() ->
    case py_pool:spec(default) of
        {ok, #{mode := worker}} -> worker;
        {ok, _} -> owngil;
        error ->
            case default_pool_mode() of
                worker -> worker;
                _ -> owngil
            end
    end.

%% @doc Every application env key this application reads: ours and the
%% reference's (some of which only mean something to other modules).
-spec known_keys() -> [atom()].
known_keys() ->
    [%% ours
     default_pool_size, default_pool_mode, io_pool_size, io_pool_mode, python_path,
     call_timeout, max_frame, port_program, read_spin_us, port_scheduling, max_new_atoms,
     none_as, interrupt_grace, backend, driver_dir, malloc_arena_max,
     %% the reference's
     num_contexts, context_mode, max_concurrent, event_loop_pool_size, imports, paths,
     enable_memory_limits, preload_code, shared_dict, logging, log_level, tracing].

%% @doc Logs one warning per unknown key of this application's env (a
%% misspelt key otherwise does nothing, silently). Called at start.
-spec check_env() -> ok.
check_env() ->
    Known = known_keys() ++ [included_applications],
    case [K || {K, _} <- application:get_all_env(erlang_python), not lists:member(K, Known)] of
        [] -> ok;
        Unknown ->
            [logger:warning("erlang_python: unknown application env key ~p (ignored); "
                            "known keys: ~p", [K, known_keys()], #{domain => [erlang_python]})
             || K <- Unknown],
            ok
    end.

env_first([]) -> undefined;
env_first([K | Ks]) ->
    case application:get_env(erlang_python, K) of
        {ok, _} = Found -> Found;
        undefined -> env_first(Ks)
    end.
