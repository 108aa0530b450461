# The one entry point: make, make test, make demo, make bench.
SHELL := /bin/bash
DEB_PACKAGES := erlang-nox erlang-dev erlang-eunit erlang-common-test erlang-proper erlang-proper-dev \
  python3-venv python3-pip python3-wheel \
  python3-dev libuv1-dev libmsgpack-cxx-dev doctest-dev cmake g++ pkg-config \
  python3-pytest python3-msgpack python3-uvloop python3-numpy \
  python3-fastapi python3-uvicorn python3-httpx \
  rebar3 elixir libpython3.11-testsuite python3-aiohttp \
  clang libc++-14-dev libc++abi-14-dev
BUILD := _cmake
ASAN_BUILD := _cmake_asan
JOBS ?= 2
ERL_SOURCES := $(wildcard erlang_src/*.erl)
ERL_BEAMS := $(patsubst erlang_src/%.erl,ebin/%.beam,$(ERL_SOURCES))
TEST_ERL_SOURCES := $(wildcard test/erlang/*.erl)
CT_LOGDIR := _build/ct_logs

.PHONY: all deps cpp port priv-python erlang test test-elixir test-release test-cpp test-eunit test-ct test-python test-asan test-ct-driver asan-port demo bench bench-driver bench-async fuzz clean format \
  test-asyncio test-asyncio-quick bench-loop \
  fuzz-corpus stress soak check dialyzer check-threads clean format FORCE

all: deps cpp erlang priv-python

# Install the Debian packages that are missing (only when running as root).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing missing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing Debian packages (run as root to install):" $$missing; exit 1; fi; \
	fi

cpp: deps
	@$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	@cmake --build $(BUILD) -j $(JOBS)

# --- Building for rebar3, Mix and releases ---------------------------------
# `make port' is rebar3's pre-compile hook and Mix's compile step (mix.exs):
# the port program and priv/python, everything a node needs at run time, so an
# OTP release (which copies ebin/ and priv/) works wherever it is copied.
# No tests, no apt-get; configured once (cmake --build re-configures by itself
# when CMakeLists.txt changes), so an unchanged tree builds nothing. In a tree
# where `make all' has configured $(BUILD) (same build type, same priv/), the
# port program is built there: test-elixir and test-release then compile
# nothing a third time.
PORT_BUILD := $(if $(wildcard $(BUILD)/CMakeCache.txt),$(BUILD),_build/cmake_port)
BUILD_PACKAGES := cmake g++ pkg-config python3-dev libuv1-dev
PY_PKG_FILES := $(shell find python_pkg -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)
PY_PKG_DIRS := $(shell find python_pkg -type d -not -name __pycache__ 2>/dev/null)

port: priv-python
	@test -f $(PORT_BUILD)/Makefile || { $(call configure,$(PORT_BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEP_TESTS=OFF); }
	@cmake --build $(PORT_BUILD) --target erlang_python_port -j $(JOBS) | { grep -v -e 'Built target' -e 'Consolidate compiler' || true; }; exit $${PIPESTATUS[0]}

# The Python package `erlang', as the port program imports it in a release.
priv-python: priv/python/.stamp
priv/python/.stamp: $(PY_PKG_FILES) $(PY_PKG_DIRS)
	@rm -rf priv/python && mkdir -p priv/python
	@cd python_pkg && cp --parents $(patsubst python_pkg/%,%,$(PY_PKG_FILES)) ../priv/python/
	@touch $@

# configure(BuildDir, Flags): CMake's configure step, its output kept in
# BuildDir/configure.log and shown when it fails, with the Debian packages
# that are missing.
define configure
mkdir -p $(1) && if ! cmake -S . -B $(1) $(2) >$(1)/configure.log 2>&1; then \
  cat $(1)/configure.log >&2; \
  missing=$$(for p in $(BUILD_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
  echo "erlang_python: CMake's configure step failed (log above, also in $(1)/configure.log)" >&2; \
  if [ -n "$$missing" ]; then echo "erlang_python: missing Debian packages: $$missing (apt-get install $$missing)" >&2; fi; \
  exit 1; fi
endef

# An Elixir project (test/elixir, ExUnit) that depends on erlang_python by path.
test-elixir: all
	cd test/elixir && mix test

# Releases (rebar3/relx and mix release) copied elsewhere and run: a call, a
# callback and a channel round trip each.
test-release: all
	test/release/run.sh
# ---------------------------------------------------------------------------

erlang: ebin/.erlang.stamp ebin/erlang_python.app

# One erlc (one VM start) for the modules changed since the last build or
# missing from ebin/, all of them when a header changed (one erlc per module
# spent ~15 s starting VMs on a clean build).
ERL_MISSING := $(filter-out $(wildcard ebin/*.beam),$(ERL_BEAMS))
ebin/.erlang.stamp: $(ERL_SOURCES) $(wildcard erlang_src/*.hrl) $(if $(ERL_MISSING),FORCE)
	@mkdir -p ebin
	erlc +debug_info +warnings_as_errors -I erlang_src -o ebin \
	  $(if $(filter %.hrl,$?),$(ERL_SOURCES),$(sort $(filter %.erl,$?) $(patsubst ebin/%.beam,erlang_src/%.erl,$(ERL_MISSING))))
	@touch $@
FORCE:

ebin/erlang_python.app: erlang_src/erlang_python.app.src
	@mkdir -p ebin
	cp $< $@

_build/test/%.beam: test/erlang/%.erl
	@mkdir -p _build/test
	erlc +debug_info -I erlang_src -I /usr/lib/erlang/lib/proper-*/include -pa ebin -o _build/test $<

# Phases side by side where the CPU allows (2 cores): a CT pass keeps about
# half of one core busy (the port program's pass: 156 s of CPU in 273 s).
# The port program's pass (with the fault storms' latency bounds) beside the
# ASan build on one compile job; the driver's pass beside the ASan pass's CT;
# test_asyncio's quick subset (14 s of CPU in 32 s) beside the releases.
# Each one's output is shown when it ends.
test: all test-cpp test-python test-eunit test-elixir
	@$(MAKE) --no-print-directory -j 2 --output-sync=target test-ct asan-port ASAN_JOBS=1
	@$(MAKE) --no-print-directory -j 2 --output-sync=target test-ct-driver test-asan
	@$(MAKE) --no-print-directory -j 2 --output-sync=target test-asyncio-quick test-release
	@echo "make test: every suite passed"

test-cpp: cpp
	@cd $(BUILD) && ctest --output-on-failure

test-python: cpp
	/usr/bin/python3 -m pytest -q -p no:cacheprovider test/python

test-eunit: all $(patsubst test/erlang/%.erl,_build/test/%.beam,$(filter %_tests.erl,$(TEST_ERL_SOURCES)))
	erl -noshell -pa ebin _build/test -eval \
	  'case eunit:test([list_to_atom(filename:basename(F, ".beam")) || F <- filelib:wildcard("_build/test/*_tests.beam")], [verbose]) of ok -> halt(0); _ -> halt(1) end.'

# ct_run names its node ct@host unless told: a unique name lets runs from
# several checkouts share the machine (py_nodes_SUITE needs distribution on).
test-ct: all
	@mkdir -p $(CT_LOGDIR)
	ct_run -noshell -sname ct_$$$$ -dir test/erlang -logdir $(CT_LOGDIR) -pa $(CURDIR)/ebin -include $(CURDIR)/erlang_src $(CT_ARGS)

# The Erlang suites once more, every pool on the linked-in driver (see
# test/erlang/py_backend_cth.erl for what is skipped there, and why).
# Its logs go to a directory of their own: CT's index of a log directory is not
# safe against two runs ending at once (`make test' runs it beside test-asan).
test-ct-driver: all _build/test/py_backend_cth.beam
	@mkdir -p $(CT_LOGDIR)/driver
	EP_BACKEND=driver ct_run -noshell -sname ct_drv_$$$$ -dir test/erlang -logdir $(CT_LOGDIR)/driver \
	  -pa $(CURDIR)/ebin $(CURDIR)/_build/test -include $(CURDIR)/erlang_src -label driver \
	  -ct_hooks py_backend_cth [] $(CT_ARGS)

# The Erlang suites that drive the port program's C++ once more, against the
# port program built with ASan + UBSan (CT_ARGS="-suite ..." picks others).
# Left out, to keep `make test` under 10 minutes: suites about the Erlang
# side's orchestration or outside tools (pools, nodes, venvs, start-up,
# Elixir, crash storms, RSS caps that ASan's shadow memory distorts, the
# driver, which is not built with ASan, aiohttp/uvicorn clients).
ASAN_SUITES := py_api py_callback py_channel py_nested py_hostile py_failure py_event_loop \
  py_event_loop_api py_stream py_namespace py_compat py_schedule py_socket_transport py_state \
  py_module py_logging
ASAN_CT_ARGS ?= $(if $(CT_ARGS),$(CT_ARGS),-suite $(foreach s,$(ASAN_SUITES),test/erlang/$(s)_SUITE))
ASAN_JOBS ?= $(JOBS)
asan-port: deps
	@$(call configure,$(ASAN_BUILD),-DEP_SANITIZE=ON -DEP_TESTS=OFF -DEP_PRIV_DIR=$(CURDIR)/$(ASAN_BUILD)/priv)
	@cmake --build $(ASAN_BUILD) -j $(ASAN_JOBS) --target erlang_python_port

test-asan: all asan-port
	@mkdir -p $(CT_LOGDIR)
	EP_PORT_PROGRAM=$(CURDIR)/$(ASAN_BUILD)/priv/erlang_python_port ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  ct_run -noshell -sname ct_asan_$$$$ -logdir $(CT_LOGDIR) -pa $(CURDIR)/ebin -include $(CURDIR)/erlang_src -label asan $(ASAN_CT_ARGS)

# --- asyncio event loops: CPython's test_asyncio and the loop benchmark -------
# test_asyncio inside port programs, one module per port program
# (test/asyncio_suite/, exceptions in test/README.md). LOOP: erlang, uvloop,
# stdlib, or auto (erlang when the port program has ErlangEventLoop, else
# stdlib). CHECK=true fails on a loop-dependent failure not listed as an
# exception; the default checks only ErlangEventLoop (and auto).
LOOP ?= auto
ASYNCIO_MODULES ?= all
CHECK ?= $(if $(filter erlang auto,$(LOOP)),true,false)
ASYNCIO_QUICK := test_events,test_queues,test_locks,test_buffered_proto,test_sock_lowlevel,test_server,test_sendfile,test_timeouts,test_waitfor
ASYNCIO_RUN = erl -noshell -pa ebin _build/asyncio -eval \
  'py_asyncio_harness:main(["loop=$(1)", "modules=$(2)", "check=$(3)", "out=$(CURDIR)/_build/asyncio/results", "dir=$(CURDIR)/test/asyncio_suite"]).'

_build/asyncio/%.beam: test/asyncio_suite/%.erl
	@mkdir -p _build/asyncio
	erlc +debug_info -o _build/asyncio $<

test-asyncio: all _build/asyncio/py_asyncio_harness.beam
	$(call ASYNCIO_RUN,$(LOOP),$(ASYNCIO_MODULES),$(CHECK))

# The subset `make test` runs (about a minute).
test-asyncio-quick: all _build/asyncio/py_asyncio_harness.beam
	$(call ASYNCIO_RUN,auto,$(ASYNCIO_QUICK),true)
# ErlangEventLoop vs uvloop vs the standard loop, one port program (bench/README.md).
bench-loop: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/py_loop_bench.erl
	erl -noshell -pa ebin _build/bench -eval 'py_loop_bench:main(["$(CURDIR)/bench", "$(CURDIR)/test/asyncio_suite"]).'
# --- end of asyncio event loops ----------------------------------------------

demo: all _build/test/py_demo.beam
	erl -noshell -pa ebin _build/test -s py_demo main

# libFuzzer (needs clang), under ASan + UBSan, seeded from spec/vectors/:
# term_codec_fuzz (msgpack -> Python -> msgpack), frame_reader_fuzz (the
# {packet,4} reader, split and merged frames), py_encode_fuzz (Python objects
# -> msgpack). Each runs FUZZ_SECONDS, or FUZZ_RUNS executions when set
# (FUZZ_RUNS=3400000 gives the 10^7 of bench/README.md). Not part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS := term_codec_fuzz frame_reader_fuzz py_encode_fuzz
PY_INCLUDE = $(shell /usr/bin/python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
FUZZ_CXX := clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iport_program -I$(PY_INCLUDE) -DEP_PYTHON_PKG_DIR='"$(CURDIR)/python_pkg"'
FUZZ_CODEC := port_program/core/term_codec.cpp port_program/core/msgpack_reader.cpp port_program/core/stack_room.cpp
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))

_build/fuzz/term_codec_fuzz: test/fuzz/term_codec_fuzz.cpp $(FUZZ_CODEC)
	@mkdir -p _build/fuzz
	$(FUZZ_CXX) $^ -lpython3.11 -o $@
_build/fuzz/py_encode_fuzz: test/fuzz/py_encode_fuzz.cpp $(FUZZ_CODEC)
	@mkdir -p _build/fuzz
	$(FUZZ_CXX) $^ -lpython3.11 -o $@
_build/fuzz/frame_reader_fuzz: test/fuzz/frame_reader_fuzz.cpp port_program/core/frame_reader.hpp
	@mkdir -p _build/fuzz
	$(FUZZ_CXX) $< -o $@

# Seeds: the vectors as they are (msgpack values), and for the frame reader
# the same vectors framed, one per frame and all in one stream.
fuzz-corpus:
	@mkdir -p _build/fuzz/corpus_msgpack _build/fuzz/corpus_frames
	@cp spec/vectors/*.mp _build/fuzz/corpus_msgpack/
	@/usr/bin/python3 -c 'import glob, struct, sys; \
	  vs = [open(f, "rb").read() for f in sorted(glob.glob("spec/vectors/*.mp"))]; \
	  fr = lambda v: struct.pack(">I", len(v)) + v; \
	  [open("_build/fuzz/corpus_frames/v%03d" % i, "wb").write(bytes([i % 9]) + bytes([1 + i % 7] * 8) + fr(v)) for i, v in enumerate(vs)]; \
	  open("_build/fuzz/corpus_frames/all", "wb").write(bytes([7]) + bytes([3] * 8) + b"".join(fr(v) for v in vs))'

fuzz: deps fuzz-corpus $(addprefix _build/fuzz/,$(FUZZ_TARGETS))
	cd _build/fuzz && ASAN_OPTIONS=detect_leaks=0 ./term_codec_fuzz $(FUZZ_LIMIT) -max_len=4096 corpus_msgpack
	cd _build/fuzz && ASAN_OPTIONS=detect_leaks=0 ./py_encode_fuzz $(FUZZ_LIMIT) -max_len=4096 corpus_msgpack
	cd _build/fuzz && ASAN_OPTIONS=detect_leaks=0 ./frame_reader_fuzz $(FUZZ_LIMIT) -max_len=8192 corpus_frames

# Contracts the machine checks (.ci/run runs `make check` before `make test`):
# Dialyzer on the application with no warnings (the PLT of erts, kernel and
# stdlib is built once into _build/plt: ~85 s of CPU), erlc with
# warnings_as_errors (the `erlang' target), and clang's -Wthread-safety on
# the port program against libc++, whose std::mutex is an annotated
# capability (see port_program/core/thread_annotations.hpp).
PLT := _build/plt/erts_kernel_stdlib.plt
TSA_CXX := clang++ -std=c++20 -stdlib=libc++ -D_LIBCPP_ENABLE_THREAD_SAFETY_ANNOTATIONS \
  -Wthread-safety -Werror -fsyntax-only -Iport_program -I. -I/usr/lib/erlang/usr/include -I$(PY_INCLUDE) \
  -DEP_PYTHON_EXECUTABLE='"/usr/bin/python3"'
TSA_SOURCES := $(wildcard port_program/core/*.cpp port_program/io/*.cpp driver/*.cpp) port_program/main.cpp

$(PLT):
	@mkdir -p _build/plt
	dialyzer --build_plt --output_plt $@ --apps erts kernel stdlib

dialyzer: erlang $(PLT)
	dialyzer --plt $(PLT) ebin

_build/tsa/%.ok: %.cpp $(wildcard port_program/*/*.hpp driver/*.hpp)
	@mkdir -p $(dir $@)
	$(TSA_CXX) $<
	@touch $@

check-threads: deps $(patsubst %.cpp,_build/tsa/%.ok,$(TSA_SOURCES))

check: dialyzer check-threads
	@echo "make check: Dialyzer, erlc warnings_as_errors and -Wthread-safety passed"

# Fault storms, long form: every storm of py_storm_SUITE 100 times with 10,000
# calls in flight (make test runs the same suite: 2 rounds of 2,000).
STRESS_REPEAT ?= 100
STRESS_CALLS ?= 10000
stress: all
	@mkdir -p $(CT_LOGDIR)
	EP_STORM_REPEAT=$(STRESS_REPEAT) EP_STORM_CALLS=$(STRESS_CALLS) ct_run -noshell -sname ct_stress_$$$$ -dir test/erlang \
	  -suite py_storm_SUITE -logdir $(CT_LOGDIR) -pa $(CURDIR)/ebin -include $(CURDIR)/erlang_src $(CT_ARGS)

# Soak (not in make test): SOAK_CALLS mixed calls; resident memory of the VM
# and of each port program must stay within 10% after warm-up.
SOAK_CALLS ?= 1000000
soak: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/py_soak.erl
	erl -noshell -pa ebin _build/bench -eval 'py_soak:main(["$(SOAK_CALLS)"]).'

bench: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/*.erl
	erl +sbt db -noshell -pa ebin _build/bench -eval 'py_bench:main(["$(CURDIR)/$(BUILD)/bench/bench_echo_port", "$(CURDIR)/bench"]).'

# The port and driver backends side by side (bench/README.md, "Linked-in driver")
bench-driver: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/py_driver_bench.erl
	erl +sbt db -noshell -pa ebin _build/bench -eval 'py_driver_bench:main(["$(CURDIR)/$(BUILD)/bench/bench_echo_port"]).'

# py_event_loop figures (bench/README.md, "Event loops")
bench-async: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/py_async_bench.erl
	erl -noshell -pa ebin _build/bench -eval 'py_async_bench:main(["$(CURDIR)/$(BUILD)/bench/bench_echo_port"]).'

format:
	clang-format -i port_program/*.cpp port_program/*/*.cpp port_program/*/*.hpp driver/*.cpp driver/*.hpp test/cpp/*.cpp test/cpp/*.hpp bench/*.cpp

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) ebin _build priv/erlang_python_port priv/python
