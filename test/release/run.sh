#!/bin/bash
# Releases of an application that depends on erlang_python, as users build
# them: rebar3 (relx) with rebar_app/, `mix release` with mix_app/. Each is
# built in a scratch directory, moved to another directory, started as a
# daemon, checked (a call, a callback and a channel round trip: relapp:check/0,
# MixApp.check/0) and stopped. A relx release without priv/python must say
# why Python cannot start. Prints "N passed, N failed"; exits 1 on a failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/test/release"
WORK=$(mktemp -d /tmp/ep_release.XXXXXX)
TAG="$$"
passed=0
failed=0
started=()  # start scripts of releases that may still run

result() {  # name, status (0 = pass), detail
  if [ "$2" = 0 ]; then
    passed=$((passed + 1)); echo "PASS $1 (${SECONDS}s)"
  else
    failed=$((failed + 1)); echo "FAIL $1 (${SECONDS}s)${3:+: $3}"
  fi
}

cleanup() {
  for script in "${started[@]}"; do
    pid=$("$script" pid 2>/dev/null) && [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (up to 60 s) until `$1 ping`-like command $@ succeeds.
wait_for() {
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# Waits (up to 30 s) until `$1 pid` fails: the node is gone.
wait_gone() {
  local deadline=$((SECONDS + 30))
  while "$1" pid >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

echo "== rebar3 release (relx)"
cp -r "$HERE/rebar_app" "$WORK/rebar_app"
mkdir -p "$WORK/rebar_app/_checkouts" "$WORK/rebar_app/config" "$WORK/moved"
ln -s "$ROOT" "$WORK/rebar_app/_checkouts/erlang_python"
printf -- '-sname ep_relapp_%s\n-setcookie ep_release_test\n' "$TAG" > "$WORK/rebar_app/config/vm.args"
if (cd "$WORK/rebar_app" && rebar3 release) > "$WORK/rebar3.log" 2>&1; then
  result "rebar3 release builds" 0
  mv "$WORK/rebar_app/_build/default/rel/relapp" "$WORK/moved/relapp"
  cp -r "$WORK/moved/relapp" "$WORK/relapp_no_python"
  REL="$WORK/moved/relapp/bin/relapp"
  started+=("$REL")
  "$REL" daemon
  if wait_for "$REL" ping; then
    out=$("$REL" eval 'relapp:check().' 2>&1)
    [ "$out" = ok ]; result "relx release, moved: call, callback, channel" $? "$out"
  else
    result "relx release, moved: starts" 1 "no answer to ping"
  fi
  "$REL" stop >/dev/null 2>&1
  wait_gone "$REL"; result "relx release stops" $?

  # Without priv/python every port program fails at start: the log says why.
  rm -rf "$WORK"/relapp_no_python/lib/erlang_python-*/priv/python
  printf -- '-sname ep_relapp_np_%s\n-setcookie ep_release_test\n' "$TAG" \
    > "$WORK"/relapp_no_python/releases/0.1.0/vm.args
  NOPY="$WORK/relapp_no_python/bin/relapp"
  started+=("$NOPY")
  "$NOPY" daemon
  logs="$WORK/relapp_no_python/log"
  wait_for grep -q "No module named 'erlang'" "$logs"/erlang.log.1
  grep -q "before Python started" "$logs"/erlang.log.1 &&
    grep -q "No module named 'erlang'" "$logs"/erlang.log.1
  result "relx release without priv/python logs the Python error" $? \
    "$(tail -5 "$logs"/erlang.log.1 2>&1)"
  "$NOPY" stop >/dev/null 2>&1
  wait_gone "$NOPY"
else
  result "rebar3 release builds" 1 "$(tail -20 "$WORK/rebar3.log")"
fi

echo "== mix release"
cp -r "$HERE/mix_app" "$WORK/mix_app"
sed -i "s|\"EP_ROOT\"|\"$ROOT\"|" "$WORK/mix_app/mix.exs"
if (cd "$WORK/mix_app" && MIX_ENV=prod mix release) > "$WORK/mix.log" 2>&1; then
  result "mix release builds" 0
  mv "$WORK/mix_app/_build/prod/rel/mix_app" "$WORK/moved/mix_app"
  MREL="$WORK/moved/mix_app/bin/mix_app"
  export RELEASE_NODE="ep_mixapp_$TAG" RELEASE_COOKIE=ep_release_test
  started+=("$MREL")
  "$MREL" daemon
  if wait_for "$MREL" pid; then
    out=$("$MREL" rpc 'IO.inspect(MixApp.check())' 2>&1)
    [ "$out" = :ok ]; result "mix release, moved: call, callback, channel" $? "$out"
  else
    result "mix release, moved: starts" 1 "no answer"
  fi
  "$MREL" stop >/dev/null 2>&1
  wait_gone "$MREL"; result "mix release stops" $?
else
  result "mix release builds" 1 "$(tail -20 "$WORK/mix.log")"
fi

echo "release tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
