%% @doc The linked-in driver backend: the port programs' C++ core inside the
%% VM (priv/erlang_python_drv.so), loaded with erl_ddll. A pool of backend
%% `driver' opens `open_port({spawn_driver, "erlang_python_drv"}, [binary])'
%% where the port backend spawns a port program; the frames are the same
%% (without the {packet,4} prefix), so py_port serves both. Replies go
%% straight from the driver to the process that wrote the request.
%%
%% One CPython per VM: every driver port (one per port program the pool's
%% mode would start) hosts its own contexts in it, sharing one GIL,
%% `sys.modules' and `sys.path'. What needs a process of its own (mode
%% `owngil', `max_memory', `env') runs on port programs; asking for it with
%% `backend => driver' explicitly is an error. See the README, "The
%% linked-in driver backend".
-module(py_driver).

-include("py_protocol.hrl").

-export([default_backend/0, backend/2, open/2, is_driver/1, call/3, write_sync/2, forget/2,
         dir/0]).

-define(NAME, "erlang_python_drv").

-define(CONTROL_WRITE, 1).
-define(CONTROL_FORGET, 2).
-define(CONTROL_CALL, 3).

-type backend() :: port | driver.
-export_type([backend/0]).

%% @doc The backend of pools started without option `backend': app env
%% `backend', else $EP_BACKEND (`port' or `driver'), else `port'.
-spec default_backend() -> backend().
default_backend() ->
    py_config:choice(backend, "EP_BACKEND", [port, driver], port).

%% @doc The backend of a pool of `Mode' started with `Opts'. What needs an OS
%% process of its own (a GIL of its own, a memory cap, environment variables)
%% gets a port program: by default silently, asked for the driver explicitly
%% it is an error.
-spec backend(atom(), map()) -> {ok, backend()} | {error, term()}.
backend(Mode, Opts) ->
    Needs = [owngil || Mode =:= owngil]
        ++ [max_memory || is_map_key(max_memory, Opts)]
        ++ [env || maps:get(env, Opts, #{}) =/= #{}],
    case {maps:find(backend, Opts), Needs} of
        {{ok, driver}, [Need | _]} -> {error, {badarg, {backend, driver, Need}}};
        {{ok, B}, _} when B =:= port; B =:= driver -> {ok, B};
        {{ok, B}, _} -> {error, {badarg, {backend, B}}};
        {error, []} -> {ok, default_backend()};
        {error, _} -> {ok, port}
    end.

%% @doc Opens a driver port hosting `Contexts' contexts (loading the driver
%% first if needed); its hello carries what a port program gets as arguments.
%% The owner is the calling process. `OsPid' is the VM's own.
-spec open(pos_integer(), [file:filename_all()]) ->
          {ok, port(), integer()} | {error, term()}.
open(Contexts, PythonPath) ->
    case load() of
        ok ->
            try open_port({spawn_driver, ?NAME}, [binary]) of
                Port ->
                    Paths = [unicode:characters_to_binary(P)
                             || P <- [py_config:python_pkg_dir() | PythonPath]],
                    Hello = #{<<"contexts">> => Contexts, <<"python_path">> => Paths,
                              <<"max_frame">> => py_config:max_frame(),
                              <<"read_spin_us">> => py_config:read_spin_us()},
                    true = port_command(Port, py_msgpack:encode([?PY_MSG_HELLO, ?PY_PROTOCOL_VERSION, Hello])),
                    {ok, Port, list_to_integer(os:getpid())}
            catch
                error:Reason -> {error, {driver, ?NAME, Reason}}
            end;
        Error ->
            Error
    end.

%% @doc True for a port of this driver.
-spec is_driver(port() | pid()) -> boolean().
is_driver(Port) when is_port(Port) ->
    erlang:port_info(Port, name) =:= {name, ?NAME};
is_driver(_) ->
    false.

%% @doc Writes request `Frame' (of ID `Ref') to driver port `Port' as
%% port_command/2 does; its reply `{Ref, ok | error, Payload}' comes as a
%% message all the same. The driver may first poll for the reply for up to
%% the pool's `read_spin_us' (on this process's scheduler, while Python runs
%% on the driver's own thread) and return it, which this sends to itself: a
%% short call then costs no thread wake-up.
-spec call(port(), reference(), iodata()) -> true.
call(Port, Ref, Frame) ->
    case erlang:port_control(Port, ?CONTROL_CALL, Frame) of
        <<1, Payload/binary>> -> self() ! {Ref, ok, Payload};
        <<2, Payload/binary>> -> self() ! {Ref, error, Payload};
        _ -> ok
    end,
    true.

%% @doc Writes `Frame' to a driver port and returns once the driver took it
%% (port_command/2 may return before): a cancellation written so is seen
%% before any later reply could be sent to the caller. Other ports: port_command/2.
-spec write_sync(port() | pid(), iodata()) -> true.
write_sync(Port, Frame) when is_port(Port) ->
    case is_driver(Port) of
        true -> _ = erlang:port_control(Port, ?CONTROL_WRITE, Frame), true;
        false -> erlang:port_command(Port, Frame)
    end;
write_sync(Ctx, Frame) ->
    Ctx ! {'$py_write', Frame},
    true.

%% @doc The caller of request `Ref' gave up: when this returns, the driver
%% sends its reply (if it comes) to the port's owner, whose forward to the
%% deactivated alias is dropped, no longer to the caller.
-spec forget(port(), reference()) -> ok.
forget(Port, Ref) ->
    _ = erlang:port_control(Port, ?CONTROL_FORGET, py_msgpack:encode(Ref)),
    ok.

%% @doc Where the driver is: app env `driver_dir', else $EP_DRIVER_DIR, else
%% the directory of the port program (priv/).
-spec dir() -> file:filename().
dir() ->
    case application:get_env(erlang_python, driver_dir) of
        {ok, Dir} -> Dir;
        undefined ->
            case os:getenv("EP_DRIVER_DIR") of
                false -> filename:dirname(py_config:port_program());
                Dir -> Dir
            end
    end.

%% Internal

load() ->
    Dir = dir(),
    case erl_ddll:try_load(Dir, ?NAME, []) of
        {ok, _} -> ok;
        {error, permanent} -> ok;  % a port is open: loaded for good (CPython cannot unload)
        {error, Reason} -> {error, {driver, filename:join(Dir, ?NAME), erl_ddll:format_error(Reason)}}
    end.
