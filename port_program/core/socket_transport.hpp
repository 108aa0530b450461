// _erlang_loop.SocketTransportCore: a base class (no instance data) of
// erlang._transports.ErlangSocketTransport, itself a subclass of asyncio's
// _SelectorSocketTransport. Its methods replace the per-read and per-write
// ones natively with the same contract; everything else (close, abort,
// flow control, write_eof, sendfile, start_tls ...) stays the standard
// library's.
#pragma once

#include <Python.h>

namespace ep {

struct LoopState;

// The attribute names and messages the transport methods use, interned into
// LoopState::transport_names; false with a Python error set.
bool init_transport_names(LoopState& st);
void free_transport_names(LoopState& st);

PyObject* make_socket_transport_core_type(PyObject* module);

// set_socket_transport(cls): the class whose instances' __slots__ the native
// methods read directly (erlang._transports sets ErlangSocketTransport).
PyObject* set_socket_transport(PyObject* module, PyObject* cls);

}  // namespace ep
