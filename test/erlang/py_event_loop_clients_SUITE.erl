%% Real asyncio clients and servers on an event loop in a port program,
%% driven from Erlang over loopback: an aiohttp server and uvicorn serving a
%% FastAPI app (requests from httpc), and an aiohttp client (requests to a
%% gen_tcp HTTP server here). Every other request's handler (or the client
%% itself) awaits erlang.async_call. Group `erlang_loop' runs them on
%% ErlangEventLoop with 10,000 requests each; group `stdlib_loop' runs them
%% on asyncio's standard loop with fewer, to tell a fault of the loop from a
%% fault of the suite. Under `make test-asan' (ASAN_OPTIONS set) the erlang
%% group makes 2,000 requests per case: enough for the sanitizers, and it keeps
%% `make test' short. Python side: py_event_loop_clients_SUITE_data/loop_clients.py.
-module(py_event_loop_clients_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([aiohttp_server/1, uvicorn_fastapi/1, aiohttp_client/1]).

-define(APP, erlang_python).
-define(POOL, loop_clients).
-define(CONCURRENCY, 16).

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [{group, erlang_loop}, {group, stdlib_loop}].

groups() ->
    Cases = [aiohttp_server, uvicorn_fastapi, aiohttp_client],
    [{erlang_loop, [], Cases}, {stdlib_loop, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(?APP),
    {ok, _} = application:ensure_all_started(inets),
    ok = py:register_function(clients_double, fun([X]) -> 2 * X end),
    {ok, [Ctx]} = py_context_router:start_pool(?POOL, 1, #{mode => process,
                                                           python_path => [?config(data_dir, Config)]}),
    case py:call(Ctx, loop_clients, has_loop, [<<"stdlib">>]) of
        {ok, true} -> [{ctx, Ctx} | Config];
        {error, {'ModuleNotFoundError', Why}} -> {skip, Why}
    end.

end_per_suite(_Config) ->
    ok = py_context_router:stop_pool(?POOL),
    ok = py:unregister_function(clients_double),
    ok.

init_per_group(Group, Config) ->
    {Kind, Requests} = case Group of
                           erlang_loop -> {<<"erlang">>, erlang_loop_requests()};
                           stdlib_loop -> {<<"stdlib">>, 1000}
                       end,
    case py:call(?config(ctx, Config), loop_clients, has_loop, [Kind]) of
        {ok, true} -> [{kind, Kind}, {requests, Requests} | Config];
        {ok, false} -> {skip, "this port program has no ErlangEventLoop"}
    end.

end_per_group(_Group, _Config) ->
    ok.

erlang_loop_requests() ->
    case os:getenv("ASAN_OPTIONS") of
        false -> 10000;
        _ -> 2000
    end.

%%====================================================================
%% Cases
%%====================================================================

aiohttp_server(Config) ->
    serve_and_load(Config, aiohttp_server_start, aiohttp_server_stop).

uvicorn_fastapi(Config) ->
    serve_and_load(Config, uvicorn_start, uvicorn_stop).

%% An aiohttp client on the loop, on the context's own thread, against a
%% keep-alive HTTP/1.1 server written here with gen_tcp.
aiohttp_client(Config) ->
    Ctx = ?config(ctx, Config),
    N = ?config(requests, Config),
    {ok, LSock} = gen_tcp:listen(0, [binary, {ip, loopback}, {active, false}, {reuseaddr, true},
                                     {packet, http_bin}, {backlog, 128}]),
    {ok, Port} = inet:port(LSock),
    Served = counters:new(1, []),
    Acceptor = spawn_link(fun() -> accept_loop(LSock, Served) end),
    try
        {ok, #{<<"ok">> := N, <<"errors">> := 0, <<"loop">> := LoopName}} =
            py:call(Ctx, loop_clients, aiohttp_client_run, [?config(kind, Config), Port, N, ?CONCURRENCY],
                    #{timeout => 240000}),
        ok = check_loop_name(Config, LoopName),
        N = counters:get(Served, 1)
    after
        unlink(Acceptor),
        exit(Acceptor, kill),
        gen_tcp:close(LSock)
    end.

%%====================================================================
%% Helpers
%%====================================================================

%% Starts a server on the loop, sends it ?config(requests) GETs from
%% ?CONCURRENCY httpc callers (every other one to a handler that awaits
%% erlang.async_call), checks every answer, stops the server.
serve_and_load(Config, Start, Stop) ->
    Ctx = ?config(ctx, Config),
    N = ?config(requests, Config),
    {ok, Port} = py:call(Ctx, loop_clients, Start, [?config(kind, Config)]),
    Profile = list_to_atom("loop_clients_" ++ integer_to_list(Port)),
    {ok, _} = inets:start(httpc, [{profile, Profile}]),
    ok = httpc:set_options([{max_sessions, ?CONCURRENCY}, {max_keep_alive_length, N},
                            {keep_alive_timeout, 60000}], Profile),
    try
        Results = load(Port, Profile, N),
        Errors = [E || {error, _} = E <- Results],
        ct:pal("~b requests, ~b errors ~p", [N, length(Errors), lists:sublist(Errors, 5)]),
        [] = Errors,
        N = length(Results),
        [LoopName] = lists:usort([L || {ok, L} <- Results]),
        ok = check_loop_name(Config, LoopName)
    after
        ok = inets:stop(httpc, Profile),
        {ok, true} = py:call(Ctx, loop_clients, Stop, [])
    end.

load(Port, Profile, N) ->
    Parent = self(),
    Chunks = [lists:seq(W, N - 1, ?CONCURRENCY) || W <- lists:seq(0, ?CONCURRENCY - 1)],
    Pids = [spawn_link(fun() -> Parent ! {self(), [get(Port, Profile, I) || I <- Is]} end)
            || Is <- Chunks],
    lists:append([receive {P, Rs} -> Rs end || P <- Pids]).

get(Port, Profile, I) ->
    Path = case I rem 2 of 0 -> "/plain/"; 1 -> "/call/" end,
    Url = lists:concat(["http://127.0.0.1:", Port, Path, I]),
    case httpc:request(get, {Url, []}, [{timeout, 30000}], [{body_format, binary}], Profile) of
        {ok, {{_, 200, _}, _, Body}} -> check_body(I, Body);
        Other -> {error, {I, Other}}
    end.

check_body(I, Body) ->
    IB = integer_to_binary(I),
    Doubled = integer_to_binary(2 * I),
    Fields = binary:split(Body, [<<"{">>, <<"}">>, <<",">>, <<":">>, <<"\"">>, <<" ">>],
                         [global, trim_all]),
    Expected = case I rem 2 of
                   0 -> [<<"n">>, IB];
                   1 -> [<<"n">>, IB, <<"doubled">>, Doubled]
               end,
    case lists:prefix(Expected, Fields) of
        true -> {ok, lists:last(Fields)};  % the loop's class name
        false -> {error, {I, Body}}
    end.

check_loop_name(Config, LoopName) ->
    Expected = case ?config(kind, Config) of
                   <<"erlang">> -> <<"ErlangEventLoop">>;
                   <<"stdlib">> -> <<"_UnixSelectorEventLoop">>
               end,
    case LoopName of
        Expected -> ok;
        _ -> ct:fail({ran_on, LoopName, expected, Expected})
    end.

accept_loop(LSock, Served) ->
    case gen_tcp:accept(LSock) of
        {ok, Sock} ->
            Pid = spawn(fun() -> receive go -> serve_http(Sock, Served) end end),
            ok = gen_tcp:controlling_process(Sock, Pid),
            Pid ! go,
            accept_loop(LSock, Served);
        {error, closed} ->
            ok
    end.

%% HTTP/1.1 keep-alive: GET /echo/X answers "echo X".
serve_http(Sock, Served) ->
    case gen_tcp:recv(Sock, 0, 60000) of
        {ok, {http_request, 'GET', {abs_path, <<"/echo/", Value/binary>>}, _}} ->
            ok = skip_headers(Sock),
            Body = <<"echo ", Value/binary>>,
            counters:add(Served, 1, 1),
            ok = gen_tcp:send(Sock, [<<"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                       "Content-Length: ">>, integer_to_binary(byte_size(Body)),
                                     <<"\r\n\r\n">>, Body]),
            serve_http(Sock, Served);
        _ ->
            gen_tcp:close(Sock)
    end.

skip_headers(Sock) ->
    case gen_tcp:recv(Sock, 0, 60000) of
        {ok, http_eoh} -> ok;
        {ok, {http_header, _, _, _, _}} -> skip_headers(Sock)
    end.
