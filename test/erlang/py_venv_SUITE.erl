%% Virtual environments (getting-started.md, distributed.md): py:ensure_venv/2,3
%% with requirements.txt and pyproject.toml (extras, installer, python, force),
%% py:activate_venv/1, py:deactivate_venv/0, py:venv_info/0, applied to every
%% context including ones started later. No package index is reachable: the
%% packages come from a local wheels directory (make_packages.py) with
%% pip --no-index.
-module(py_venv_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([requirements_txt/1, again_is_quick_noop/1, every_context_and_later_ones/1,
         venv_info_and_manual_activation/1, deactivate/1, pyproject_editable_with_extras/1,
         force_recreates/1, errors/1]).

-define(TIMEOUT, 600000).

all() ->
    [requirements_txt, again_is_quick_noop, every_context_and_later_ones,
     venv_info_and_manual_activation, deactivate, pyproject_editable_with_extras,
     force_recreates, errors].

init_per_suite(Config) ->
    Priv = ?config(priv_dir, Config),
    Script = filename:join(?config(data_dir, Config), "make_packages.py"),
    "" = os:cmd("/usr/bin/python3 " ++ Script ++ " " ++ Priv),
    py_test_util:start_app([]) ++
        [{venv1, filename:join(Priv, "venv1")}, {venv2, filename:join(Priv, "venv2")},
         {pip_args, ["--no-index", "--find-links", filename:join(Priv, "wheels")]} | Config].

end_per_suite(Config) ->
    _ = py:deactivate_venv(),
    py_test_util:stop_app(Config),
    Config.

req(Config) -> filename:join(?config(priv_dir, Config), "requirements.txt").

%% getting-started.md: "Create venv and install from requirements.txt"
requirements_txt(Config) ->
    Venv = ?config(venv1, Config),
    {error, {'ModuleNotFoundError', _}} = py:eval(<<"__import__('tinypkg').VALUE">>),
    T0 = erlang:monotonic_time(millisecond),
    ok = py:ensure_venv(Venv, req(Config), [{pip_args, ?config(pip_args, Config)}]),
    ct:pal("venv created and installed in ~p ms", [erlang:monotonic_time(millisecond) - T0]),
    {ok, 42} = py:eval(<<"__import__('tinypkg').VALUE">>),
    true = filelib:is_regular(filename:join([Venv, "bin", "python"])),
    ok.

%% The same file and options again: nothing to do but activate.
again_is_quick_noop(Config) ->
    Venv = ?config(venv1, Config),
    Marker = filename:join(Venv, "kept"),
    ok = file:write_file(Marker, <<>>),
    {Micros, ok} = timer:tc(py, ensure_venv, [list_to_binary(Venv), list_to_binary(req(Config)),
                                              [{pip_args, ?config(pip_args, Config)}]]),
    ct:pal("second ensure_venv: ~p ms", [Micros div 1000]),
    true = filelib:is_regular(Marker),  % not recreated
    true = Micros < 5000000,
    ok.

%% "activation applies to every context including ones started later"
every_context_and_later_ones(_Config) ->
    [{ok, 42} = py:eval(Ctx, <<"__import__('tinypkg').VALUE">>, #{})
     || Ctx <- py_context_router:contexts(default) ++ py_context_router:contexts(io)],
    {ok, [Ctx]} = py_context_router:start_pool(venv_later, 1, process),
    {ok, 42} = py:eval(Ctx, <<"__import__('tinypkg').VALUE">>, #{}),
    ok = py_context_router:stop_pool(venv_later),
    ok.

%% getting-started.md, "Manual Virtual Environment Activation"
venv_info_and_manual_activation(Config) ->
    Venv = list_to_binary(?config(venv1, Config)),
    ok = py:activate_venv(Venv),
    {ok, #{<<"active">> := true, <<"venv_path">> := Path, <<"site_packages">> := SP}} =
        py:venv_info(),
    Path = Venv,
    true = filelib:is_dir(SP),
    {ok, true} = py:eval(<<"import sys\nsys.path[0] == sp">>, #{sp => SP}),
    {ok, Venv} = py:eval(<<"import os\nos.environ['VIRTUAL_ENV']">>),
    %% a pool with a python_path of its own, started later, keeps the venv
    %% first (on the driver its set-up edits the one shared sys.path)
    Dir = filename:join(?config(priv_dir, Config), "later_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, [Ctx]} = py_context_router:start_pool(venv_path_later, 1, #{python_path => [Dir]}),
    {ok, true} = py:eval(Ctx, <<"import sys\nsys.path[0] == sp">>, #{sp => SP}),
    {ok, true} = py:eval(Ctx, <<"import sys\nd in sys.path">>, #{d => list_to_binary(Dir)}),
    {ok, true} = py:eval(<<"import sys\nsys.path[0] == sp">>, #{sp => SP}),
    ok = py_context_router:stop_pool(venv_path_later),
    ok.

deactivate(Config) ->
    ok = py:deactivate_venv(),
    {ok, #{<<"active">> := false}} = py:venv_info(),
    {ok, Path} = py:eval(<<"import sys\nsys.path">>),
    [] = [P || P <- Path, binary:match(P, list_to_binary(?config(venv1, Config))) =/= nomatch],
    {ok, [Ctx]} = py_context_router:start_pool(venv_later, 1, process),
    {error, {'ModuleNotFoundError', _}} = py:eval(Ctx, <<"__import__('tinypkg')">>, #{}),
    ok = py_context_router:stop_pool(venv_later),
    ok = py:deactivate_venv(),  % again: ok
    ok.

%% getting-started.md: "Install from pyproject.toml (editable install)" with extras
pyproject_editable_with_extras(Config) ->
    Venv = ?config(venv2, Config),
    Proj = filename:join(?config(priv_dir, Config), "proj"),
    ok = py:ensure_venv(Venv, filename:join(Proj, "pyproject.toml"),
                        [{extras, ["dev"]}, {installer, pip}, {python, "/usr/bin/python3"},
                         {pip_args, ?config(pip_args, Config)}]),
    {ok, #{<<"venv_path">> := V2}} = py:venv_info(),
    V2 = list_to_binary(Venv),
    {ok, [Ctx]} = py_context_router:start_pool(venv_later, 1, process),
    {ok, <<"editable">>} = py:eval(Ctx, <<"__import__('projpkg').VALUE">>, #{}),
    %% editable: the module is the project's own file
    {ok, File} = py:eval(Ctx, <<"__import__('projpkg').__file__">>, #{}),
    true = lists:prefix(Proj, binary_to_list(File)),
    %% the extra's dependency
    {ok, 42} = py:eval(Ctx, <<"__import__('tinypkg').VALUE">>, #{}),
    ok = py_context_router:stop_pool(venv_later),
    ok.

%% getting-started.md: "Force recreate even if venv exists"
force_recreates(Config) ->
    Venv = ?config(venv1, Config),
    Marker = filename:join(Venv, "kept"),
    true = filelib:is_regular(Marker),
    ok = py:ensure_venv(Venv, req(Config), [force, {pip_args, ?config(pip_args, Config)}]),
    false = filelib:is_regular(Marker),
    {ok, #{<<"venv_path">> := V}} = py:venv_info(),
    V = list_to_binary(Venv),
    {ok, [Ctx]} = py_context_router:start_pool(venv_later, 1, process),
    {ok, 42} = py:eval(Ctx, <<"__import__('tinypkg').VALUE">>, #{}),
    ok = py_context_router:stop_pool(venv_later),
    ok.

errors(Config) ->
    Priv = ?config(priv_dir, Config),
    {error, {no_such_file, _}} = py:ensure_venv(?config(venv1, Config),
                                                filename:join(Priv, "missing.txt")),
    {error, {not_a_venv, _}} = py:activate_venv(Priv),
    {error, {badarg, {installer, conda}}} =
        py:ensure_venv(?config(venv1, Config), req(Config), [{installer, conda}]),
    {error, {badarg, _}} = py:ensure_venv(?config(venv1, Config), req(Config), not_a_list),
    case os:find_executable("uv") of
        false -> {error, {installer_not_found, uv}} =
                     py:ensure_venv(?config(venv1, Config), req(Config), [{installer, uv}]);
        _ -> ok
    end,
    {error, {{install_failed, _}, Status, Output}} =
        py:ensure_venv(?config(venv1, Config), filename:join(Priv, "bad-requirements.txt"),
                       [{pip_args, ?config(pip_args, Config)}]),
    true = Status =/= 0,
    {match, _} = re:run(Output, <<"no-such-package-xyz">>),
    {error, {{venv_failed, _}, _}} =
        py:ensure_venv(filename:join(Priv, "venv3"), req(Config), [{python, "/no/such/python"}]),
    %% the venv that was active stays active
    {ok, #{<<"active">> := true}} = py:venv_info(),
    ok.
