# An Elixir project using erlang_python as its users do: one dependency line,
# no environment variables. `make test-elixir` runs its ExUnit tests.
defmodule ErlangPythonElixirTest.MixProject do
  use Mix.Project

  def project do
    [
      app: :erlang_python_elixir_test,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: [{:erlang_python, path: "../.."}]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
