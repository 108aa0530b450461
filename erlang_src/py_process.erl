%% @private Built-ins behind Python's `erlang.send' and `erlang.whereis'.
-module(py_process).

-export([send/2, whereis_name/1]).

%% @doc Sends `Term' to `Pid'; `false' if `Pid' is a process of this node that
%% has exited (Python raises `erlang.ProcessError').
-spec send(pid(), term()) -> boolean().
send(Pid, Term) when is_pid(Pid), node(Pid) =:= node() ->
    is_process_alive(Pid) andalso begin Pid ! Term, true end;
send(Pid, Term) when is_pid(Pid) ->
    Pid ! Term,
    true;
send(Other, _Term) ->
    error({badarg, Other}).

%% @doc The pid registered as `Name', or `none'.
-spec whereis_name(binary() | atom()) -> pid() | none.
whereis_name(Name) when is_atom(Name) ->
    case whereis(Name) of
        Pid when is_pid(Pid) -> Pid;
        _ -> none
    end;
whereis_name(Name) when is_binary(Name) ->
    try binary_to_existing_atom(Name, utf8) of
        Atom -> whereis_name(Atom)
    catch
        error:badarg -> none
    end.
