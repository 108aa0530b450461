%% @doc What test/release/run.sh checks in a running release.
-module(relapp).
-export([check/0]).

%% @doc A call, a callback and a channel round trip; `ok' or what failed.
-spec check() -> ok | {failed, term()}.
check() ->
    try
        %% The node answers before its boot has finished: wait for the start.
        {ok, _} = application:ensure_all_started(relapp),
        {ok, 4.0} = py:call(math, sqrt, [16]),
        ok = py:register_function(double, fun([X]) -> X * 2 end),
        {ok, 42} = py:eval(<<"erlang.call('double', 21)">>),
        {ok, Ch} = py_channel:new(),
        Ctx = py:context(1),
        %% shared: another process calls it
        ok = py_context:exec(Ctx, <<"from erlang.channel import Channel, reply\n"
                            "def upper_all(ref):\n"
                            "    for sender, text in Channel(ref):\n"
                            "        reply(sender, text.upper())\n">>, shared),
        Self = self(),
        Caller = spawn(fun() -> Self ! {done, py:call(Ctx, '__main__', upper_all, [Ch])} end),
        ok = py_channel:send(Ch, {self(), <<"hello">>}),
        <<"HELLO">> = receive R when is_binary(R) -> R after 10000 -> no_reply end,
        ok = py_channel:close(Ch),
        {ok, none} = receive {done, D} -> D after 10000 -> {no_result, Caller} end,
        ok
    catch
        Class:Reason:Stack -> {failed, {Class, Reason, hd(Stack)}}
    end.
