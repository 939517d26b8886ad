#!/usr/bin/env bash
# demo.sh CEDANA: start a daemon on a temporary socket, start a process that counts, checkpoint it,
# restore it, and show that it counts on from where it stopped. Cleans up after itself.
set -euo pipefail
cedana=$(realpath "${1:-bin/cedana}")
work=$(mktemp -d /tmp/cedana-demo.XXXXXX)
export CEDANA_ADDRESS=$work/cedana.sock CEDANA_PROTOCOL=unix CEDANA_CHECKPOINT_DIR=$work/checkpoints
export CEDANA_DB_PATH=$work/state/cedana.db CEDANA_JOBS_LOG_DIR=$work/logs
daemon_pid="" workload_pid="" restored_pid=""
cleanup() {
  [ -n "$restored_pid" ] && kill -9 "$restored_pid" 2>/dev/null || true
  [ -n "$workload_pid" ] && kill -9 "$workload_pid" 2>/dev/null || true
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "starting the daemon on $CEDANA_ADDRESS"
"$cedana" daemon start >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do [ -S "$CEDANA_ADDRESS" ] && break; sleep 0.1; done
"$cedana" daemon check

step "starting a workload that writes an increasing counter to $work/counter"
# One bash process without children (its sleep is `read -t` on a FIFO nobody writes to), in its own
# session so that it is not a shell job of this script.
mkfifo "$work/tick"
setsid bash -c 'exec 3<>"$1"; i=0; while :; do i=$((i+1)); echo $i >"$0"; read -t 0.2 -u 3 || :; done' \
  "$work/counter" "$work/tick" </dev/null >/dev/null 2>&1 &
workload_pid=$!
sleep 1.5
echo "workload PID $workload_pid, counter now $(cat "$work/counter")"

step "cedana dump process $workload_pid"
"$cedana" dump process "$workload_pid" --name demo
{ wait "$workload_pid"; } 2>/dev/null || true
workload_pid=""
dumped=$(cat "$work/counter")
sleep 1
echo "counter after the dump: $dumped, one second later: $(cat "$work/counter") (the process is gone)"
ls "$CEDANA_CHECKPOINT_DIR/demo" | head -5; echo "..."

step "cedana restore process --path $CEDANA_CHECKPOINT_DIR/demo"
out=$("$cedana" restore process --path "$CEDANA_CHECKPOINT_DIR/demo")
echo "$out"
restored_pid=${out##*: }
for i in 1 2 3; do sleep 0.5; echo "counter: $(cat "$work/counter")"; done
now=$(cat "$work/counter")
if [ "$now" -gt "$dumped" ] && [ "$now" -lt $((dumped + 20)) ]; then
  step "the restored process (PID $restored_pid) went on counting from $dumped: demo passed"
else
  echo "unexpected counter $now after restoring at $dumped" >&2; exit 1
fi
