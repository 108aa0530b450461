defmodule ErlangPythonTest do
  # The README's "Elixir" section, run: the application started by Mix as a
  # dependency, a real port program and CPython.
  use ExUnit.Case, async: false

  defmodule Point do
    defstruct x: 0, y: 0
  end

  test "calls, with a keyword list as kwargs" do
    assert {:ok, 4.0} = :py.call(:math, :sqrt, [16])
    assert {:ok, [3, 2, 1]} = :py.call(:builtins, :sorted, [[3, 1, 2]], reverse: true)
    assert {:ok, 255} = :py.call(:builtins, :int, ["ff"], base: 16)
    assert {:ok, [3, 2, 1]} = :py.call(:builtins, :sorted, [[3, 1, 2]], [reverse: true], 5000)
    assert {:error, {:ZeroDivisionError, "division by zero"}} = :py.call(:operator, :truediv, [1, 0])
  end

  test "values: strings, charlists, bytes, nil, atoms, structs" do
    echo = fn value -> :py.eval("x", %{x: value}) end
    assert {:ok, "héllo"} = echo.("héllo")
    assert {:ok, true} = :py.eval("isinstance(x, str)", %{x: "héllo"})
    # A charlist is a list of integers.
    assert {:ok, [97, 98, 99]} = echo.(~c"abc")
    assert {:ok, true} = :py.eval("x == b'\\x01\\x02'", %{x: {:bytes, <<1, 2>>}})
    assert {:ok, <<1, 2>>} = echo.({:bytes, <<1, 2>>})
    assert {:ok, true} = :py.eval("x is None", %{x: nil})
    assert {:ok, nil} = echo.(nil)
    assert {:ok, nil} = :py.eval("None")
    assert {:ok, :ok} = echo.(:ok)
    assert {:ok, {1, "two"}} = echo.({1, "two"})
    # A struct is a map with a __struct__ key: a dict in Python, a struct again here.
    assert {:ok, %Point{x: 1, y: 2}} = echo.(%Point{x: 1, y: 2})
    assert {:ok, 1} = :py.eval("x[erlang.Atom('x')]", %{x: %Point{x: 1, y: 2}})
  end

  test "a context keeps what exec defines" do
    ctx = :py.context(1)
    :ok = :py.exec(ctx, "def inc(x): return x + 1")
    assert {:ok, 2} = :py.call(ctx, :__main__, :inc, [1])
    assert {:ok, 42} = :py.eval(ctx, "inc(41)")
  end

  test "Python calls Elixir functions; an Elixir exception reads as Elixir prints it" do
    :ok = :py.register_function(:double, fn [x] -> x * 2 end)
    assert {:ok, [0, 2, 4]} = :py.eval("[erlang.call('double', i) for i in range(3)]")
    :ok = :py.register_function(:bad, fn _ -> raise ArgumentError, "bad" end)
    assert {:error, {:RuntimeError, message}} = :py.eval("erlang.call('bad')")
    assert message =~ "failed: ArgumentError: bad"
  end

  test "a channel round trip" do
    {:ok, ch} = :py_channel.new(%{max_size: 100_000})
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
    assert_receive "HELLO", 5000
    :ok = :py_channel.close(ch)
    assert {:ok, nil} = Task.await(task)
  end
end
