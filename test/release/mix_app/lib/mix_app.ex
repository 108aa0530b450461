defmodule MixApp do
  @moduledoc "What test/release/run.sh checks in a running release."

  @doc "A call, a callback and a channel round trip: :ok or what failed."
  def check do
    {:ok, _} = Application.ensure_all_started(:mix_app)
    {:ok, 4.0} = :py.call(:math, :sqrt, [16])
    :ok = :py.register_function(:double, fn [x] -> x * 2 end)
    {:ok, 42} = :py.eval("erlang.call('double', 21)")
    {:ok, ch} = :py_channel.new()
    ctx = :py.context(1)

    :ok =
      # shared: the Task calling it is another process
      :py_context.exec(
        ctx,
        """
      from erlang.channel import Channel, reply
      def upper_all(ref):
          for sender, text in Channel(ref):
              reply(sender, text.upper())
      """,
        :shared
      )

    task = Task.async(fn -> :py.call(ctx, :__main__, :upper_all, [ch]) end)
    :ok = :py_channel.send(ch, {self(), "hello"})
    "HELLO" = receive do: (r when is_binary(r) -> r), after: (10_000 -> :no_reply)
    :ok = :py_channel.close(ch)
    {:ok, :none} = Task.await(task, 10_000)
    :ok
  rescue
    e -> {:failed, Exception.format(:error, e, __STACKTRACE__)}
  end
end
