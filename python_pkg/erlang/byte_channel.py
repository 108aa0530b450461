"""``erlang.byte_channel``: raw-bytes channels (``py_byte_channel``); the same
classes as ``erlang.ByteChannel`` and ``erlang.ByteChannelClosed``."""

from .channel import ByteChannel, ByteChannelClosed

__all__ = ["ByteChannel", "ByteChannelClosed"]
