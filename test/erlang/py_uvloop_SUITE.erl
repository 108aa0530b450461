%% The Python side's asyncio integration on another event loop than the
%% standard one: uvloop (Debian's python3-uvloop). erlang.async_call and
%% Channel.async_receive only need add_reader on an eventfd, so they must work
%% on any asyncio loop.
-module(py_uvloop_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([async_call_on_uvloop/1, channel_async_receive_on_uvloop/1,
         byte_channel_async_on_uvloop/1]).

-define(APP, erlang_python).

all() ->
    [async_call_on_uvloop, channel_async_receive_on_uvloop, byte_channel_async_on_uvloop].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(?APP),
    Ctx = py:context(1),
    case py_context:exec(Ctx, helpers(), shared) of
        ok -> [{ctx, Ctx} | Config];
        {error, {'ModuleNotFoundError', _}} -> {skip, "python3-uvloop is not installed"}
    end.

end_per_suite(Config) ->
    _ = py:unregister_function(uv_double),
    _ = application:stop(?APP),
    Config.

helpers() ->
    <<"
import asyncio
import uvloop
from erlang.channel import Channel, ByteChannel

def on_uvloop(coro_fn, *args):
    loop = uvloop.new_event_loop()
    try:
        assert type(loop).__module__.startswith('uvloop')
        return loop.run_until_complete(coro_fn(*args))
    finally:
        loop.close()

async def gather_calls(n):
    return await asyncio.gather(*(erlang.async_call('uv_double', i) for i in range(n)))

async def consume(h):
    out = []
    async for m in Channel(h):
        out.append(m)
    return out

async def consume_bytes(h):
    ch = ByteChannel(h)
    first = await ch.async_receive_bytes()
    rest = [c async for c in ch]
    return [first] + rest

def uv_gather(n):
    return on_uvloop(gather_calls, n)

def uv_consume(h):
    return on_uvloop(consume, h)

def uv_consume_bytes(h):
    return on_uvloop(consume_bytes, h)
">>.

async_call_on_uvloop(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(uv_double, fun([X]) -> 2 * X end),
    Expected = [2 * I || I <- lists:seq(0, 199)],
    {ok, Expected} = py:call(Ctx, '__main__', uv_gather, [200]).

channel_async_receive_on_uvloop(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    Self = self(),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', uv_consume, [Ch])} end),
    Items = [{item, I, <<"payload">>} || I <- lists:seq(1, 2000)],
    [ok = py_channel:send(Ch, Item) || Item <- Items],
    ok = py_channel:close(Ch),
    receive {done, Result} -> {ok, Items} = Result
    after 30000 -> ct:fail(timeout)
    end.

byte_channel_async_on_uvloop(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, B} = py_byte_channel:new(),
    Self = self(),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', uv_consume_bytes, [B])} end),
    ok = py_byte_channel:send(B, <<1, 2, 3>>),
    ok = py_byte_channel:send(B, <<"tail">>),
    ok = py_byte_channel:close(B),
    receive {done, Result} -> {ok, [<<1, 2, 3>>, <<"tail">>]} = Result
    after 30000 -> ct:fail(timeout)
    end.
