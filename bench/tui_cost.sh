#!/usr/bin/env bash
# What the full-screen interface costs over SSH: CPU of pacer with the TUI open vs --headless
# during the same backfill, and bytes written to the terminal per second.
#
#   bash bench/tui_cost.sh [ROWS]        (default 600000; needs PostgreSQL server binaries and tmux)
#   PACER_BIN=/path/to/pacer bash bench/tui_cost.sh     (use that binary instead of building)
#
# It starts a throwaway PostgreSQL in a temporary directory on a free port, seeds `orders`,
# runs the same paced backfill (batch 1000, pause_ms 20) once headless and once in a 160x48
# tmux pane whose output is captured with pipe-pane, reads the CPU time of the pacer processes
# from /proc, and prints one line per mode plus the ratio. On a terminal `pacer run` is two
# processes: the runner (`pacer run … --runner`, its own session, started by the screen) does
# the migration, and the screen draws it over the runner's Unix socket; the TUI line is their
# sum, with each shown beside it. Everything is removed at the end.
set -euo pipefail
ROWS=${1:-600000}
cd "$(dirname "$0")/.."
if [ -n "${PACER_BIN:-}" ]; then
  PACER=$(realpath "$PACER_BIN")
else
  cargo build --release --quiet
  PACER=$PWD/target/release/pacer
fi
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

# Samples the CPU ticks of one or two pids until the first exits (or, with tui=1, until the
# tmux screen says DONE, then quits the interface with q); prints "ticks1 ticks2 seconds".
# A pid's last reading before it exits is kept (the runner may end before the screen).
follow() {
  local tui=$1 p1=$2 p2=${3:-} start a=0 b=0 t
  start=$(date +%s.%N)
  while kill -0 "$p1" 2>/dev/null; do
    t=$(cpu_ticks "$p1"); [ "$t" -gt 0 ] && a=$t
    if [ -n "$p2" ]; then t=$(cpu_ticks "$p2"); [ "$t" -gt 0 ] && b=$t; fi
    if [ "$tui" = 1 ] && tmux -L pacer-bench capture-pane -p -t b | grep -q " DONE "; then
      tmux -L pacer-bench send-keys -t b q
      break
    fi
    sleep 0.2
  done
  echo "$a $b $(echo "$(date +%s.%N) - $start" | bc)"
}

seed
"$PACER" run --headless "$WORK/plan.toml" --target "$URL" 2>/dev/null &
read -r h_ticks _ h_secs < <(follow 0 $!)

seed
tmux -L pacer-bench new-session -d -s b -x 160 -y 48 "$PACER run $WORK/plan.toml --target $URL; sleep 30"
tmux -L pacer-bench pipe-pane -o -t b "cat > $WORK/tty.bytes"
screen=""; runner=""
for _ in $(seq 100); do
  screen=$(pgrep -f "^$PACER run $WORK/plan.toml --target" | head -1 || true)
  [ -n "$screen" ] && runner=$(pgrep -P "$screen" -f -- "--runner" | head -1 || true)
  [ -n "$runner" ] && break
  sleep 0.05
done
if [ -z "$screen" ] || [ -z "$runner" ]; then
  echo "could not find the screen ($screen) and runner ($runner) processes" >&2
  exit 1
fi
read -r s_ticks r_ticks t_secs < <(follow 1 "$screen" "$runner")
bytes=$(stat -c %s "$WORK/tty.bytes")

python3 - "$h_ticks" "$h_secs" "$s_ticks" "$r_ticks" "$t_secs" "$bytes" "$clk" "$ROWS" <<'PY'
import sys
ht, hs, st, rt, ts, b, clk, rows = map(float, sys.argv[1:])
h = ht / clk / hs * 100
s = st / clk / ts * 100
r = rt / clk / ts * 100
t = s + r
print(f"rows {int(rows):,}; pacer CPU (% of one core), terminal output:")
print(f"  headless  {h:5.2f} %   over {hs:5.1f} s")
print(f"  TUI       {t:5.2f} %   over {ts:5.1f} s   (runner {r:.2f} % + screen {s:.2f} %)   "
      f"{b / ts / 1024:6.2f} KiB/s to the terminal ({int(b):,} bytes)")
print(f"  TUI adds  {t - h:5.2f} % of one core (ratio {t / h if h else float('nan'):.2f})")
PY
