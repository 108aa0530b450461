"""Python side of py_channel_SUITE: the channel guide's examples and probes."""

import asyncio
import os
import threading

import erlang
from erlang import ByteChannel, ByteChannelClosed
from erlang.channel import Channel, ChannelClosed, reply


# --- the guide's examples -------------------------------------------------

def handle_requests(channel_ref):
    ch = Channel(channel_ref)
    handled = 0
    for msg in ch:
        if msg[0] == 'request':
            _, sender_pid, data = msg
            reply(sender_pid, (erlang.Atom('response'), data.upper()))
            handled += 1
    return handled


async def process_stream(channel_ref):
    ch = Channel(channel_ref)
    results = []
    async for item in ch:
        results.append(item * 2)
    return results


async def worker(channel_ref, worker_id):
    ch = Channel(channel_ref)
    seen = []
    async for msg in ch:
        if msg[0] == 'work':
            _, item = msg
            await asyncio.sleep(0)
            seen.append(item)
    return (worker_id, seen)


def sync_worker(channel_ref):
    return [msg for msg in Channel(channel_ref)]


def process_bytes(channel_ref):
    ch = ByteChannel(channel_ref)
    first = ch.receive_bytes()
    ch.send_bytes(b"got:" + first)
    n = 0
    for chunk in ch:
        ch.send_bytes(chunk.upper())
        n += 1
    return n


async def process_bytes_async(channel_ref):
    ch = ByteChannel(channel_ref)
    data = await ch.async_receive_bytes()
    chunks = [data]
    async for chunk in ch:
        chunks.append(chunk)
    return b"".join(chunks)


def bytes_with(channel_ref):
    with ByteChannel(channel_ref) as ch:
        return [chunk for chunk in ch]


# --- probes ---------------------------------------------------------------

def take(channel_ref, n):
    ch = Channel(channel_ref)
    return [ch.receive() for _ in range(n)]


def try_take(channel_ref):
    return Channel(channel_ref).try_receive()


def receive_or_closed(channel_ref, notify):
    ch = Channel(channel_ref)
    erlang.send(notify, erlang.Atom('waiting'))
    try:
        return ch.receive()
    except ChannelClosed:
        return erlang.Atom('closed')


async def async_receive_or_closed(channel_ref, notify):
    ch = Channel(channel_ref)
    erlang.send(notify, erlang.Atom('waiting'))
    try:
        return await ch.async_receive()
    except ChannelClosed:
        return erlang.Atom('closed')


def byte_receive_or_closed(channel_ref):
    try:
        return ByteChannel(channel_ref).receive_bytes()
    except ByteChannelClosed:
        return erlang.Atom('closed')


def close_from_python(channel_ref):
    ch = Channel(channel_ref)
    ch.close()
    ch.close()
    return True


def send_non_bytes(channel_ref, value):
    try:
        ByteChannel(channel_ref).send_bytes(value)
    except TypeError as e:
        return ('TypeError', str(e))
    return 'sent'


def wrong_handle(value):
    try:
        Channel(value)
    except TypeError:
        return 'TypeError'
    return 'accepted'


def count_in_order(channel_ref):
    """Receives until closed; checks each message is the previous one + 1."""
    ch = Channel(channel_ref)
    count = 0
    expected = 1
    for msg in ch:
        if msg != expected:
            return ('out_of_order', expected, msg)
        expected += 1
        count += 1
    return count


def threads_share(channel_ref, nthreads):
    """Several threads of one context receive from one channel."""
    ch = Channel(channel_ref)
    results = [None] * nthreads

    def run(i):
        results[i] = [m for m in ch]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def consume_all(channel_ref):
    """Receives until closed; returns the messages (in arrival order)."""
    return [m for m in Channel(channel_ref)]


def take_one_then_die(channel_ref, notify):
    ch = Channel(channel_ref)
    first = ch.receive()
    erlang.send(notify, (erlang.Atom('took'), first))
    os._exit(1)


async def timed_out_receive_keeps_message(channel_ref, notify):
    """A receiver whose timeout fires in the same loop iteration as the data
    arrives: the message must stay in the channel (never lost with the
    cancelled receive)."""
    import select
    import time
    from erlang._async import bridge

    ch = Channel(channel_ref)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.05

    async def consumer():
        async with asyncio.timeout_at(deadline):
            return await ch.async_receive()

    task = loop.create_task(consumer())
    for _ in range(5):  # yields only: the consumer is waiting on the channel
        await asyncio.sleep(0)
    erlang.send(notify, erlang.Atom('waiting'))
    # Block the loop until the message is here (the eventfd the loop watches
    # is signalled) and the deadline has passed, so the next iteration runs the
    # data callback and the timeout together.
    select.select([bridge(loop).fd], [], [])
    while loop.time() <= deadline:
        time.sleep(deadline - loop.time() + 0.001)
    try:
        got = await task
    except TimeoutError:
        got = erlang.Atom('timeout')
    return (got, ch.try_receive())


async def async_consumers_one_loop(channel_ref, n, cancel_every):
    """`n` consumers on one loop share a channel; every `cancel_every`-th
    receive is given a timeout that may cancel it. Returns what each took."""
    ch = Channel(channel_ref)
    results = [[] for _ in range(n)]

    async def consume(i):
        k = 0
        while True:
            k += 1
            try:
                if cancel_every and k % cancel_every == 0:
                    msg = await asyncio.wait_for(ch.async_receive(), 0.0005)
                else:
                    msg = await ch.async_receive()
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except ChannelClosed:
                return
            results[i].append(msg)

    await asyncio.gather(*(consume(i) for i in range(n)))
    return results


def orphan_want(channel_ref):
    """A Channel object that asks for data (a want, as receive() does) and is
    gone right after: its want stays outstanding with nobody here to take what
    comes."""
    import _erlang_channel

    ch = Channel(channel_ref)
    value = _erlang_channel.take(ch._id)
    return None if value is _erlang_channel.EMPTY else value


def try_take_all(channel_ref, n):
    """`n` try_receive calls on one Channel object: what each returned, or
    'closed' for ChannelClosed."""
    ch = Channel(channel_ref)
    out = []
    for _ in range(n):
        try:
            out.append(ch.try_receive())
        except ChannelClosed:
            out.append(erlang.Atom('closed'))
    return out


def try_take_bytes(channel_ref, n):
    ch = ByteChannel(channel_ref)
    out = []
    for _ in range(n):
        try:
            out.append(ch.try_receive_bytes())
        except ByteChannelClosed:
            out.append(erlang.Atom('closed'))
    return out


def try_take_in_thread(channel_ref, n):
    """try_take_all from a Python thread of its own (not the context's)."""
    box = []
    t = threading.Thread(target=lambda: box.append(try_take_all(channel_ref, n)))
    t.start()
    t.join()
    return box[0]


async def _try_take_co(channel_ref, n):
    await asyncio.sleep(0)
    return try_take_all(channel_ref, n)


def try_take_in_loop(channel_ref, n):
    """try_take_all from a coroutine (the loop runs on the context's thread)."""
    return asyncio.run(_try_take_co(channel_ref, n))


def bytes_after_owner_exit(channel_ref, go_ref, notify):
    """Takes the first chunk, waits for `go` (the owner has exited by then),
    sends bytes nobody can read any more, then drains the channel."""
    ch = ByteChannel(channel_ref)
    first = ch.receive_bytes()
    erlang.send(notify, (erlang.Atom('took'), first))
    Channel(go_ref).receive()
    ch.send_bytes(b"late")
    return [first] + [chunk for chunk in ch]


def identity(value):
    return value


def echo_all(channel_ref, pid):
    """Sends every message back to `pid` as ('echo', msg) until closed."""
    n = 0
    for msg in Channel(channel_ref):
        reply(pid, (erlang.Atom('echo'), msg))
        n += 1
    return n


def sizes(channel_ref):
    """The length and a checksum of every message (bytes or str), until closed."""
    import zlib
    out = []
    for msg in Channel(channel_ref):
        data = msg.encode() if isinstance(msg, str) else msg
        out.append((len(data), zlib.crc32(data)))
    return out


def byte_echo_big(channel_ref):
    ch = ByteChannel(channel_ref)
    n = 0
    for chunk in ch:
        ch.send_bytes(chunk[::-1])
        n += 1
    return n


def reply_then_wait(channel_ref, go_ref):
    """Takes one request, replies, then waits on another channel (so it does
    not ask `channel_ref` for more until `go`)."""
    ch = Channel(channel_ref)
    _, sender, data = ch.receive()
    reply(sender, (erlang.Atom('response'), data))
    Channel(go_ref).receive()
    return True


def _outcomes(receive, closed):
    """Every receive() until the close: the value, or the exception's class and text."""
    out = []
    while True:
        try:
            out.append(("ok", receive()))
        except closed:
            return out
        except Exception as e:  # a message that cannot be decoded
            out.append((type(e).__name__, str(e)))


def outcomes(channel_ref):
    return _outcomes(Channel(channel_ref).receive, ChannelClosed)


def byte_outcomes(channel_ref):
    return _outcomes(ByteChannel(channel_ref).receive_bytes, ByteChannelClosed)
