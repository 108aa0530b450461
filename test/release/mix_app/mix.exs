# A small Elixir application that depends on erlang_python, released with
# `mix release`. test/release/run.sh copies it and puts the checkout's path in
# place of EP_ROOT.
defmodule MixApp.MixProject do
  use Mix.Project

  def project do
    [
      app: :mix_app,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: [{:erlang_python, path: "EP_ROOT"}],
      releases: [mix_app: [include_executables_for: [:unix]]]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
