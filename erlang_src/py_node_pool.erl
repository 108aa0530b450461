%% @doc The owner of a node pool: a pool whose contexts run on other connected
%% nodes (and on this one, if it is listed), started with
%% `py_context_router:start_pool(Pool, Size, #{nodes => Nodes})'.
%%
%% Each listed node runs `Size' contexts (in the pool's mode, so `process'
%% makes `Size' port programs there, `worker' one) as a *member*: a pool of its
%% own under that node's `py_pools_sup', started by this process with erpc. A
%% member watches this process and stops when it goes, or when the connection
%% to this node is lost; its contexts tell this process when they (re)start.
%% On this node the member is supervised by this process instead (it is a
%% child of `py_pools_sup' already, which cannot be called while it stops us).
%%
%% This process keeps the pool's entry in `py_pools' up to date: the tuple of
%% live contexts that {@link py_pool:get_context/1} chooses from on the
%% caller's node, and, for each remote context, an entry in `py_contexts' with
%% which {@link py_request} sends to it. It is never on the call path.
%%
%% When a node goes down its contexts leave the pool at once (callers waiting
%% on them have already had `{error, {nodedown, Node}}' from their own
%% monitors). A node that is down or could not start its member is tried again
%% when it reconnects and every `node_retry' ms (default 5000; `infinity'
%% disables the timer): its contexts come back as new processes once it
%% is connected and runs erlang_python.
-module(py_node_pool).
-behaviour(gen_server).

-export([start_link/2, node_status/1]).
-export([start_watcher/2, watcher_init/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(JOIN_TIMEOUT, 15000).
-define(STOP_TIMEOUT, 10000).

-record(member, {base :: non_neg_integer(),
                 key :: py_pool:member_key() | undefined,
                 %% the member's supervisor and how we watch it: a monitor for a
                 %% remote one, a link for ours
                 sup :: pid() | undefined,
                 mon :: reference() | link | undefined,
                 %% a join in progress: its erpc request, the key it will have,
                 %% and the notices of its contexts that came before its reply
                 pending :: {erpc:request_id(), py_pool:member_key(), list()} | undefined,
                 error :: term()}).

-record(state, {pool :: atom(),
                size :: pos_integer(),
                opts :: map(),
                retry :: timeout(),
                counters :: atomics:atomics_ref(),
                members :: #{node() => #member{}},
                slots = #{} :: #{non_neg_integer() => {pid(), reference()}},
                mons = #{} :: #{reference() => non_neg_integer()},
                timer :: reference() | undefined}).

%% @doc Starts the owner of node pool `Pool'; it returns once every listed node
%% has started its contexts or failed to. Fails if no node could.
-spec start_link(atom(), py_pool:spec()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Spec) ->
    gen_server:start_link(?MODULE, {Pool, Spec}, []).

%% @doc Each listed node of node pool `Pool' and whether its contexts are in
%% the pool (`up') or not (`{down, LastError}').
-spec node_status(atom()) -> [{node(), up | {down, term()}}] | {error, term()}.
node_status(Pool) ->
    case [Pid || {Id, Pid, worker, [?MODULE]} <- supervisor:which_children(py_pools_sup),
                 Id =:= Pool, is_pid(Pid)] of
        [Owner] -> gen_server:call(Owner, node_status);
        [] -> {error, {not_a_node_pool, Pool}}
    end.

%% gen_server callbacks

-spec init({atom(), py_pool:spec()}) -> {ok, #state{}} | {stop, term()}.
init({Pool, #{size := Size, nodes := Nodes, opts := Opts, retry := Retry}}) ->
    process_flag(trap_exit, true),
    _ = (catch net_kernel:monitor_nodes(true)),
    Members = maps:from_list([{N, #member{base = I * Size, error = not_started}}
                              || {I, N} <- lists:zip(lists:seq(0, length(Nodes) - 1), Nodes)]),
    Counters = ets:lookup_element(py_pools, Pool, 3),
    %% Entries of remote contexts a killed predecessor left behind.
    _ = ets:select_delete(py_contexts, [{{'_', '$1', '_', '_', {Counters, '_'}},
                                         [{is_pid, '$1'}], [true]}]),
    State0 = #state{pool = Pool, size = Size, opts = Opts, retry = Retry,
                    counters = Counters, members = Members},
    State = publish(join_all(Nodes, State0)),
    case maps:size(State#state.slots) of
        0 ->
            {stop, {no_nodes, [{N, E} || {N, #member{error = E}} <- maps:to_list(State#state.members)]}};
        _ ->
            {ok, schedule_retry(State)}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(node_status, _From, #state{members = Members} = State) ->
    {reply, [{N, case M of
                     #member{key = undefined, error = E} -> {down, E};
                     _ -> up
                 end} || {N, M} <- lists:sort(maps:to_list(Members))], State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({py_member_context, Key, Slot, Ctx, PortOwner, Local} = Notice,
            #state{members = Members} = State) ->
    Node = node(Ctx),
    case Members of
        #{Node := #member{key = Key}} ->
            {noreply, publish(add_context(Slot, Ctx, PortOwner, Local, State))};
        #{Node := #member{pending = {Req, Key, Early}} = M} ->
            %% Replayed after the join's reply (which lists the contexts as
            %% they were when it was sent).
            {noreply, State#state{members = Members#{Node := M#member{pending = {Req, Key, [Notice | Early]}}}}};
        _ ->
            {noreply, State}   % a member we have given up on
    end;
handle_info({'DOWN', MRef, process, _Pid, _Reason} = Msg, #state{mons = Mons} = State) ->
    case Mons of
        #{MRef := Slot} ->
            {noreply, publish(remove_slot(Slot, State))};
        _ ->
            case [N || {N, #member{mon = M}} <- maps:to_list(State#state.members), M =:= MRef] of
                [Node] -> {noreply, member_lost(Node, member_down, State)};
                [] -> handle_other(Msg, State)   % erpc replies come as 'DOWN' too
            end
    end;
handle_info({'EXIT', Sup, Reason}, State) ->
    case maps:find(node(), State#state.members) of
        {ok, #member{sup = Sup}} -> {noreply, member_lost(node(), {member_exit, Reason}, State)};
        _ -> {noreply, State}
    end;
handle_info({nodedown, Node}, #state{members = Members} = State) ->
    case Members of
        #{Node := #member{key = Key}} when Key =/= undefined ->
            {noreply, member_lost(Node, nodedown, State)};
        _ ->
            {noreply, State}
    end;
handle_info({nodeup, Node}, #state{members = Members} = State) ->
    case Members of
        #{Node := #member{key = undefined}} -> {noreply, publish(join(Node, State))};
        _ -> {noreply, State}
    end;
handle_info({timeout, Timer, retry}, #state{timer = Timer} = State) ->
    Down = [N || {N, #member{key = undefined}} <- maps:to_list(State#state.members)],
    State1 = publish(lists:foldl(fun join/2, State#state{timer = undefined}, Down)),
    {noreply, schedule_retry(State1)};
handle_info(Msg, State) ->
    handle_other(Msg, State).

%% The reply to a join in progress, or something to ignore.
handle_other(Msg, #state{members = Members} = State) ->
    Pending = [{N, M} || {N, #member{pending = {_, _, _}} = M} <- maps:to_list(Members)],
    {noreply, join_reply(Msg, Pending, State)}.

%% Stops every member: the port programs on all nodes are gone when this returns.
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, members = Members, slots = Slots}) ->
    _ = py_pool:set_live(Pool, {}),
    [ets:delete(py_contexts, Ctx) || {Ctx, _} <- maps:values(Slots), node(Ctx) =/= node()],
    Remote = [{erpc:send_request(N, py_pool, stop_pool, [Key]), N}
              || {N, #member{key = Key}} <- maps:to_list(Members), Key =/= undefined,
                 N =/= node()],
    case maps:find(node(), Members) of
        {ok, #member{key = Key, sup = Sup}} when Key =/= undefined, is_pid(Sup) ->
            exit(Sup, shutdown),
            receive {'EXIT', Sup, _} -> ok end,
            ets:delete(py_pools, Key);
        _ -> ok
    end,
    [try erpc:receive_response(Req, ?STOP_TIMEOUT)
     catch Class:Error -> logger:warning("erlang_python: pool ~p could not stop its contexts on ~p: ~p",
                                         [Pool, N, {Class, Error}], #{domain => [python]})
     end || {Req, N} <- Remote],
    ok.

%% Internal

%% Starts the members at start: the remote ones in parallel.
join_all(Nodes, State) ->
    Reqs = [{N, erpc:send_request(N, py_pool, start_member, [member(N, State)])}
            || N <- Nodes, N =/= node()],
    State1 = case lists:member(node(), Nodes) of
                 true -> join(node(), State);
                 false -> State
             end,
    lists:foldl(fun({N, Req}, S) ->
                        joined(N, try erpc:receive_response(Req, ?JOIN_TIMEOUT)
                                  catch Class:Reason -> {Class, Reason} end, S)
                end, State1, Reqs).

%% Joins again a node that is down: on this node at once; on another node
%% without waiting (connecting to a node may take seconds, and this process
%% must keep the pool up to date meanwhile).
join(Node, State) when Node =:= node() ->
    joined(Node, py_pool:start_member(member(Node, State)), State);
join(Node, #state{members = Members} = State) ->
    case maps:get(Node, Members) of
        #member{pending = undefined} = M ->
            #{key := Key} = Member = member(Node, State),
            Req = erpc:send_request(Node, py_pool, start_member, [Member]),
            State#state{members = Members#{Node := M#member{pending = {Req, Key, []}}}};
        _ ->
            State
    end.

join_reply(_Msg, [], State) ->
    State;
join_reply(Msg, [{Node, #member{pending = {Req, _, Early}} = M} | More],
           #state{members = Members} = State) ->
    Result = try erpc:check_response(Msg, Req) of
                 no_response -> no_response;
                 {response, R} -> R
             catch
                 Class:Reason -> {Class, Reason}
             end,
    case Result of
        no_response ->
            join_reply(Msg, More, State);
        _ ->
            State1 = joined(Node, Result,
                            State#state{members = Members#{Node := M#member{pending = undefined}}}),
            State2 = lists:foldl(fun({py_member_context, _, _, _, _, _} = Notice, S) ->
                                         {noreply, S1} = handle_info(Notice, S),
                                         S1
                                 end, State1, lists:reverse(Early)),
            schedule_retry(publish(State2))
    end.

member(Node, #state{pool = Pool, size = Size, opts = Opts, counters = Counters, members = Members}) ->
    #member{base = Base} = maps:get(Node, Members),
    M = #{key => {py_nodes, Pool, self(), erlang:unique_integer()},
          base => Base, size => Size, opts => Opts, owner => self()},
    case Node =:= node() of
        true -> M#{counters => Counters};
        false -> M
    end.

joined(Node, {ok, Sup, Key, Contexts}, #state{members = Members} = State) ->
    Mon = case Node =:= node() of
              true -> link;   % start_member linked it to us
              false -> erlang:monitor(process, Sup)
          end,
    M = maps:get(Node, Members),
    State1 = State#state{members = Members#{Node := M#member{key = Key, sup = Sup, mon = Mon,
                                                             error = undefined}}},
    lists:foldl(fun({Slot, Ctx, PortOwner, Local}, S) ->
                        add_context(Slot, Ctx, PortOwner, Local, S)
                end, State1, Contexts);
joined(Node, {_, Error}, #state{pool = Pool, members = Members} = State) ->
    logger:warning("erlang_python: pool ~p could not start contexts on ~p: ~p",
                   [Pool, Node, Error], #{domain => [python]}),
    M = maps:get(Node, Members),
    State#state{members = Members#{Node := M#member{error = Error}}}.

%% The member on `Node' is gone (node down, or its supervisor stopped): its
%% contexts leave the pool.
member_lost(Node, Why, #state{members = Members, slots = Slots} = State) ->
    #member{key = Key, mon = Mon} = M = maps:get(Node, Members),
    case Mon of
        Ref when is_reference(Ref) -> erlang:demonitor(Ref, [flush]);
        _ -> ok
    end,
    %% A remote member's watcher removes its entry there.
    Node =:= node() andalso ets:delete(py_pools, Key),
    Gone = [Slot || {Slot, {Ctx, _}} <- maps:to_list(Slots), node(Ctx) =:= Node],
    State1 = lists:foldl(fun remove_slot/2, State, Gone),
    schedule_retry(publish(State1#state{members = Members#{Node := M#member{key = undefined,
                                                                            sup = undefined,
                                                                            mon = undefined,
                                                                            error = Why}}})).

add_context(Slot, Ctx, PortOwner, Local, #state{slots = Slots, counters = Counters} = State) ->
    case Slots of
        #{Slot := {Ctx, _}} ->
            State;
        _ ->
            State1 = case Slots of
                         #{Slot := _} -> remove_slot(Slot, State);
                         _ -> State
                     end,
            MRef = erlang:monitor(process, Ctx),
            %% A context on this node has its own entry (with its port).
            node(Ctx) =/= node() andalso
                ets:insert(py_contexts, {Ctx, Ctx, PortOwner, Local, {Counters, Slot + 2}}),
            State1#state{slots = (State1#state.slots)#{Slot => {Ctx, MRef}},
                         mons = (State1#state.mons)#{MRef => Slot}}
    end.

remove_slot(Slot, #state{slots = Slots, mons = Mons} = State) ->
    case Slots of
        #{Slot := {Ctx, MRef}} ->
            erlang:demonitor(MRef, [flush]),
            node(Ctx) =/= node() andalso ets:delete(py_contexts, Ctx),
            State#state{slots = maps:remove(Slot, Slots), mons = maps:remove(MRef, Mons)};
        _ ->
            State
    end.

publish(#state{pool = Pool, slots = Slots} = State) ->
    _ = py_pool:set_live(Pool, list_to_tuple([{Ctx, Slot + 2}
                                              || {Slot, {Ctx, _}} <- lists:sort(maps:to_list(Slots))])),
    State.

schedule_retry(#state{retry = infinity} = State) ->
    State;
schedule_retry(#state{timer = undefined, retry = Retry, members = Members} = State) ->
    case [N || {N, #member{key = undefined, pending = undefined}} <- maps:to_list(Members)] of
        [] -> State;
        _ -> State#state{timer = erlang:start_timer(Retry, self(), retry)}
    end;
schedule_retry(State) ->
    State.

%% The watcher of a member on a remote node: first child of the member's
%% supervisor. When the owner goes (or the connection to it), it stops the
%% member; when the member stops, it removes the member's entry.

%% @private
-spec start_watcher(py_pool:member_key(), pid()) -> {ok, pid()}.
start_watcher(Key, Owner) ->
    proc_lib:start_link(?MODULE, watcher_init, [Key, Owner, self()]).

%% @private
-spec watcher_init(py_pool:member_key(), pid(), pid()) -> no_return().
watcher_init(Key, Owner, Parent) ->
    process_flag(trap_exit, true),
    MRef = erlang:monitor(process, Owner),
    proc_lib:init_ack({ok, self()}),
    receive
        {'DOWN', MRef, process, Owner, _} ->
            _ = spawn(py_pool, stop_pool, [Key]),
            receive {'EXIT', Parent, Reason} -> exit(Reason) end;
        {'EXIT', Parent, Reason} ->
            ets:delete(py_pools, Key),
            exit(Reason)
    end.
