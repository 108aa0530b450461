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
