# Mix builds erlang_python as a Mix project, so that an Elixir project needs
# only `{:erlang_python, git: ...}` (or `path:`): no rebar3. Mix's Erlang
# compiler builds erlang_src/; the compiler below runs `make port`, which builds
# the port program with CMake and copies the Python package into priv/python
# (both are no-ops when nothing changed). The application's metadata is read
# from erlang_src/erlang_python.app.src, which rebar3 and the Makefile use too.
defmodule Mix.Tasks.Compile.ErlangPythonPort do
  @shortdoc "Builds erlang_python's port program and priv/python with `make port`"
  @moduledoc @shortdoc
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    root = Path.dirname(__ENV__.file)

    # Output streams as it comes (the first build takes minutes); an
    # up-to-date tree prints nothing.
    case System.cmd("make", ["-s", "--no-print-directory", "-C", root, "port"],
           into: IO.stream(:stdio, :line),
           stderr_to_stdout: true
         ) do
      {_, 0} -> {:ok, []}
      {_, status} -> Mix.raise("erlang_python: `make port` failed with status #{status} (see above)")
    end
  end
end

defmodule ErlangPython.MixProject do
  use Mix.Project

  @app_src Path.join(__DIR__, "erlang_src/erlang_python.app.src")
  {:ok, [{:application, :erlang_python, props}]} = :file.consult(@app_src)
  @props props
  @external_resource @app_src

  def project do
    [
      app: :erlang_python,
      version: to_string(@props[:vsn]),
      language: :erlang,
      erlc_paths: ["erlang_src"],
      erlc_include_path: "erlang_src",
      erlc_options: [:debug_info],
      compilers: [:erlang_python_port | Mix.compilers()],
      # `mix test` here runs the ExUnit tests of test/elixir (`make test`
      # runs every suite).
      test_paths: ["test/elixir/test"],
      deps: []
    ]
  end

  def application do
    [
      mod: @props[:mod],
      registered: @props[:registered],
      env: @props[:env],
      description: to_charlist(@props[:description]),
      extra_applications: @props[:applications] -- [:kernel, :stdlib, :elixir]
    ]
  end
end
