%% @doc Virtual environments: create one and install dependencies into it
%% (`ensure_venv/2,3'), and make its packages importable in every context of
%% the node, including contexts started later (`activate_venv/1', through
%% py_setup).
%%
%% The venv must be made with the Python the port programs embed (Debian's
%% python3, the default of option `python'): its `lib/python3.11/site-packages'
%% is what activation puts first on `sys.path'.
-module(py_venv).

-export([ensure_venv/2, ensure_venv/3, activate_venv/1, deactivate_venv/0, venv_info/0]).

-define(MARK, ".erlang_python_deps").

-type opt() :: force | {extras, [iodata()]} | {installer, pip | uv}
             | {python, file:filename_all()} | {pip_args, [iodata()]}.

-spec ensure_venv(file:filename_all(), file:filename_all()) -> ok | {error, term()}.
ensure_venv(Path, Deps) ->
    ensure_venv(Path, Deps, []).

%% @doc Creates the venv at `Path' unless it exists (option `force': made
%% anew), installs `Deps' (a requirements.txt, or a pyproject.toml installed
%% editable with its `extras') unless the same file with the same options was
%% installed last time, then activates it. Options: `{installer, pip | uv}',
%% `{python, Exe}', `{extras, [Name]}', `force', and `{pip_args, [Arg]}' (more
%% installer arguments, e.g. `["--no-index", "--find-links", Dir]'; pip also
%% reads `PIP_*' environment variables).
-spec ensure_venv(file:filename_all(), file:filename_all(), [opt()]) -> ok | {error, term()}.
ensure_venv(Path0, Deps0, Opts) when is_list(Opts) ->
    try
        Path = filename:absname(str(Path0)),
        Deps = filename:absname(str(Deps0)),
        filelib:is_regular(Deps) orelse throw({no_such_file, Deps}),
        Kind = case filename:basename(Deps) of
                   "pyproject.toml" -> pyproject;
                   _ -> requirements
               end,
        Python = str(proplists:get_value(python, Opts, "/usr/bin/python3")),
        Installer = proplists:get_value(installer, Opts, pip),
        lists:member(Installer, [pip, uv]) orelse throw({badarg, {installer, Installer}}),
        Extras = [str(E) || E <- proplists:get_value(extras, Opts, [])],
        PipArgs = [str(A) || A <- proplists:get_value(pip_args, Opts, [])],
        Force = proplists:get_bool(force, Opts),
        VenvPython = filename:join([Path, "bin", "python"]),
        Force andalso filelib:is_dir(Path) andalso (ok =:= file:del_dir_r(Path)
                                                    orelse throw({cannot_remove, Path})),
        filelib:is_regular(VenvPython) orelse
            run(Python, ["-m", "venv", Path], {venv_failed, Path}),
        {ok, Content} = file:read_file(Deps),
        Mark = term_to_binary({Deps, erlang:md5(Content), Installer, Extras, PipArgs}),
        Markfile = filename:join(Path, ?MARK),
        case file:read_file(Markfile) of
            {ok, Mark} -> ok;
            _ ->
                install(Installer, VenvPython, Kind, Deps, Extras, PipArgs),
                ok = file:write_file(Markfile, Mark)
        end,
        activate_venv(Path)
    catch
        throw:Reason -> {error, Reason}
    end;
ensure_venv(_Path, _Deps, Opts) ->
    {error, {badarg, Opts}}.

%% @doc Puts the venv's packages first on `sys.path' in every context of this
%% node, now and in port programs started later (replacing a venv activated
%% before).
-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path0) ->
    try filename:absname(str(Path0)) of
        Path ->
            case site_packages(Path) of
                [] -> {error, {not_a_venv, unicode:characters_to_binary(Path)}};
                [_ | _] ->
                    Bin = unicode:characters_to_binary(Path),
                    py_setup:put(venv, <<"__import__('erlang._venv')._venv.activate(bytes.fromhex('",
                                         (binary:encode_hex(Bin))/binary, "').decode())">>)
            end
    catch
        throw:Reason -> {error, Reason}
    end.

%% @doc Takes the active venv's packages off `sys.path' everywhere.
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    py_setup:delete(venv, <<"__import__('erlang._venv')._venv.deactivate()">>).

%% @doc `{ok, #{<<"active">> => false}}' or `{ok, #{<<"active">> => true,
%% <<"venv_path">> => Path, <<"site_packages">> => Dir}}'.
-spec venv_info() -> {ok, map()}.
venv_info() ->
    case ets:lookup(py_setup, venv) of
        [{venv, Code}] ->
            [_, Hex, _] = binary:split(Code, [<<"fromhex('">>, <<"').decode">>], [global]),
            Path = binary:decode_hex(Hex),
            [SitePackages | _] = site_packages(binary_to_list(Path)) ++ [<<>>],
            {ok, #{<<"active">> => true, <<"venv_path">> => Path,
                   <<"site_packages">> => unicode:characters_to_binary(SitePackages)}};
        [] ->
            {ok, #{<<"active">> => false}}
    end.

%% Internal

install(pip, VenvPython, Kind, Deps, Extras, PipArgs) ->
    run(VenvPython, ["-m", "pip", "install", "--disable-pip-version-check"
                     | PipArgs ++ targets(Kind, Deps, Extras)], {install_failed, Deps});
install(uv, VenvPython, Kind, Deps, Extras, PipArgs) ->
    case os:find_executable("uv") of
        false -> throw({installer_not_found, uv});
        Uv -> run(Uv, ["pip", "install", "--python", VenvPython
                       | PipArgs ++ targets(Kind, Deps, Extras)], {install_failed, Deps})
    end.

targets(requirements, Deps, _Extras) ->
    ["-r", Deps];
targets(pyproject, Deps, Extras) ->
    Dir = filename:dirname(Deps),
    Spec = case Extras of
               [] -> Dir;
               _ -> Dir ++ "[" ++ lists:join(",", Extras) ++ "]"
           end,
    ["-e", lists:flatten(Spec)].

%% Runs Exe with Args; throws {Why, Status, Output} if it fails.
run(Exe, Args, Why) ->
    try open_port({spawn_executable, Exe},
                  [{args, Args}, exit_status, stderr_to_stdout, binary, hide]) of
        Port -> collect(Port, [], Why)
    catch
        error:Reason -> throw({Why, {cannot_run, Exe, Reason}})
    end.

collect(Port, Acc, Why) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc], Why);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, S}} ->
            Out = iolist_to_binary(lists:reverse(Acc)),
            Tail = binary:part(Out, max(0, byte_size(Out) - 2000), min(2000, byte_size(Out))),
            throw({Why, S, Tail})
    end.

site_packages(Path) ->
    filelib:wildcard(filename:join([Path, "lib", "python3*", "site-packages"])).

str(B) when is_binary(B) -> unicode:characters_to_list(B);
str(A) when is_atom(A) -> atom_to_list(A);
str(L) when is_list(L) ->
    case unicode:characters_to_list(L) of
        S when is_list(S) -> S;
        _ -> throw({badarg, L})
    end;
str(Other) -> throw({badarg, Other}).
