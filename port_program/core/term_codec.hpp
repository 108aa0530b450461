// Conversion between msgpack-encoded Erlang terms and Python objects
// (the type mapping of spec/PROTOCOL.md). Every function here needs the GIL.
#pragma once

#include <Python.h>

#include <string_view>

#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/py_ref.hpp"

namespace ep {

// The Python classes of the `erlang` package that stand for Erlang-only terms.
struct TermTypes {
  PyRef atom;        // erlang.Atom (str subclass)
  PyRef pid;         // erlang.Pid
  PyRef ref;         // erlang.Ref
  PyRef opaque;      // erlang.OpaqueTerm
  PyRef atom_cache;  // dict: name -> Atom, so a repeated atom is one object
};

// Decodes one term. Returns null with a Python exception set when the term has no
// Python value (invalid UTF-8 in a str, an unhashable dict key, nesting too deep);
// throws MsgpackError when the bytes are not msgpack.
PyRef decode_term(MsgpackReader& in, const TermTypes& types);

// Decodes a msgpack array as a tuple (call arguments) and a map as a dict of
// keyword arguments (null dict when empty).
PyRef decode_args(MsgpackReader& in, const TermTypes& types);
PyRef decode_kwargs(MsgpackReader& in, const TermTypes& types);

// Encodes one object. Returns false with a Python exception set (TypeError naming
// the type, ValueError for nesting) when it has no Erlang term.
bool encode_term(MsgpackWriter& out, PyObject* obj, const TermTypes& types);

}  // namespace ep
