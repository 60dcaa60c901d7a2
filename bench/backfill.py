#!/usr/bin/env python3
"""Backfill benchmark: pacer against the hand-written alternatives on a real PostgreSQL.

    python3 bench/backfill.py [--rows 2000000] [--repeats 2] [--only 1,2,3,4,5] [--keep]
                              [--extras] [--fg-variant target_batch_ms=50,pause_ms=20] [--tui]
    (python3 bench/backfill.py --help lists every option; the default run takes ~7 minutes
    on 2 cores)

Python 3.11 standard library only; it shells out to the PostgreSQL 15 binaries
(/usr/lib/postgresql/15/bin, or $PGBIN) and to pacer ($PACER_BIN, else it builds pacer with
`cargo build --release --target-dir /tmp/bench-target` from the repository).

It starts its own throwaway PostgreSQL (a temporary directory owned by the `postgres` OS user
when run as root, a free port on 127.0.0.1, fsync=off unless --fsync on, everything else at PostgreSQL's
defaults), seeds `orders` once from demo/seed.sql into a template database, and gives every run
a fresh copy of it (CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY), so every method starts
from the same table. Methods are interleaved and repeated (order rotated each repeat); every
run is reported and the median of each method is taken.

  1. Throughput: pacer's backfill rows/s (pause_ms = 0, no throttle; backfill phase only)
     ÷ a server-side PL/pgSQL loop of 10k-row keyset ranges with a COMMIT each, and
     ÷ the common loop `UPDATE … WHERE id IN (SELECT id … WHERE amount IS NULL LIMIT 10000)`
     (also a PL/pgSQL procedure, COMMIT each: the most favourable form of that loop).
     With --extras also: pacer at a fixed batch_size = 10000 (the loop's batch), and the
     server-side loop with pacer's sync trigger installed (what pacer's batches pay per row).
  2. Foreground impact: pgbench at a fixed rate (point SELECT + UPDATE of `status` by random
     id) on the same table; p50/p99 latency (from the per-transaction logs, measured from each
     transaction's scheduled start, so queueing counts) of the transactions scheduled while
     the method ran: no migration, pacer with default settings, one whole-table UPDATE (and
     pacer with other [backfill] settings, --fg-variant).
  3. Pause latency: many SIGUSR1 pauses during one backfill with default settings; time from
     the signal to the last row change (the `ts` of the last `batch_done` before `paused`),
     against the duration of the batch that was running.
  4. Lag held: a streaming replica (pg_basebackup) whose replay is slowed by a duty cycle of
     pg_wal_replay_pause()/pg_wal_replay_resume() (--replay-duty); highest replay lag during
     the backfill with `[throttle] max_replication_lag = "1s"` vs without (the throttled run is
     reported as not available when this pacer build rejects the key). Lag is measured from
     positions: now minus the time the primary had written the WAL the replica just replayed;
     the primary's pg_stat_replication.replay_lag (what pacer reads) is reported beside it.
     One repeat by default (--lag-repeats): the throttled run waits for the slow replica.
  5. pacer's own cost: CPU time and peak RSS of every pacer run (wait4 rusage), headless; with
     --tui also with the full-screen interface in a tmux pane (/proc/PID/stat, as
     bench/tui_cost.sh: the runner process plus the screen process, summed and shown apart).

The report goes to stdout and to bench/results/backfill-<date>.txt (raw numbers in .json).
Everything it started is stopped and removed at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
IS_ROOT = os.geteuid() == 0
T0 = time.monotonic()

# ----------------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(values, p: float):
    """Nearest-rank percentile (p in 0..100) of a list of numbers."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def ratio(a, b):
    return a / b if a is not None and b else None


def r2(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def ms(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ts_epoch(ts: str) -> float:
    """RFC 3339 (pacer's `ts`) → seconds since the epoch."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Cleanup:
    """Processes and servers to stop at the end, whatever happens."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.actions: list = []

    def proc(self, p: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(p)
        return p

    def run(self):
        for p in reversed(self.procs):
            if p.returncode is None and p.poll() is None:
                try:
                    p.kill()  # our own child, by its pid
                    p.wait(timeout=5)
                except Exception:
                    pass
        for a in reversed(self.actions):
            try:
                a()
            except Exception as e:  # keep cleaning up
                log(f"cleanup: {e}")


CLEANUP = Cleanup()


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if IS_ROOT else cmd


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(map(str, cmd))} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p


# ----------------------------------------------------------------------------------------------
# PostgreSQL


class PgServer:
    def __init__(self, root: Path, name: str, extra_opts: str = "", fsync: str = "off"):
        self.root = root
        self.fsync = fsync
        self.name = name
        self.extra_opts = extra_opts
        self.data = root / name
        self.logfile = root / f"{name}.log"
        self.port = free_port()
        self.started = False

    def opts(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={self.fsync} {self.extra_opts}".strip()

    def initdb(self):
        run(as_postgres([str(PGBIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                         "-E", "UTF8", "--locale=C", "--no-sync"]))

    def start(self):
        CLEANUP.actions.append(self.stop)
        run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l", str(self.logfile),
                         "-o", self.opts(), "start"]))
        self.started = True

    def stop(self):
        if self.started:
            run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-t", "30", "stop"]),
                check=False)
            self.started = False

    def url(self, db="postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str, check=True) -> str:
        p = run([str(PGBIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(db), "-f", "-"],
                check=check, input=sql)
        return p.stdout.strip()

    def fresh_db(self, name: str, template="seed"):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")

    def drop_db(self, name: str):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)


class Session:
    """A persistent psql session: one query at a time, rows as lists of strings."""

    def __init__(self, url: str, errlog: Path):
        self.err = open(errlog, "a")
        self.p = CLEANUP.proc(subprocess.Popen(
            [str(PGBIN / "psql"), "-X", "-q", "-A", "-t", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1))

    def query(self, sql: str) -> list[list[str]]:
        self.p.stdin.write(sql.strip().rstrip(";") + ";\n\\echo __end__\n")
        self.p.stdin.flush()
        rows = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("psql session ended")
            line = line.rstrip("\n")
            if line == "__end__":
                return rows
            rows.append(line.split("|"))

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=5)
        except Exception:
            self.p.kill()
        self.err.close()


# ----------------------------------------------------------------------------------------------
# pacer

PLAN_HEAD = """table = "public.orders"

[column]
name = "amount"
type = "numeric(14,2)"
backfill = "amount_cents / 100.0"
"""
# The plans, by name. "defaults" sets nothing beyond the column: pacer's default batch size,
# pause 0, no throttle, the foreground guard at its default (and whatever adaptive sizing the
# build does by default).
PLANS = {
    "defaults": PLAN_HEAD,
    # Full speed: no pause and the foreground guard off (it is on by default; with it on and
    # nothing else running, the probe still feels pacer's own batches and slows them).
    "full_speed": PLAN_HEAD + "\n[backfill]\npause_ms = 0\n[throttle]\nmax_foreground_impact = \"off\"\n",
    "batch10k": PLAN_HEAD + "\n[backfill]\nbatch_size = 10000\npause_ms = 0\nadaptive = false\n"
                "[throttle]\nmax_foreground_impact = \"off\"\n",
    "throttled": PLAN_HEAD + '\n[throttle]\nmax_replication_lag = "1s"\n',
}


def build_pacer() -> Path:
    env_bin = os.environ.get("PACER_BIN")
    if env_bin:
        return Path(env_bin).resolve()
    log("building pacer: cargo build --release --target-dir /tmp/bench-target")
    p = subprocess.run(["cargo", "build", "--release", "--quiet", "--target-dir", "/tmp/bench-target"], cwd=REPO)
    if p.returncode != 0:
        sys.exit("cargo build failed")
    return Path("/tmp/bench-target/release/pacer")


class PacerRun:
    """`pacer run PLAN --headless --json`, its events as they arrive, its rusage at the end."""

    def __init__(self, pacer: Path, plan: Path, url: str, out: Path, extra=()):
        self.events: list[tuple[float, dict]] = []  # (arrival time, event)
        self.cond = threading.Condition()
        self.out = open(out, "w")
        self.err_path = out.with_suffix(".stderr")
        self.err = open(self.err_path, "w")
        self.t_start = time.time()
        self.proc = CLEANUP.proc(subprocess.Popen(
            [str(pacer), "run", str(plan), "--headless", "--json", "--target", url, *extra],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL, text=True, bufsize=1))
        self.pid = self.proc.pid
        self.rc = None
        self.rusage = None
        self.t_end = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.time()
            self.out.write(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append((now, ev))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_event(self, pred, start_index=0, timeout=60.0):
        """First event at index ≥ start_index matching pred: (index, arrival, event), or None."""
        deadline = time.time() + timeout
        with self.cond:
            i = start_index
            while True:
                while i < len(self.events):
                    at, ev = self.events[i]
                    if pred(ev):
                        return i, at, ev
                    i += 1
                left = deadline - time.time()
                if left <= 0 or (not self.reader.is_alive() and i >= len(self.events)):
                    return None
                self.cond.wait(min(left, 0.5))

    def wait(self, timeout: float):
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                break
            if time.time() > deadline:
                self.proc.kill()
                pid, status, ru = os.wait4(self.pid, 0)
                break
            time.sleep(0.02)
        self.t_end = time.time()
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc  # so subprocess does not wait for it again
        self.rusage = ru
        self.reader.join(timeout=10)
        self.out.close()
        self.err.close()
        return self.rc

    def stderr_tail(self) -> str:
        try:
            return self.err_path.read_text()[-1500:]
        except OSError:
            return ""

    def summary(self) -> dict:
        """Backfill figures from the events, and the process's cost."""
        evs = [e for _, e in self.events]
        bstart = next((e for e in evs if e.get("event") == "phase_started" and e.get("phase") == "backfill"), None)
        bdone = next((e for e in evs if e.get("event") == "phase_done" and e.get("phase") == "backfill"), None)
        batches = [e for e in evs if e.get("event") == "batch_done"]
        vdone = next((e for e in evs if e.get("event") == "phase_done" and e.get("phase") == "verify"), None)
        rows = batches[-1]["rows_done"] if batches else 0
        if bdone:
            secs = bdone["elapsed_ms"] / 1000
            bwin = (ts_epoch(bstart["ts"]), ts_epoch(bdone["ts"])) if bstart else None
        elif bstart and batches:  # stopped before the end (aborted on purpose)
            bwin = (ts_epoch(bstart["ts"]), ts_epoch(batches[-1]["ts"]))
            secs = bwin[1] - bwin[0]
        else:
            secs, bwin = None, None
        cpu = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else None
        wall = (self.t_end - self.t_start) if self.t_end else None
        durations = [b["duration_ms"] for b in batches]
        # The ETA's error at 10, 50 and 90 % of the rows: |ETA − the real time left| ÷ the real
        # time left (the real time left: from that batch to the backfill's end); and rows/s over
        # the first and the last tenth of the rows, for "flat with table size".
        eta_err, tenth_rate = {}, {}
        if bdone and batches and batches[-1].get("rows_total"):
            t_end = ts_epoch(bdone["ts"])
            total = batches[-1]["rows_total"]
            for q in (10, 50, 90):
                b = next((b for b in batches if b["rows_done"] >= total * q / 100), None)
                if b and b.get("eta_s") is not None:
                    left = t_end - ts_epoch(b["ts"])
                    if left > 0:
                        eta_err[q] = abs(b["eta_s"] - left) / left
            t0 = ts_epoch(bstart["ts"]) if bstart else None
            first = next((b for b in batches if b["rows_done"] >= total / 10), None)
            last = next((b for b in batches if b["rows_done"] >= total * 0.9), None)
            if t0 and first and ts_epoch(first["ts"]) > t0:
                tenth_rate["first"] = first["rows_done"] / (ts_epoch(first["ts"]) - t0)
            if last and t_end > ts_epoch(last["ts"]):
                tenth_rate["last"] = (rows - last["rows_done"]) / (t_end - ts_epoch(last["ts"]))
        sizes = [b.get("batch_size") or b.get("keys") for b in batches]
        return {
            "rc": self.rc,
            "rows": rows,
            "backfill_s": secs,
            "rows_per_s": rows / secs if secs else None,
            "backfill_window": bwin,
            "wall_s": wall,
            "verify_s": vdone["elapsed_ms"] / 1000 if vdone else None,
            "eta_err": eta_err,
            "tenth_rows_per_s": tenth_rate,
            "window": (self.t_start, self.t_end),
            "batches": len(batches),
            "batch_ms_p50": pct(durations, 50),
            "batch_ms_p95": pct(durations, 95),
            "batch_ms_max": max(durations) if durations else None,
            "batch_size_first": sizes[0] if sizes else None,
            "batch_size_last": sizes[-1] if sizes else None,
            "batch_size_p50": pct(sizes, 50),
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / wall if cpu is not None and wall else None,
            "maxrss_kib": self.rusage.ru_maxrss if self.rusage else None,
            "throttled_n": sum(1 for e in evs if e.get("event") == "throttled"),
            "throttled_ms": sum(e.get("after_ms") or 0 for e in evs if e.get("event") == "unthrottled"),
            "size_changes": sum(1 for e in evs if e.get("event") == "batch_size_changed"),
            "event_names": sorted({e.get("event") for e in evs}),
        }


def children(pid: int) -> list[int]:
    """Pids whose parent is pid (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode(errors="replace")
    except OSError:
        return ""


def pacer_plan_sql(pacer: Path, plan: Path, url: str) -> dict[str, list[str]]:
    """The exact SQL of each phase, from `pacer plan --json`."""
    p = run([str(pacer), "plan", str(plan), "--json", "--target", url])
    doc = json.loads(p.stdout)
    return {ph["phase"]: [s["sql"] for s in ph.get("steps", [])] for ph in doc["phases"]}


# ----------------------------------------------------------------------------------------------
# the benchmark

PROCS_SQL = """
CREATE PROCEDURE bench_keyset(batch int) LANGUAGE plpgsql AS $$
DECLARE lo bigint := 0; hi bigint; last bigint;
BEGIN
  SELECT max(id) INTO last FROM orders;
  LOOP
    SELECT id INTO hi FROM orders WHERE id > lo ORDER BY id OFFSET batch - 1 LIMIT 1;
    IF hi IS NULL OR hi > last THEN hi := last; END IF;
    UPDATE orders SET amount = amount_cents / 100.0 WHERE id > lo AND id <= hi AND amount IS NULL;
    COMMIT;
    EXIT WHEN hi >= last;
    lo := hi;
  END LOOP;
END $$;
CREATE PROCEDURE bench_in_limit(batch int) LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  LOOP
    UPDATE orders SET amount = amount_cents / 100.0
     WHERE id IN (SELECT id FROM orders WHERE amount IS NULL LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    EXIT WHEN n = 0;
  END LOOP;
END $$;
"""

PGBENCH_SCRIPT = """\\set id random(1, {rows})
SELECT status, amount_cents FROM orders WHERE id = :id;
UPDATE orders SET status = 'paid' WHERE id = :id;
"""


class Bench:
    def __init__(self, args):
        self.a = args
        self.rows = args.rows
        self.session_options: dict[str, str] = {}  # plan name -> libpq `options` for pacer's sessions
        self.work = Path(tempfile.mkdtemp(prefix="pacer-backfill-"))
        os.chmod(self.work, 0o755)
        if IS_ROOT:
            shutil.chown(self.work, "postgres", "postgres")
        self.files = self.work / "files"  # ours (plans, events, pgbench logs)
        self.files.mkdir()
        CLEANUP.actions.insert(0, self.remove_work)
        # A server that has been writing keeps its WAL segments and reuses them; a new one has
        # none and must create (zero-fill) each one, with every commit waiting (measured: the
        # first heavy writer's p99 is 35-41 ms against ~2 ms once the segments exist). The
        # harness keeps 1 GB of them (min_wal_size) and fills them before measuring, unless
        # --cold-wal.
        self.pg = PgServer(self.work, "primary", "" if args.cold_wal else "-c min_wal_size=1GB", args.fsync)
        self.replica: PgServer | None = None
        self.pacer: Path | None = None
        self.plans: dict[str, Path] = {}
        self.results: dict = {"runs": []}
        self.report: list[str] = []
        self.seq = 0
        self.throttle_supported = None
        self.throttle_probe_msg = ""

    def remove_work(self):
        if self.a.keep:
            log(f"kept {self.work}")
            return
        shutil.rmtree(self.work, ignore_errors=True)

    def out(self, line=""):
        self.report.append(line)
        print(line, flush=True)

    def next_id(self, what: str) -> str:
        self.seq += 1
        return f"{self.seq:02d}-{what}"

    # -- setup ---------------------------------------------------------------------------------

    def setup(self):
        self.pacer = build_pacer()
        for name, text in PLANS.items():
            path = self.files / f"{name}.toml"
            path.write_text(text)
            self.plans[name] = path
        (self.files / "pgbench.sql").write_text(PGBENCH_SCRIPT.format(rows=self.rows))
        log(f"initdb + start PostgreSQL in {self.work} (port {self.pg.port}, fsync={self.a.fsync})")
        self.pg.initdb()
        self.pg.start()
        self.pg.psql("postgres", "CREATE DATABASE seed")
        t = time.time()
        run([str(PGBIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"rows={self.rows}",
             "-f", str(REPO / "demo" / "seed.sql"), self.pg.url("seed")])
        if self.a.no_secondary_index:
            self.pg.psql("seed", "DROP INDEX orders_customer_idx")
        self.pg.psql("seed", "VACUUM (ANALYZE) orders")
        self.seed_s = time.time() - t
        if not self.a.cold_wal:
            self.warm_wal()
        size = self.pg.psql("seed", "SELECT pg_size_pretty(pg_total_relation_size('orders'))")
        log(f"seeded {self.rows:,} rows in {self.seed_s:.1f} s ({size} with indexes)")
        self.table_size = size
        # Does this pacer build accept [throttle] max_replication_lag (and `adaptive`)?
        self.pg.fresh_db("probe")
        if run([str(self.pacer), "plan", str(self.plans["batch10k"]), "--target", self.pg.url("probe")],
               check=False).returncode != 0:
            self.plans["batch10k"].write_text(PLANS["batch10k"].replace("adaptive = false\n", ""))
        p = run([str(self.pacer), "plan", str(self.plans["throttled"]), "--target", self.pg.url("probe")],
                check=False)
        self.pg.drop_db("probe")
        self.throttle_supported = p.returncode == 0
        self.throttle_probe_msg = (p.stderr.strip().splitlines() or [""])[-1]
        log(f"[throttle] max_replication_lag accepted: {self.throttle_supported} {self.throttle_probe_msg}")

    def warm_wal(self):
        """Writes ~1.2 GB of WAL and checkpoints, so that the WAL segments exist (recycled, up to
        min_wal_size) as on a server that has been running, and no run pays for creating them."""
        t = time.time()
        self.pg.psql("postgres", "CREATE DATABASE walwarm")
        for _ in range(2):
            self.pg.psql("walwarm", "CREATE TABLE w AS SELECT g, repeat('x', 500) AS pad "
                                    "FROM generate_series(1, 1000000) g; DROP TABLE w; CHECKPOINT")
        self.pg.psql("postgres", "DROP DATABASE walwarm")
        self.pg.psql("postgres", "CHECKPOINT")
        n = self.pg.psql("postgres", "SELECT count(*) FROM pg_ls_waldir()")
        self.wal_segments = int(n)
        log(f"WAL warmed in {time.time() - t:.1f} s: {n} segments of 16 MB in pg_wal")

    def header(self):
        a = self.a
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024 / 1024
        pgv = run([str(PGBIN / "postgres"), "--version"]).stdout.strip()
        pv = run([str(self.pacer), "--version"], check=False).stdout.strip()
        git = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                    check=False).stdout.strip()
        src = os.environ.get("PACER_BIN") or "/tmp/bench-target/release/pacer (built from the repository)"
        self.out("pacer backfill benchmark (bench/backfill.py)")
        self.out(f"date {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; command: "
                 f"{shlex.join(['python3', 'bench/backfill.py', *sys.argv[1:]])}")
        self.out(f"machine: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}; "
                 f"load average at start {os.getloadavg()[0]:.2f}")
        wal = ("WAL cold (--cold-wal: min_wal_size 80MB, segments created as written)" if a.cold_wal else
               f"min_wal_size=1GB and the WAL filled once before measuring ({self.wal_segments} segments), "
               f"as on a server that has been writing")
        self.out(f"{pgv}; fsync={a.fsync}, {wal}; other settings PostgreSQL defaults (shared_buffers 128MB, "
                 f"max_wal_size 1GB, autovacuum on)")
        self.out(f"pacer: {pv} at {src}; repository HEAD {git}"
                 f"{' with uncommitted changes in src/' if dirty else ''}")
        self.out(f"table: orders from demo/seed.sql, {self.rows:,} rows, {self.table_size} with indexes "
                 f"({'orders_customer_idx dropped, ' if self.a.no_secondary_index else ''}"
                 f"primary key{'' if self.a.no_secondary_index else ' + orders_customer_idx'}) "
                 f"(seeded in {self.seed_s:.1f} s); every run starts from a fresh copy of it")
        self.out(f"repeats: {a.repeats}, methods interleaved, order rotated each repeat; medians reported")
        self.out()

    # -- one run of each kind ------------------------------------------------------------------

    def pacer_run(self, db: str, plan: str, label: str, timeout=None, binary: Path | None = None) -> dict:
        rid = self.next_id(label.replace(":", "-"))
        url = self.pg.url(db)
        if self.session_options.get(plan):  # pg.* settings of a variant: pacer's sessions only
            url += ("&" if "?" in url else "?") + "options=" + urllib.parse.quote(self.session_options[plan])
        pr = PacerRun(binary or self.pacer, self.plans[plan], url, self.files / f"{rid}.jsonl")
        rc = pr.wait(timeout or self.run_timeout())
        s = pr.summary()
        if rc != 0:
            log(f"pacer exited {rc}: {pr.stderr_tail()}")
        return s

    def run_timeout(self) -> float:
        return max(300.0, self.rows / 2000)

    def check_filled(self, db: str) -> int:
        return int(self.pg.psql(db, "SELECT count(*) FROM orders WHERE amount IS NULL"))

    def hand_run(self, db: str, call: str, trigger_sql: list[str] | None = None) -> dict:
        if trigger_sql:
            for stmt in trigger_sql:  # pacer's own ADD COLUMN and sync function + trigger
                self.pg.psql(db, stmt)
        else:
            self.pg.psql(db, "ALTER TABLE orders ADD COLUMN amount numeric(14,2)")
        self.pg.psql(db, PROCS_SQL)
        t = time.time()
        self.pg.psql(db, call)
        secs = time.time() - t
        return {"rc": 0, "rows": self.rows, "backfill_s": secs, "rows_per_s": self.rows / secs,
                "window": (t, t + secs)}

    # -- 1. throughput -------------------------------------------------------------------------

    def item1(self):
        log("1. throughput")
        methods = ["pacer_full", "server_loop", "in_limit"]
        if self.a.extras:
            methods[1:1] = ["pacer_10k"]
            methods.append("server_loop_trigger")
        if self.a.compare_bin:  # another pacer binary, interleaved with this one (before/after)
            methods.insert(1, "pacer_other")
        if self.a.item1_methods:  # e.g. only pacer_full, to look at one run's events (--keep)
            methods = [m for m in self.a.item1_methods.split(",") if m]
        trigger_sql = None
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(self.a.repeats):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for m in order:
                db = "run"
                self.pg.fresh_db(db)
                la = os.getloadavg()[0]
                if m == "pacer_full":
                    s = self.pacer_run(db, "full_speed", m)
                elif m == "pacer_other":
                    s = self.pacer_run(db, "full_speed", m, binary=Path(self.a.compare_bin))
                elif m == "pacer_10k":
                    s = self.pacer_run(db, "batch10k", m)
                elif m == "server_loop":
                    s = self.hand_run(db, f"CALL bench_keyset({self.a.loop_batch})")
                elif m == "server_loop_trigger":
                    if trigger_sql is None:
                        phases = pacer_plan_sql(self.pacer, self.plans["full_speed"], self.pg.url(db))
                        trigger_sql = phases.get("add_column", []) + phases.get("sync", [])
                    s = self.hand_run(db, f"CALL bench_keyset({self.a.loop_batch})", trigger_sql)
                else:
                    s = self.hand_run(db, f"CALL bench_in_limit({self.a.loop_batch})")
                s["unfilled"] = self.check_filled(db)
                s["load"] = la
                s["repeat"] = r + 1
                self.pg.drop_db(db)
                runs[m].append(s)
                self.results["runs"].append({"item": 1, "method": m, **s})
                log(f"  repeat {r + 1} {m}: {fmt_int(s['rows_per_s'] or 0)} rows/s "
                    f"({s['rows']:,} rows in {s['backfill_s'] or 0:.2f} s) rc={s['rc']} unfilled={s['unfilled']}")
        self.item1_runs = runs
        names = {
            "pacer_full": "pacer, default batch size, pause_ms = 0, foreground guard off (backfill phase)",
            "pacer_10k": "pacer, fixed batch_size = 10000, pause_ms = 0 (backfill phase)",
            "pacer_other": f"the same with --compare-bin {self.a.compare_bin}",
            "server_loop": f"server-side keyset loop, {self.a.loop_batch:,}-row ranges, COMMIT each",
            "server_loop_trigger": "same loop with pacer's sync trigger installed",
            "in_limit": f"loop UPDATE … WHERE id IN (SELECT … IS NULL LIMIT {self.a.loop_batch:,})",
        }
        self.out(f"1. Throughput vs the limit ({self.rows:,} rows; rows/s = rows ÷ time to fill them)")
        med = {}
        for m in methods:
            vals = [s["rows_per_s"] for s in runs[m] if s["rc"] == 0 and s.get("unfilled") == 0]
            med[m] = median(vals)
            each = ", ".join(
                f"{fmt_int(s['rows_per_s'] or 0)} ({s['backfill_s'] or 0:.2f} s"
                + (f", batch p50 {ms(s['batch_ms_p50'])}, size {s['batch_size_first']}→{s['batch_size_last']}, "
                   f"{s['batches']} batches, verify {s['verify_s'] or 0:.2f} s, whole run {s['wall_s'] or 0:.2f} s, "
                   f"peak RSS {(s['maxrss_kib'] or 0) / 1024:.1f} MiB, ETA error at 10/50/90 % "
                   + "/".join(f"{100 * s['eta_err'][q]:.0f}%" if q in s.get('eta_err', {}) else "—" for q in (10, 50, 90))
                   + ", rows/s first/last tenth "
                   + "/".join(fmt_int(s.get('tenth_rows_per_s', {}).get(k) or 0) for k in ("first", "last"))
                   if "batch_ms_p50" in s else "")
                + ("" if s["rc"] == 0 and s.get("unfilled") == 0 else f", FAILED rc={s['rc']} unfilled={s.get('unfilled')}")
                + ")"
                for s in runs[m])
            self.out(f"   {names[m]}: median {fmt_int(med[m] or 0)} rows/s; runs {each}")
        for m in names:  # a method left out (--item1-methods) reads n/a
            med.setdefault(m, None)
            runs.setdefault(m, [])
        self.item1_median = med
        rs = ratio(med["pacer_full"], med["server_loop"])
        ri = ratio(med["pacer_full"], med["in_limit"])
        self.out(f"   RESULT 1a  pacer ÷ server-side loop = {r2(rs)} ({fmt_int(med['pacer_full'] or 0)} / "
                 f"{fmt_int(med['server_loop'] or 0)} rows/s); goal ≥ 0.9: {'MET' if rs and rs >= 0.9 else 'NOT MET'}")
        self.out(f"   RESULT 1b  pacer ÷ IN (… LIMIT n) loop = {r2(ri)} ({fmt_int(med['pacer_full'] or 0)} / "
                 f"{fmt_int(med['in_limit'] or 0)} rows/s)")
        ok = [s for s in runs["pacer_full"] if s["rc"] == 0 and s.get("unfilled") == 0]
        whole = median([s["wall_s"] for s in ok if s.get("wall_s")])
        verify = median([s["verify_s"] for s in ok if s.get("verify_s") is not None])
        backfill = median([s["backfill_s"] for s in ok if s.get("backfill_s")])
        loop_s = median([s["backfill_s"] for s in runs["server_loop"] if s["rc"] == 0 and s.get("unfilled") == 0])
        if whole and loop_s:
            rw = loop_s / whole
            self.out(f"   RESULT 1w  whole run: server-side loop time ÷ pacer's whole `pacer run` = {r2(rw)} "
                     f"({loop_s:.2f} s / {whole:.2f} s; goal ≥ 1.0 on a table with only a primary key, ≥ 1.3 on the "
                     f"demo-shaped one: {'MET' if rw >= (1.0 if self.a.no_secondary_index else 1.3) else 'NOT MET'})")
        if verify is not None and backfill:
            rv = verify / backfill
            self.out(f"   RESULT 1v  verify ÷ backfill = {r2(rv)} ({verify:.2f} s / {backfill:.2f} s; goal ≤ 0.10: "
                     f"{'MET' if rv <= 0.10 else 'NOT MET'})")
        other = [s for s in runs["pacer_other"] if s["rc"] == 0 and s.get("unfilled") == 0]
        if other and ok:
            other_whole = median([s["wall_s"] for s in other if s.get("wall_s")])
            self.out(f"   RESULT 1c  this pacer ÷ --compare-bin pacer: backfill {r2(ratio(med['pacer_full'], med['pacer_other']))} "
                     f"({fmt_int(med['pacer_full'] or 0)} / {fmt_int(med['pacer_other'] or 0)} rows/s), whole run "
                     f"{r2(other_whole / whole) if other_whole and whole else 'n/a'} ({other_whole or 0:.2f} s / "
                     f"{whole or 0:.2f} s, > 1: this one is faster); --compare-bin's whole run ÷ loop: "
                     f"{r2(loop_s / other_whole) if other_whole and loop_s else 'n/a'}")
        if med.get("pacer_10k") is not None:
            self.out(f"   extra      pacer at batch 10,000 ÷ server-side loop = "
                     f"{r2(ratio(med['pacer_10k'], med['server_loop']))}; server-side loop with pacer's trigger ÷ "
                     f"without = {r2(ratio(med['server_loop_trigger'], med['server_loop']))}; pacer at 10,000 ÷ "
                     f"loop with trigger = {r2(ratio(med['pacer_10k'], med['server_loop_trigger']))}")
        self.out()

    # -- 2. foreground impact ------------------------------------------------------------------

    def pgbench(self, db: str, rid: str, cap_s: float):
        prefix = self.files / f"{rid}-pgbench"
        a = self.a
        cmd = [str(PGBIN / "pgbench"), "-n", "-f", str(self.files / "pgbench.sql"), "-R", str(a.rate),
               "-c", str(a.clients), "-j", str(a.threads), "-T", str(int(cap_s)),
               "--log", f"--log-prefix={prefix}", self.pg.url(db)]
        out = open(self.files / f"{rid}-pgbench.out", "w")
        p = CLEANUP.proc(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.files))
        return p, prefix, out

    @staticmethod
    def pgbench_latencies(prefix: Path):
        """(scheduled start, latency ms) of every logged transaction; counts of failed/skipped."""
        txs, bad = [], 0
        for f in prefix.parent.glob(prefix.name + ".*"):
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) < 6:
                    continue  # a line cut short when pgbench was stopped
                try:
                    end = int(parts[4]) + int(parts[5]) / 1e6
                    lat_us = float(parts[2])
                except ValueError:
                    bad += 1  # "skipped" / "failed"
                    continue
                txs.append((end - lat_us / 1e6, lat_us / 1000))
        return txs, bad

    def item2_run(self, method: str, r: int) -> dict:
        db = "fg"
        self.pg.fresh_db(db)
        if method == "update":
            self.pg.psql(db, "ALTER TABLE orders ADD COLUMN amount numeric(14,2)")
        rid = self.next_id(f"fg-{method.replace(':', '-')}")
        p, prefix, out = self.pgbench(db, rid, cap_s=self.run_timeout())
        waits: list = []
        stop_waits = threading.Event()
        profiler = None
        if self.a.wait_profile:
            profiler = threading.Thread(target=self.wait_profile, args=(db, stop_waits, waits), daemon=True)
        try:
            time.sleep(self.a.warmup)
            if profiler:
                profiler.start()
            info: dict = {}
            if method == "baseline":
                t0 = time.time()
                time.sleep(self.a.baseline_secs)
                t1 = time.time()
            elif method.startswith("pacer"):
                s = self.pacer_run(db, "defaults" if method == "pacer" else method, f"fg-{method}")
                info = s
                t0, t1 = s["backfill_window"] or s["window"]
                info["unfilled"] = self.check_filled(db)
            else:
                t0 = time.time()
                self.pg.psql(db, "UPDATE orders SET amount = amount_cents / 100.0")
                t1 = time.time()
                info = {"rows": self.rows, "backfill_s": t1 - t0, "rows_per_s": self.rows / (t1 - t0), "rc": 0}
            time.sleep(2.0)  # pgbench writes its log through a buffer: let the window's lines land
            alive = p.poll() is None
        finally:
            stop_waits.set()
            if profiler:
                profiler.join(timeout=10)
            if p.poll() is None:
                p.terminate()  # our own child (SIGTERM: SIGINT may be ignored when run under nohup/&)
            p.wait(timeout=30)
            out.close()
        txs, bad = self.pgbench_latencies(prefix)
        lat = [l for (s, l) in txs if t0 <= s < t1]
        res = {"method": method, "repeat": r + 1, "window_s": t1 - t0, "n": len(lat), "bad": bad,
               "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else None,
               "pgbench_alive": alive, **{k: v for k, v in info.items() if k not in ("window", "backfill_window")}}
        if profiler:
            counts: dict = {}
            for (t, ev) in waits:
                if t0 <= t < t1:
                    counts[ev] = counts.get(ev, 0) + 1
            res["waits"] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
            log(f"  waits of active pgbench sessions ({sum(counts.values())} samples): "
                + ", ".join(f"{k} {v}" for k, v in list(res["waits"].items())[:8]))
        if method.startswith("pacer"):
            w0, w1 = info["window"]
            whole = [l for (s, l) in txs if w0 <= s < w1]
            res["whole_run_p99"] = pct(whole, 99)
            res["whole_run_p50"] = pct(whole, 50)
        if not alive:
            log(f"  pgbench ended before the window did: {(self.files / f'{rid}-pgbench.out').read_text()[-500:]}")
        self.pg.drop_db(db)
        return res

    def wait_profile(self, db: str, stop: threading.Event, out: list):
        """Samples what pgbench's active sessions wait on, every few ms (CPU: running or runnable)."""
        s = Session(self.pg.url(db), self.files / "session.err")
        try:
            while not stop.is_set():
                t = time.time()
                for row in s.query("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') "
                                   "FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active'"):
                    if row and row[0]:
                        out.append((t, row[0]))
                stop.wait(0.002)
        finally:
            s.close()

    def item2(self):
        log("2. foreground impact")
        methods = ["baseline", "pacer", "update"]
        variants = {}
        for i, v in enumerate(self.a.fg_variant, 1):  # extra pacer settings, e.g. target_batch_ms=50,pause_ms=20
            name = f"pacer:{i}"
            pairs = [kv.strip() for kv in v.split(",") if kv.strip()]
            lines = [kv.replace("=", " = ", 1) for kv in pairs if not kv.startswith(("pg.", "throttle."))]
            throttle = [kv[len("throttle."):].replace("=", " = ", 1) for kv in pairs if kv.startswith("throttle.")]
            self.session_options[name] = " ".join(f"-c {kv[3:]}" for kv in pairs if kv.startswith("pg."))
            path = self.files / f"fg-variant-{i}.toml"
            path.write_text(PLAN_HEAD + "\n[backfill]\n" + "\n".join(lines) + "\n"
                            + ("[throttle]\n" + "\n".join(throttle) + "\n" if throttle else ""))
            self.plans[name] = path
            variants[name] = v
            methods.append(name)
        runs = {m: [] for m in methods}
        for r in range(self.a.repeats):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for m in order:
                res = self.item2_run(m, r)
                runs[m].append(res)
                self.results["runs"].append({"item": 2, **res})
                log(f"  repeat {r + 1} {m}: p50 {ms(res['p50'])} p99 {ms(res['p99'])} max {ms(res['max'])} "
                    f"n={res['n']} over {res['window_s']:.1f} s"
                    + (f"; pacer {fmt_int(res['rows_per_s'] or 0)} rows/s" if m.startswith("pacer") else ""))
        a = self.a
        self.out(f"2. Foreground impact: pgbench -R {a.rate} -c {a.clients} -j {a.threads} (\\set id random; point "
                 f"SELECT; UPDATE status), latency from the scheduled start, transactions scheduled while "
                 f"the method ran")
        names = {"baseline": f"no migration ({a.baseline_secs:.0f} s)",
                 "pacer": "during pacer's backfill, default settings",
                 "update": "during one whole-table UPDATE",
                 **{k: f"during pacer's backfill with {v.replace(',', ', ')}" for k, v in variants.items()}}
        med = {}
        for m in methods:
            med[m] = {k: median([x[k] for x in runs[m]]) for k in ("p50", "p99", "max")}
            each = "; ".join(
                f"p50 {ms(x['p50'])} p99 {ms(x['p99'])} max {ms(x['max'])} (n={x['n']:,}, {x['window_s']:.1f} s"
                + (f", {fmt_int(x['rows_per_s'] or 0)} rows/s, batch p50 {ms(x.get('batch_ms_p50'))}, "
                   f"whole-run p99 {ms(x.get('whole_run_p99'))}" if m.startswith("pacer") else "")
                + (f", {x['bad']} failed/skipped" if x["bad"] else "") + ")"
                for x in runs[m])
            self.out(f"   {names[m]}: median p50 {ms(med[m]['p50'])}, p99 {ms(med[m]['p99'])}; runs {each}")
            for x in runs[m]:
                if "waits" in x:
                    total = sum(x["waits"].values()) or 1
                    self.out(f"      repeat {x['repeat']}: what pgbench's active sessions waited on ({total} samples): "
                             + ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in list(x["waits"].items())[:6]))
        rp = ratio(med["pacer"]["p99"], med["baseline"]["p99"])
        ru = ratio(med["update"]["p99"], med["baseline"]["p99"])
        speed = median([x.get("rows_per_s") for x in runs["pacer"]])
        full = self.item1_median.get("pacer_full") if hasattr(self, "item1_median") else None
        rs = ratio(speed, full)
        self.out(f"   RESULT 2a  p99 during pacer ÷ baseline = {r2(rp)} ({ms(med['pacer']['p99'])} / "
                 f"{ms(med['baseline']['p99'])}); goal ≤ 1.5: {'MET' if rp and rp <= 1.5 else 'NOT MET'}")
        self.out(f"   RESULT 2b  pacer's speed under load ÷ full speed = {r2(rs)} ({fmt_int(speed or 0)} / "
                 f"{fmt_int(full or 0)} rows/s, full speed from 1.); goal ≥ 0.5: "
                 f"{'MET' if rs and rs >= 0.5 else ('NOT MET' if rs else 'n/a')}")
        self.out(f"   RESULT 2c  p99 during the whole-table UPDATE ÷ baseline = {r2(ru)} ({ms(med['update']['p99'])} / "
                 f"{ms(med['baseline']['p99'])})")
        for k, v in variants.items():
            vp = ratio(med[k]["p99"], med["baseline"]["p99"])
            vs = median([x.get("rows_per_s") for x in runs[k]])
            self.out(f"   extra      with {v}: p99 ÷ baseline = {r2(vp)} ({ms(med[k]['p99'])}), speed ÷ full speed = "
                     f"{r2(ratio(vs, full))} ({fmt_int(vs or 0)} rows/s)")
        self.item2_runs = runs
        self.out()

    # -- 3. pause latency ----------------------------------------------------------------------

    def item3(self):
        log("3. pause latency")
        db = "pause"
        self.pg.fresh_db(db)
        rid = self.next_id("pause")
        pr = PacerRun(self.pacer, self.plans["defaults"], self.pg.url(db), self.files / f"{rid}.jsonl")
        rng = random.Random(42)
        pauses = []
        sess = Session(self.pg.url(db), self.files / "session.err")
        try:
            first = pr.wait_event(lambda e: e.get("event") == "batch_done", timeout=120)
            idx = first[0] if first else 0
            for i in range(self.a.pauses):
                time.sleep(rng.uniform(0.1, 0.4))
                if pr.wait_event(lambda e: e.get("event") == "phase_done" and e.get("phase") == "backfill",
                                 timeout=0) or pr.proc.poll() is not None:
                    break
                t_sig = time.time()
                os.kill(pr.pid, signal.SIGUSR1)  # our own child
                got = pr.wait_event(lambda e: e.get("event") in ("paused",) or
                                    (e.get("event") == "phase_done" and e.get("phase") == "backfill"),
                                    start_index=idx, timeout=60)
                if not got or got[2].get("event") != "paused":
                    os.kill(pr.pid, signal.SIGUSR2)
                    break
                pidx, p_arr, pev = got
                last = None
                for j in range(pidx - 1, idx - 1, -1):
                    if pr.events[j][1].get("event") == "batch_done":
                        last = pr.events[j]
                        break
                # Nothing may move while paused: pacer's checkpoint row, twice 300 ms apart.
                done1 = sess.query("SELECT rows_done FROM pacer.migrations")
                time.sleep(self.a.pause_hold)
                done2 = sess.query("SELECT rows_done FROM pacer.migrations")
                moved = [e for _, e in pr.events[pidx + 1:] if e.get("event") == "batch_done"]
                t_res = time.time()
                os.kill(pr.pid, signal.SIGUSR2)
                res = pr.wait_event(lambda e: e.get("event") == "resumed", start_index=pidx, timeout=60)
                idx = res[0] + 1 if res else len(pr.events)
                if last is None:
                    continue
                at, lev = last
                pauses.append({
                    "to_last_change_ms": (ts_epoch(lev["ts"]) - t_sig) * 1000,
                    "to_paused_ms": (ts_epoch(pev["ts"]) - t_sig) * 1000,
                    "to_paused_arrival_ms": (p_arr - t_sig) * 1000,
                    "batch_ms": lev["duration_ms"],
                    "batch_size": lev.get("batch_size"),
                    "moved_while_paused": len(moved) + (0 if done1 == done2 else 1),
                    "resume_ms": ((res[1] - t_res) * 1000) if res else None,
                })
            # Enough pauses: stop the run at the next batch boundary (SIGTERM: aborted, exit 3).
            if pr.proc.poll() is None:
                os.kill(pr.pid, signal.SIGTERM)  # our own child
            rc = pr.wait(self.run_timeout())
        finally:
            sess.close()
            if pr.rc is None:
                pr.proc.kill()
                pr.wait(10)
        s = pr.summary()
        self.pg.drop_db(db)
        self.results["runs"].append({"item": 3, "pauses": pauses, **{k: v for k, v in s.items()
                                                                      if k not in ("window", "backfill_window")}})
        self.out(f"3. Pause latency: {len(pauses)} SIGUSR1 pauses (each held {self.a.pause_hold:.1f} s, then SIGUSR2) "
                 f"during one backfill with default settings, which is then stopped (SIGTERM, pacer exit {rc})")
        if not pauses:
            self.out("   RESULT 3   no pause was measured")
            self.out()
            return
        lat = [p["to_last_change_ms"] for p in pauses]
        tp = [p["to_paused_ms"] for p in pauses]
        bms = [p["batch_ms"] for p in pauses]
        within = sum(1 for p in pauses if p["to_last_change_ms"] <= p["batch_ms"] + 1)
        moved = sum(p["moved_while_paused"] for p in pauses)
        self.out("   signal → last row change (ms, ≤ 0: no batch was running): "
                 + " ".join(f"{x:.0f}" for x in lat))
        self.out("   duration of that last batch (ms):                          "
                 + " ".join(f"{x:.0f}" for x in bms))
        self.out(f"   signal → last row change: median {ms(median(lat))}, max {ms(max(lat))}; signal → `paused` "
                 f"event: median {ms(median(tp))}, max {ms(max(tp))}; batch duration in this run: p50 "
                 f"{ms(s['batch_ms_p50'])}, p95 {ms(s['batch_ms_p95'])}, max {ms(s['batch_ms_max'])}")
        self.out(f"   row changes seen while paused: {moved}")
        worst = max(pauses, key=lambda p: p["to_last_change_ms"] - p["batch_ms"])
        self.out(f"   RESULT 3   max signal → last row change = {ms(max(lat))}, {within}/{len(pauses)} pauses within the "
                 f"running batch's duration (worst: {worst['to_last_change_ms']:.0f} ms vs a "
                 f"{worst['batch_ms']} ms batch; max ÷ batch p50 = {r2(ratio(max(lat), s['batch_ms_p50']))}); goal ≤ one "
                 f"batch duration: {'MET' if within == len(pauses) and moved == 0 else 'NOT MET'}")
        self.out()

    # -- 4. lag held ---------------------------------------------------------------------------

    def start_replica(self):
        log("4. starting a streaming replica (pg_basebackup)")
        rep = PgServer(self.work, "replica", fsync=self.a.fsync)
        run(as_postgres([str(PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres",
                         "-D", str(rep.data), "-R", "-X", "stream", "-c", "fast"]))
        # The primary's replay_lag (what pacer reads) is only as fresh as the replica's reports:
        # every 10 s by default; 1 s here unless --replica-status-interval says otherwise.
        with open(rep.data / "postgresql.auto.conf", "a") as f:
            f.write(f"wal_receiver_status_interval = '{self.a.replica_status_interval}'\nhot_standby = on\n")
        rep.start()
        self.replica = rep
        for _ in range(300):
            if self.pg.psql("postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1":
                return
            time.sleep(0.1)
        raise RuntimeError("the replica did not start streaming")

    def wait_caught_up(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            cur = self.pg.psql("postgres", "SELECT pg_current_wal_lsn()")
            if self.replica.psql("postgres", f"SELECT pg_last_wal_replay_lsn() >= '{cur}'") == "t":
                return
            time.sleep(0.2)
        raise RuntimeError("the replica did not catch up")

    def lag_monitor(self, stop: threading.Event, samples: list):
        """Every 100 ms: the primary's WAL position and its view of the replica (replay_lag, bytes),
        then the replica's replay position."""
        p = Session(self.pg.url(), self.files / "session.err")
        r = Session(self.replica.url(), self.files / "session.err")
        try:
            while not stop.is_set():
                t = time.time()
                row = p.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
                              "(SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication LIMIT 1), "
                              "(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                              "FROM pg_stat_replication LIMIT 1)")[0]
                rrow = r.query("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint")[0]
                samples.append((t, int(row[0]), float(row[1]) if row[1] else None,
                                int(row[2]) if row[2] else None, time.time(), int(rrow[0])))
                stop.wait(0.1)
        finally:
            p.close()
            r.close()

    def replay_slower(self, stop: threading.Event):
        """Replay runs `on` ms of every 100 ms: pg_wal_replay_pause()/pg_wal_replay_resume()."""
        s = Session(self.replica.url(), self.files / "session.err")
        on = self.a.replay_duty * 0.1
        try:
            while not stop.is_set():
                s.query("SELECT pg_wal_replay_resume()")
                time.sleep(on)
                s.query("SELECT pg_wal_replay_pause()")
                stop.wait(0.1 - on)
        finally:
            s.query("SELECT pg_wal_replay_resume()")
            s.close()

    @staticmethod
    def lag_from_positions(samples):
        """Replay lag in seconds at each sample, from positions alone: now minus the time the
        primary had written the WAL the replica has just replayed (linear between samples)."""
        out = []
        prim = [(s[0], s[1]) for s in samples]
        for k, s in enumerate(samples):
            t_r, replayed = s[4], s[5]
            if replayed >= prim[k][1]:
                out.append(0.0)
                continue
            j = k
            while j > 0 and prim[j - 1][1] > replayed:
                j -= 1
            if j == 0:
                out.append(t_r - prim[0][0])  # at least this old
                continue
            (ta, la), (tb, lb) = prim[j - 1], prim[j]
            tw = ta + (tb - ta) * (replayed - la) / (lb - la) if lb > la else tb
            out.append(max(0.0, t_r - tw))
        return out

    def item4_run(self, variant: str, r: int) -> dict:
        db = "lag"
        self.pg.fresh_db(db)
        self.wait_caught_up()
        stop = threading.Event()
        samples: list = []
        slow = threading.Thread(target=self.replay_slower, args=(stop,), daemon=True)
        mon = threading.Thread(target=self.lag_monitor, args=(stop, samples), daemon=True)
        slow.start()
        mon.start()
        try:
            rid = self.next_id(f"lag-{variant}")
            pr = PacerRun(self.pacer, self.plans[variant if variant.startswith("throttled") else "defaults"],
                          self.pg.url(db), self.files / f"{rid}.jsonl")
            cap = self.a.lag_rows
            if cap and cap < self.rows:
                if pr.wait_event(lambda e: e.get("event") == "batch_done" and e["rows_done"] >= cap,
                                 timeout=self.run_timeout()) and pr.proc.poll() is None:
                    os.kill(pr.pid, signal.SIGTERM)  # our own child: stops at the batch boundary
            pr.wait(self.run_timeout())
            s = pr.summary()
        finally:
            stop.set()
            slow.join(10)
            mon.join(10)
        w0, w1 = s["backfill_window"] or s["window"]
        lags = self.lag_from_positions(samples)
        with open(self.files / f"{self.seq:02d}-lag-{variant}.tsv", "w") as f:
            f.write("t\tprimary_lsn\treplay_lag_s\tlag_bytes\tt_replica\treplayed_lsn\tlag_s\n")
            for smp, lg in zip(samples, lags):
                f.write("\t".join("" if v is None else str(v) for v in (*smp, round(lg, 3))) + "\n")
        inwin = [(smp, lg) for smp, lg in zip(samples, lags) if w0 <= smp[0] <= w1]
        res = {
            "variant": variant, "repeat": r + 1,
            "max_lag_s": max((lg for _, lg in inwin), default=None),
            "p50_lag_s": pct([lg for _, lg in inwin], 50),
            "above_1s": (sum(1 for _, lg in inwin if lg > 1.0) / len(inwin)) if inwin else None,
            "max_replay_lag_s": max((smp[2] for smp, _ in inwin if smp[2] is not None), default=None),
            "max_lag_bytes": max((smp[3] for smp, _ in inwin if smp[3] is not None), default=None),
            "samples": len(inwin),
            **{k: v for k, v in s.items() if k not in ("window", "backfill_window")},
        }
        t = time.time()
        self.wait_caught_up()
        res["catch_up_s"] = time.time() - t
        self.pg.drop_db(db)
        return res

    def item4(self):
        cap = self.a.lag_rows if self.a.lag_rows and self.a.lag_rows < self.rows else self.rows
        self.out(f"4. Lag held: a streaming replica whose replay runs {self.a.replay_duty * 100:.0f} ms of every 100 ms "
                 f"(pg_wal_replay_pause/resume duty cycle; wal_receiver_status_interval = {self.a.replica_status_interval}); replay lag "
                 f"(now − when the primary wrote the WAL just replayed, sampled every 100 ms) during the backfill "
                 + (f"of the first {cap:,} rows (default settings; the run is then stopped)" if cap < self.rows
                    else f"of all {cap:,} rows (default settings)"))
        self.start_replica()
        variants = ["unthrottled"] + (["throttled"] if self.throttle_supported else [])
        names = {"unthrottled": "no throttle", "throttled": 'max_replication_lag = "1s"'}
        for i, v in enumerate(self.a.lag_variant if self.throttle_supported else [], 1):
            name = f"throttled:{i}"  # extra [throttle] settings, e.g. resume_after="500ms"
            lines = [kv.strip().replace("=", " = ", 1) for kv in v.split(",") if kv.strip()]
            path = self.files / f"lag-variant-{i}.toml"
            path.write_text(PLANS["throttled"] + "\n".join(lines) + "\n")
            self.plans[name] = path
            names[name] = f'max_replication_lag = "1s", {v.replace(",", ", ")}'
            variants.append(name)
        runs = {v: [] for v in variants}
        for r in range(self.a.lag_repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                res = self.item4_run(v, r)
                runs[v].append(res)
                self.results["runs"].append({"item": 4, **res})
                log(f"  repeat {r + 1} {v}: max lag {res['max_lag_s'] or 0:.2f} s (primary's replay_lag max "
                    f"{res['max_replay_lag_s'] or 0:.2f} s), {fmt_int(res['rows_per_s'] or 0)} rows/s, rc={res['rc']}")
        med = {}
        for v in variants:
            med[v] = median([x["max_lag_s"] for x in runs[v]])
            each = "; ".join(
                f"max {x['max_lag_s'] or 0:.2f} s, p50 {x['p50_lag_s'] or 0:.2f} s, over 1 s "
                f"{100 * (x['above_1s'] or 0):.0f} % of the time, primary's replay_lag max "
                f"{x['max_replay_lag_s'] or 0:.2f} s, {(x['max_lag_bytes'] or 0) / 1e6:.0f} MB behind at most, "
                f"{fmt_int(x['rows_per_s'] or 0)} rows/s over {x['backfill_s'] or 0:.1f} s, caught up "
                f"{x['catch_up_s']:.1f} s after the run"
                + (f", throttled {x['throttled_n']}× for {x['throttled_ms'] / 1000:.1f} s" if x["throttled_n"] else "")
                + f", rc={x['rc']}"
                for x in runs[v])
            self.out(f"   {names[v]}: median of max lag {med[v] or 0:.2f} s; runs {each}")
        if self.throttle_supported:
            rt = ratio(med["throttled"], med["unthrottled"])
            self.out(f"   RESULT 4   highest replay lag with max_replication_lag = 1s: {med['throttled'] or 0:.2f} s vs "
                     f"{med['unthrottled'] or 0:.2f} s without (ratio {r2(rt)})")
            for v in variants[2:]:
                self.out(f"   extra      with {names[v]}: highest replay lag {med[v] or 0:.2f} s, "
                         f"{fmt_int(median([x['rows_per_s'] for x in runs[v]]) or 0)} rows/s")
        else:
            self.out(f"   RESULT 4   highest replay lag without throttle: {med['unthrottled'] or 0:.2f} s; with "
                     f"max_replication_lag = 1s: not available in this pacer build ({self.throttle_probe_msg})")
        self.item4_runs = runs
        self.out()

    # -- 5. pacer's own cost -------------------------------------------------------------------

    def tui_run(self) -> dict | None:
        if not shutil.which("tmux"):
            return None
        db = "tui"
        self.pg.fresh_db(db)
        sock = f"pacer-backfill-{os.getpid()}"
        pidfile = self.files / "tui.pid"
        tty = self.files / "tui.bytes"
        inner = (f"echo $$ > {shlex.quote(str(pidfile))}; exec {shlex.quote(str(self.pacer))} run "
                 f"{shlex.quote(str(self.plans['full_speed']))} --target {shlex.quote(self.pg.url(db))}")
        CLEANUP.actions.append(lambda: run(["tmux", "-L", sock, "kill-server"], check=False))
        t0 = time.time()
        run(["tmux", "-L", sock, "new-session", "-d", "-s", "b", "-x", "160", "-y", "48",
             f"sh -c {shlex.quote(inner)}; sleep 30"])
        run(["tmux", "-L", sock, "pipe-pane", "-o", "-t", "b", f"cat > {shlex.quote(str(tty))}"])
        pid = None
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                pid = int(pidfile.read_text())
                break
            time.sleep(0.05)
        clk = os.sysconf("SC_CLK_TCK")
        # On a terminal `pacer run` is the screen; it starts the runner (`run … --runner`, its
        # child in a session of its own), which does the migration. Both are measured.
        runner = None
        for _ in range(100):
            runner = next((c for c in children(pid) if "--runner" in cmdline(c)), None) if pid else None
            if runner:
                break
            time.sleep(0.05)
        ticks = {"screen": 0, "runner": 0}
        hwm = {"screen": 0, "runner": 0}
        done_at, ok = None, False
        deadline = time.time() + self.run_timeout()
        while pid and time.time() < deadline:
            alive = False
            for name, p in (("screen", pid), ("runner", runner)):
                if p is None:
                    continue
                try:
                    st = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                    ticks[name] = int(st[11]) + int(st[12])
                    m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
                    hwm[name] = max(hwm[name], int(m.group(1))) if m else hwm[name]
                    alive = alive or name == "screen"
                except (OSError, IndexError):
                    pass  # gone: keep its last reading
            if not alive:
                break
            if done_at is None:
                screen = run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "b"], check=False).stdout
                if " DONE " in screen or "FAILED" in screen:
                    done_at = time.time()
                    ok = " DONE " in screen
                    run(["tmux", "-L", sock, "send-keys", "-t", "b", "q"], check=False)
            time.sleep(0.2)
        t1 = done_at or time.time()
        run(["tmux", "-L", sock, "kill-server"], check=False)
        unfilled = self.check_filled(db)
        self.pg.drop_db(db)
        cpu = (ticks["screen"] + ticks["runner"]) / clk
        return {"wall_s": t1 - t0, "cpu_s": cpu, "cpu_pct": 100 * cpu / (t1 - t0),
                "screen_cpu_s": ticks["screen"] / clk, "runner_cpu_s": ticks["runner"] / clk,
                "runner_found": runner is not None,
                "maxrss_kib": hwm["screen"] + hwm["runner"], "screen_maxrss_kib": hwm["screen"],
                "runner_maxrss_kib": hwm["runner"],
                "tty_bytes": tty.stat().st_size if tty.exists() else 0, "done": bool(done_at) and ok,
                "unfilled": unfilled}

    def item5(self):
        log("5. pacer's own cost")
        self.out("5. pacer's own cost (whole run: preflight … cleanup; CPU = user + system time of the pacer process)")
        head = []
        for m, label in (("pacer_full", "headless, full speed (runs of 1.)"),
                         ("pacer_10k", "headless, batch 10,000 (runs of 1.)")):
            for s in getattr(self, "item1_runs", {}).get(m, []):
                head.append((label, s))
        for x in getattr(self, "item2_runs", {}).get("pacer", []):
            head.append(("headless, defaults, under pgbench (runs of 2.)", x))
        lines = {}
        for label, s in head:
            lines.setdefault(label, []).append(s)
        for label, ss in lines.items():
            self.out(f"   {label}: " + "; ".join(
                f"{s['cpu_pct']:.1f} % of one core over {s['wall_s']:.1f} s ({s['cpu_s']:.2f} s CPU, "
                f"{s['cpu_s'] / max(1, s['rows']) * 1e6:.2f} s per million rows), peak RSS "
                f"{s['maxrss_kib'] / 1024:.1f} MiB" for s in ss if s.get("cpu_s") is not None))
        tui = None
        if self.a.tui:
            tui = self.tui_run()
        if tui:
            self.results["runs"].append({"item": 5, "mode": "tui", **tui})
            self.out(f"   full-screen interface in a 160x48 tmux pane, full speed: {tui['cpu_pct']:.1f} % of one core over "
                     f"{tui['wall_s']:.1f} s ({tui['cpu_s']:.2f} s CPU: runner {tui['runner_cpu_s']:.2f} s + screen "
                     f"{tui['screen_cpu_s']:.2f} s"
                     + ("" if tui["runner_found"] else " (NO RUNNER PROCESS FOUND)")
                     + f"; {tui['cpu_s'] / self.rows * 1e6:.2f} s per "
                     f"million rows), peak RSS {tui['maxrss_kib'] / 1024:.1f} MiB (runner "
                     f"{tui['runner_maxrss_kib'] / 1024:.1f} + screen {tui['screen_maxrss_kib'] / 1024:.1f}), "
                     f"{tui['tty_bytes'] / max(0.1, tui['wall_s']) / 1024:.1f} KiB/s to the terminal"
                     + ("" if tui["done"] and tui["unfilled"] == 0 else " (DID NOT FINISH CLEANLY)"))
            hs = [s for s in lines.get("headless, full speed (runs of 1.)", []) if s.get("cpu_s") is not None]
            if hs:
                hcpu = median([s["cpu_s"] for s in hs])
                hrss = median([s["maxrss_kib"] for s in hs])
                self.out(f"   RESULT 5   pacer per million rows: headless {hcpu / self.rows * 1e6:.2f} s CPU, TUI "
                         f"{tui['cpu_s'] / self.rows * 1e6:.2f} s CPU (ratio {r2(ratio(tui['cpu_s'], hcpu))}); peak RSS "
                         f"headless {hrss / 1024:.1f} MiB, TUI {tui['maxrss_kib'] / 1024:.1f} MiB "
                         f"(the interface's cost at a paced backfill: BENCHMARKS.md, bench/tui_cost.sh)")
        else:
            self.out("   TUI: not measured in this run (add --tui; at a paced backfill: BENCHMARKS.md, "
                     "bench/tui_cost.sh)")
        self.out()

    # -- all -----------------------------------------------------------------------------------

    def main(self):
        t = time.time()
        self.setup()
        self.header()
        only = set(self.a.only.split(","))
        if "1" in only:
            self.item1()
        if "2" in only:
            self.item2()
        if "3" in only:
            self.item3()
        if "5" in only:
            self.item5()
        if "4" in only:  # last: the replica would slow everything else down
            self.item4()
        self.out(f"total harness time {time.time() - t:.0f} s (seeding included; build excluded); "
                 f"load average at the end {os.getloadavg()[0]:.2f}")
        self.save()

    def save(self):
        res_dir = REPO / "bench" / "results"
        res_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
        if (res_dir / f"backfill-{stamp}.txt").exists():
            stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")  # two runs in one minute
        path = res_dir / f"backfill-{stamp}.txt"
        path.write_text("\n".join(self.report) + "\n")
        (res_dir / f"backfill-{stamp}.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        log(f"report written to {path.relative_to(REPO)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows in orders (default 2,000,000)")
    ap.add_argument("--repeats", type=int, default=2, help="repeats of every method (default 2)")
    ap.add_argument("--only", default="1,2,3,4,5", help="items to run, e.g. 1,3 (default all)")
    ap.add_argument("--compare-bin", metavar="PATH",
                    help="1.: also run this other pacer binary (e.g. main before a change), interleaved with "
                         "PACER_BIN's runs, and report the ratio of the two (RESULT 1c)")
    ap.add_argument("--loop-batch", type=int, default=10_000, help="rows per batch of the hand-written loops")
    ap.add_argument("--extras", action="store_true",
                    help="1.: also pacer at a fixed batch of 10,000 and the loop with pacer's sync trigger installed")
    ap.add_argument("--lag-variant", action="append", default=[], metavar="KEY=VAL[,KEY=VAL]",
                    help='4.: also run with max_replication_lag = "1s" and these [throttle] settings, '
                         'e.g. resume_after="500ms"')
    ap.add_argument("--cold-wal", action="store_true",
                    help="do not fill the WAL segments first (min_wal_size stays 80MB): the first heavy "
                         "writer then creates them, and every commit waits while it does")
    ap.add_argument("--fsync", choices=["on", "off"], default="off",
                    help="the servers' fsync (default off: the disk's flush time is then not measured; "
                         "on: commits wait for the disk, as on a production server)")
    ap.add_argument("--wait-profile", action="store_true",
                    help="2.: sample what pgbench's active sessions wait on (pg_stat_activity) every ~3 ms")
    ap.add_argument("--rate", type=int, default=400, help="pgbench transactions per second (default 400)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of pgbench before a method starts")
    ap.add_argument("--baseline-secs", type=float, default=10.0, help="length of the no-migration window")
    ap.add_argument("--pauses", type=int, default=20, help="pauses in 3.")
    ap.add_argument("--pause-hold", type=float, default=0.3, help="seconds each pause is held")
    ap.add_argument("--replay-duty", type=float, default=0.15,
                    help="4.: fraction of each 100 ms the replica replays (default 0.15)")
    ap.add_argument("--replica-status-interval", default="1s",
                    help="4.: the replica's wal_receiver_status_interval (PostgreSQL's default is 10s)")
    ap.add_argument("--lag-repeats", type=int, default=1,
                    help="4.: repeats of the lag runs (default 1: the throttled run waits for the slow replica)")
    ap.add_argument("--tui", action="store_true",
                    help="5.: also run the full-screen interface in a tmux pane (one more full backfill, ~25 s)")
    ap.add_argument("--fg-variant", action="append", default=[], metavar="KEY=VAL[,KEY=VAL]",
                    help="2.: also measure pacer with these [backfill] settings, e.g. target_batch_ms=50,pause_ms=20; "
                         "pg.NAME=VALUE sets a server setting in pacer's sessions (e.g. pg.synchronous_commit=off); "
                         "throttle.KEY=VALUE goes to [throttle] (e.g. 'throttle.max_foreground_impact=\"off\"')")
    ap.add_argument("--no-secondary-index", action="store_true",
                    help="drop orders_customer_idx from the seeded table (every update is then cheaper)")
    ap.add_argument("--lag-rows", type=int, default=0,
                    help="4.: stop each lag run after this many rows (default 0: the whole table)")
    ap.add_argument("--item1-methods", default="", metavar="M[,M]",
                    help="1.: run only these methods (pacer_full, server_loop, in_limit, pacer_10k, server_loop_trigger); "
                         "the ratios of a method left out read n/a")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (servers are stopped)")
    args = ap.parse_args()

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    bench = None
    try:
        bench = Bench(args)
        bench.main()
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        sys.exit(130)
    finally:
        CLEANUP.run()


if __name__ == "__main__":
    main()
