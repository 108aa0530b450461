%% @doc `make demo': a short tour of the main job.
-module(py_demo).
-export([main/0]).

-spec main() -> no_return().
main() ->
    %% Python's output is logged with domain [python]; OTP's default handler
    %% only shows domain-less and OTP events unless told otherwise.
    ok = logger:add_handler_filter(default, python_output,
                                   {fun logger_filters:domain/2, {log, sub, [python]}}),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    say("Python ~s, running in ~p port programs", [Version, py_pool:num_contexts(default)]),
    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),
    show("py:call(json, dumps, [#{name => <<\"Alice\">>}], #{sort_keys => true})",
         py:call(json, dumps, [#{name => <<"Alice">>}], #{sort_keys => true})),
    show("py:eval(<<\"x * y\">>, #{x => 6, y => 7})", py:eval(<<"x * y">>, #{x => 6, y => 7})),
    show("py:eval(<<\"2 ** 100\">>)", py:eval(<<"2 ** 100">>)),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def greet(name):\n    print(f'hello, {name}!')\n    return len(name)">>),
    show("py:call(Ctx, '__main__', greet, [<<\"Erlang\">>])  (print goes to the logger)",
         py:call(Ctx, '__main__', greet, [<<"Erlang">>])),
    show("py:call(operator, truediv, [1, 0])", py:call(operator, truediv, [1, 0])),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    show("py:eval(<<\"erlang.call('double', 21)\">>)  (Python calls Erlang)",
         py:eval(Ctx, <<"erlang.call('double', 21)">>, #{})),
    %% shared: the process that calls it is another one
    ok = py_context:exec(Ctx, <<"from erlang.channel import Channel\n"
                                "def total(ch):\n    return sum(Channel(ch))">>, shared),
    {ok, Ch} = py_channel:new(#{max_size => 1000}),
    Self = self(),
    spawn_link(fun() -> Self ! {sum, py:call(Ctx, '__main__', total, [Ch])} end),
    [ok = py_channel:send(Ch, I) || I <- lists:seq(1, 100)],
    ok = py_channel:close(Ch),
    show("100 messages through a py_channel, summed by Python",
         receive {sum, Sum} -> Sum end),
    Owner = owner(Ctx),
    #{os_pid := OsPid} = py_port:info(Owner),
    say("Crashing the Python process ~p with a segfault (ctypes.string_at(0))...", [OsPid]),
    show("py:call(Ctx, ctypes, string_at, [0])", py:call(Ctx, ctypes, string_at, [0])),
    NewOwner = wait_for_new_owner(Ctx, Owner, 100),
    #{os_pid := NewOsPid} = py_port:info(NewOwner),
    say("The supervisor restarted it as OS process ~p; the context ~p serves on, "
        "and the node never noticed.", [NewOsPid, Ctx]),
    show("py:call(math, factorial, [20])", py:call(math, factorial, [20])),
    ok = application:stop(erlang_python),
    say("Done.", []),
    halt(0).

owner(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, _Port, Owner, _Local} -> Owner;
        error -> none
    end.

%% The context's pid stays; its port program's owner is new after a restart.
wait_for_new_owner(Ctx, Old, 0) -> error({no_restart, Ctx, Old});
wait_for_new_owner(Ctx, Old, N) ->
    case owner(Ctx) of
        New when is_pid(New), New =/= Old -> New;
        _ -> receive after 20 -> wait_for_new_owner(Ctx, Old, N - 1) end
    end.

show(Expr, Result) -> say("~ts~n    -> ~p", [Expr, Result]).
say(Format, Args) -> io:format(Format ++ "~n", Args).
