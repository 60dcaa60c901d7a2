#!/usr/bin/env bash
# What the full-screen interface costs over SSH: CPU of the pacer process with the TUI open vs
# --headless during the same backfill, and bytes written to the terminal per second.
#
#   bash bench/tui_cost.sh [ROWS]        (default 600000; needs PostgreSQL server binaries and tmux)
#
# It starts a throwaway PostgreSQL in a temporary directory on a free port, seeds `orders`,
# runs the same paced backfill (batch 1000, pause_ms 20) once headless and once in a 160x48
# tmux pane whose output is captured with pipe-pane, reads each pacer process's CPU time from
# /proc, and prints one line per mode plus the ratio. Everything is removed at the end.
set -euo pipefail
ROWS=${1:-600000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
PACER=$PWD/target/release/pacer
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/pacer-bench-XXXXXX)
chmod 755 "$WORK"
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; AS=(runuser -u postgres --); fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  tmux -L pacer-bench kill-server 2>/dev/null || true
  "${AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"${AS[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -w -l "$WORK/log" \
  -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
cat > "$WORK/plan.toml" <<PLAN
table = "public.orders"
[column]
name = "amount"
type = "numeric(14,2)"
backfill = "amount_cents / 100.0"
[backfill]
batch_size = 1000
pause_ms = 20
PLAN

seed() { "$BIN/psql" -X -q "$URL" -v rows="$ROWS" -f demo/seed.sql >/dev/null 2>&1; }
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Samples a pid's CPU ticks until it exits (or, with a second argument, until the tmux screen
# says DONE, then quits the interface with q); prints "ticks seconds".
follow() {
  local pid=$1 tui=${2:-} start ticks=0 t
  start=$(date +%s.%N)
  while kill -0 "$pid" 2>/dev/null; do
    t=$(cpu_ticks "$pid"); [ "$t" -gt 0 ] && ticks=$t
    if [ -n "$tui" ] && tmux -L pacer-bench capture-pane -p -t b | grep -q " DONE "; then
      tmux -L pacer-bench send-keys -t b q
      break
    fi
    sleep 0.2
  done
  echo "$ticks $(echo "$(date +%s.%N) - $start" | bc)"
}

seed
"$PACER" run --headless "$WORK/plan.toml" --target "$URL" 2>/dev/null &
read -r h_ticks h_secs < <(follow $!)

seed
tmux -L pacer-bench new-session -d -s b -x 160 -y 48 "$PACER run $WORK/plan.toml --target $URL; sleep 30"
tmux -L pacer-bench pipe-pane -o -t b "cat > $WORK/tty.bytes"
sleep 0.5
pid=$(pgrep -f "^$PACER run $WORK/plan.toml" | head -1)
read -r t_ticks t_secs < <(follow "$pid" tui)
bytes=$(stat -c %s "$WORK/tty.bytes")

python3 - "$h_ticks" "$h_secs" "$t_ticks" "$t_secs" "$bytes" "$clk" "$ROWS" <<'PY'
import sys
ht, hs, tt, ts, b, clk, rows = map(float, sys.argv[1:])
h = ht / clk / hs * 100
t = tt / clk / ts * 100
print(f"rows {int(rows):,}; pacer CPU (% of one core), terminal output:")
print(f"  headless  {h:5.2f} %   over {hs:5.1f} s")
print(f"  TUI       {t:5.2f} %   over {ts:5.1f} s   {b / ts / 1024:6.2f} KiB/s to the terminal ({int(b):,} bytes)")
print(f"  TUI adds  {t - h:5.2f} % of one core (ratio {t / h if h else float('nan'):.2f})")
PY
