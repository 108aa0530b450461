# The tests expect Python's None as nil: test/elixir/config/config.exs sets
# it; `mix test` at the repository root (which runs these tests too) has no
# such config, so it is set here.
if Application.fetch_env(:erlang_python, :none_as) != {:ok, nil} do
  :ok = Application.stop(:erlang_python)
  Application.put_env(:erlang_python, :none_as, nil)
  {:ok, _} = Application.ensure_all_started(:erlang_python)
end

ExUnit.start()
