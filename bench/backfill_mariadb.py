#!/usr/bin/env python3
"""Backfill benchmark on MariaDB: pacer against a hand-written loop, pt-online-schema-change,
a fixed-rate foreground workload and a GTID replica's heartbeat lag.

    python3 bench/backfill_mariadb.py [--rows 2000000] [--repeats 2] [--only 1,2,3,4] [--keep]
                                      [--extras] [--replica-duty F] [--rate 400] …
    (--help lists every option; the default run takes ~7-8 minutes on 2 cores)

Python 3.11 standard library only (it reuses bench/backfill.py's helpers); it shells out to the
MariaDB server binaries (mariadb-install-db, /usr/sbin/mariadbd, the mariadb client), to
pt-online-schema-change when installed (Debian: percona-toolkit) and to pacer ($PACER_BIN, else
target/release/pacer, built with `cargo build --release` when missing).

It starts its own throwaway MariaDB primary and a GTID replica of it (a temporary directory
owned by the `mysql` OS user when run as root, free ports on 127.0.0.1, `--no-defaults`, binlog
ROW, innodb_flush_log_at_trx_commit=2, everything else at the server's defaults), seeds
`orders` (id bigint auto_increment primary key, amount_cents bigint, note varchar(40),
created_at datetime(6)) once in `seed` (replicated), and gives every run a fresh copy of it:
the seed's tablespace file copied and imported (FLUSH TABLES … FOR EXPORT, DISCARD/IMPORT
TABLESPACE, not binlogged). The throughput and foreground copies live in databases `scratchNN`
that the replica ignores (--replicate-wild-ignore-table), so it receives but does not apply
those runs; the lag runs' copies (`lagNN`) are imported on both servers and replicated.

  1. Throughput: pacer's backfill rows/s (`pacer run --headless --json`, defaults but the
     foreground guard off: no throttle, pause 0; backfill phase only) ÷ a stored-procedure loop of 10k-row keyset ranges
     (`SELECT id … LIMIT 9999, 1`, `UPDATE … WHERE id > lo AND id <= hi AND amount IS NULL`,
     COMMIT each), each on a fresh copy; interleaved, repeated, medians. With --extras also pacer
     at a fixed batch_size = 10000 (the loop's batch) and the loop with pacer's sync triggers
     installed (what the triggers cost every row of a batch).
  2. Foreground: a fixed-rate workload (Python threads, each with its own `mariadb` client
     session; Poisson arrivals at --rate in total; each transaction an UPDATE of `note` and a
     point SELECT by a random id, autocommit), latency measured from each transaction's
     scheduled start (queueing counts). p50/p99/max of the transactions scheduled in the
     --baseline-secs before pacer starts vs those scheduled during pacer's backfill (defaults).
  3. Replica lag: a heartbeat row updated on the primary every 100 ms (`ts = NOW(6)`) and read on
     the replica every 100 ms (lag = the replica's NOW(6) − the newest ts it has applied;
     Seconds_Behind_Master is not used). Peak lag from the start of pacer's backfill until the
     replica has caught up after it: on the replica as it is, without a throttle; and on a
     slowed replica (its mariadbd process runs --replica-duty, default 0.5, of every 100 ms:
     SIGCONT/SIGSTOP) without a throttle and with `max_replication_lag = "1s"` (reported as not
     available when this pacer build refuses the key on MySQL/MariaDB). The replica reports
     itself (--report-host), so pacer finds it through SHOW SLAVE HOSTS.
  4. pt-online-schema-change (if installed) for the same ADD COLUMN on a fresh copy: its duration
     (it cannot compute the column: the new column keeps its default, NULL), with
     --recursion-method=none (the scratch copy is not on the replica).

The report goes to stdout and to bench/results/backfill-mariadb-<date>.txt (raw numbers in
.json). Everything it started is stopped and removed at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import backfill as pg  # noqa: E402  (the PostgreSQL harness: its helpers and PacerRun)
from backfill import fmt_int, log, median, ms, pct, r2, ratio  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
CLEANUP = pg.CLEANUP
MARIADBD = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"
PLUGIN_DIR = Path("/usr/lib/mysql/plugin")
SCRATCH_IGNORE = "scratch%.%"  # the replica does not apply these databases' changes
BASE_ARGS = ["--log-bin=mysql-bin", "--binlog-format=ROW", "--innodb-flush-log-at-trx-commit=2"]


def clean_env() -> dict:
    """The environment without MYSQL*/MARIADB* variables (nothing of the caller's reaches a client)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL", "MARIADB"))}
    env["LC_ALL"] = "C"
    return env


# ----------------------------------------------------------------------------------------------
# MariaDB servers


class Mariadbd:
    """One throwaway server: its data directory in `root`, a free port on 127.0.0.1."""

    def __init__(self, root: Path, name: str, server_id: int, extra: list[str], report=False):
        self.root, self.name, self.server_id, self.extra, self.report = root, name, server_id, extra, report
        self.data = root / name
        self.log = root / f"{name}.err"
        self.socket = root / f"{name}.sock"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _user(self) -> dict:
        return {"user": "mysql", "group": "mysql"} if IS_ROOT else {}

    def install(self):
        cmd = [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
               "--skip-test-db"]
        if IS_ROOT:
            cmd.insert(2, "--user=mysql")
        env = clean_env() | {"TMPDIR": str(self.root), "HOME": str(self.root)}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.root, **self._user())
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed: {p.stdout[-1500:]}{p.stderr[-1500:]}")

    def args(self) -> list[str]:
        a = [MARIADBD, "--no-defaults"]
        if IS_ROOT:
            a.append("--user=mysql")
        a += [f"--datadir={self.data}", f"--port={self.port}", "--bind-address=127.0.0.1",
              f"--socket={self.socket}", f"--pid-file={self.data / 'mariadbd.pid'}", f"--log-error={self.log}",
              f"--server-id={self.server_id}", *BASE_ARGS, *self.extra]
        if self.report:  # listed by the primary's SHOW SLAVE HOSTS, where pacer finds its replicas
            a += ["--report-host=127.0.0.1", f"--report-port={self.port}"]
        return a

    def start(self):
        CLEANUP.actions.append(self.stop)
        for attempt in range(5):
            self.port = pg.free_port()
            env = clean_env() | {"TMPDIR": str(self.root), "HOME": str(self.root)}
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=env, cwd=self.root,
                                         start_new_session=True, **self._user())
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                p = self.client("SELECT @@datadir", check=False)
                if p.returncode == 0 and Path(p.stdout.strip()).resolve() == self.data.resolve():
                    return
                time.sleep(0.1)
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            self.kill()
            if "Address already in use" not in text:
                raise RuntimeError(f"mariadbd {self.name} did not start:\n{text[-2000:]}")
        raise RuntimeError(f"mariadbd {self.name}: no free port after 5 attempts")

    def cont(self):
        """SIGCONT, in case a ReplicaSlower left it stopped."""
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.cont()
            self.proc.kill()  # our own child, by its pid
            self.proc.wait(timeout=20)

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        self.cont()
        self.client("SHUTDOWN", check=False, timeout=30)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def base_cmd(self, db: str | None = None) -> list[str]:
        cmd = [CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root", "--batch",
               "--skip-column-names"]
        if db:
            cmd.append(f"--database={db}")
        return cmd

    def client(self, sql: str, db: str | None = None, check=True, timeout=None) -> subprocess.CompletedProcess:
        try:
            p = subprocess.run(self.base_cmd(db), input=sql, capture_output=True, text=True, env=clean_env(),
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            if check:
                raise RuntimeError(f"{self.name}: timed out: {sql[:200]}") from e
            return subprocess.CompletedProcess([], 1, "", "timeout")
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.name}: {sql[:300]!r} failed: {p.stderr.strip()[-1500:]}")
        return p

    def sql(self, sql: str, db: str | None = None) -> str:
        return self.client(sql, db).stdout.strip()

    def url(self, db: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{db}"


class Session:
    """A persistent `mariadb` client session: one request at a time; the request's last statement
    must print a row ending in __end__ (or the session appends SELECT '__end__')."""

    def __init__(self, server: Mariadbd, db: str | None, errlog: Path):
        self.err = open(errlog, "a")
        self.p = CLEANUP.proc(subprocess.Popen(
            server.base_cmd(db) + ["--unbuffered", "--force"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.err, text=True, bufsize=1, env=clean_env()))

    def request(self, sql: str, sentinel=True) -> list[str]:
        self.p.stdin.write(sql + ("\nSELECT '__end__';\n" if sentinel else "\n"))
        self.p.stdin.flush()
        rows = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("mariadb session ended")
            line = line.rstrip("\n")
            if line.endswith("__end__"):
                if line != "__end__":
                    rows.append(line)
                return rows
            rows.append(line)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()
        self.err.close()


# ----------------------------------------------------------------------------------------------
# plans, SQL

PLAN_HEAD = """table = "orders"

[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
"""
GUARD_OFF = '[throttle]\nmax_foreground_impact = "off"\n'
PLANS = {
    "defaults": PLAN_HEAD,
    # Throughput is measured at full speed: the foreground guard (on by default) off.
    "full_speed": PLAN_HEAD + "\n" + GUARD_OFF,
    "batch10k": PLAN_HEAD + "\n[backfill]\nbatch_size = 10000\npause_ms = 0\nadaptive = false\n" + GUARD_OFF,
    "throttled": PLAN_HEAD + '\n[throttle]\nmax_replication_lag = "1s"\n',
}

TABLE_SQL = ("CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount_cents bigint NOT NULL, "
             "note varchar(40), created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB")

LOOP_SQL = """
DELIMITER //
CREATE PROCEDURE bench_keyset(batch INT)
BEGIN
  DECLARE lo BIGINT DEFAULT 0;
  DECLARE hi BIGINT;
  DECLARE last_id BIGINT;
  DECLARE skip INT DEFAULT batch - 1;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET hi = NULL;
  SELECT MAX(id) INTO last_id FROM orders;
  l: LOOP
    SET hi = NULL;
    SELECT id INTO hi FROM orders WHERE id > lo ORDER BY id LIMIT skip, 1;
    IF hi IS NULL OR hi > last_id THEN SET hi = last_id; END IF;
    START TRANSACTION;
    UPDATE orders SET amount = amount_cents / 100.0 WHERE id > lo AND id <= hi AND amount IS NULL;
    COMMIT;
    IF hi >= last_id THEN LEAVE l; END IF;
    SET lo = hi;
  END LOOP;
END//
DELIMITER ;
"""


def pacer_binary() -> Path:
    env_bin = os.environ.get("PACER_BIN")
    if env_bin:
        return Path(env_bin).resolve()
    path = REPO / "target" / "release" / "pacer"
    if not path.exists():
        log("building pacer: cargo build --release")
        if subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO).returncode != 0:
            sys.exit("cargo build failed")
    return path


# ----------------------------------------------------------------------------------------------
# the fixed-rate workload and the heartbeat


class Workload:
    """`clients` sessions, Poisson arrivals at `rate` per second in total; each transaction an
    UPDATE of note and a point SELECT by a random id; (scheduled start, latency ms) of each."""

    def __init__(self, server: Mariadbd, db: str, rate: float, clients: int, rows: int, errlog: Path, seed=1):
        self.stop = threading.Event()
        self.txs: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.sessions = [Session(server, db, errlog) for _ in range(clients)]
        self.threads = [threading.Thread(target=self.worker, args=(s, rate / clients, rows, seed + i), daemon=True)
                        for i, s in enumerate(self.sessions)]
        self.errors = 0
        for t in self.threads:
            t.start()

    def worker(self, s: Session, rate: float, rows: int, seed: int):
        rng = random.Random(seed)
        t = time.time()
        while not self.stop.is_set():
            t += rng.expovariate(rate)
            wait = t - time.time()
            if wait > 0 and self.stop.wait(wait):
                break
            k = rng.randint(1, rows)
            try:
                got = s.request(f"UPDATE orders SET note = 'paid {k}' WHERE id = {k};\n"
                                f"SELECT MAX(amount_cents), MAX(note), '__end__' FROM orders WHERE id = {k};",
                                sentinel=False)
            except RuntimeError:
                self.errors += 1
                break
            end = time.time()
            with self.lock:
                self.txs.append((t, (end - t) * 1000))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        for s in self.sessions:
            s.close()

    def window(self, t0: float, t1: float) -> list[float]:
        with self.lock:
            return [lat for (s, lat) in self.txs if t0 <= s < t1]


class Heartbeat:
    """UPDATE bench_hb.heartbeat SET ts = NOW(6) on the primary every `interval`; on the replica,
    every `interval`, NOW(6) − ts (seconds): (sample time, lag)."""

    def __init__(self, primary: Mariadbd, replica: Mariadbd, interval: float, errlog: Path):
        self.interval = interval
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.writes = 0
        self.w = Session(primary, "bench_hb", errlog)
        self.r = Session(replica, "bench_hb", errlog)
        self.threads = [threading.Thread(target=self.writer, daemon=True),
                        threading.Thread(target=self.reader, daemon=True)]
        for t in self.threads:
            t.start()

    def writer(self):
        t = time.time()
        while not self.stop.is_set():
            try:
                self.w.request("UPDATE heartbeat SET ts = NOW(6) WHERE id = 1;")
            except RuntimeError:  # the session ended (cleanup after an interrupt)
                return
            self.writes += 1
            t += self.interval
            if self.stop.wait(max(0.0, t - time.time())):
                break

    def reader(self):
        t = time.time() + self.interval / 2
        while not self.stop.is_set():
            if self.stop.wait(max(0.0, t - time.time())):
                break
            try:
                rows = self.r.request("SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM heartbeat WHERE id = 1;")
            except RuntimeError:  # the session ended (cleanup after an interrupt)
                return
            if rows and rows[0].strip().lstrip("-").isdigit():
                self.samples.append((time.time(), int(rows[0]) / 1e6))
            t += self.interval

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        self.w.close()
        self.r.close()

    def last(self) -> float | None:
        return self.samples[-1][1] if self.samples else None


class ReplicaSlower:
    """A slow replica: its mariadbd process runs `duty` of every `period` seconds (SIGCONT, then
    SIGSTOP for the rest), so it applies, receives and answers at that fraction of its speed;
    an idle replica stays within one period of the primary. (STOP/START SLAVE SQL_THREAD at this
    rate does not work: a restarted SQL thread may apply nothing within a short window.)"""

    def __init__(self, replica: Mariadbd, duty: float, period: float):
        self.pid = replica.proc.pid
        self.duty, self.period = duty, period
        self.cycles = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        CLEANUP.actions.append(self.finish)  # before the servers are stopped
        self.t.start()

    def run(self):
        try:
            t = time.time()
            while not self.stop.is_set():
                os.kill(self.pid, signal.SIGCONT)  # our own child, by its pid
                if self.stop.wait(max(0.0, t + self.duty * self.period - time.time())):
                    break
                os.kill(self.pid, signal.SIGSTOP)
                self.cycles += 1
                t += self.period
                self.stop.wait(max(0.0, t - time.time()))
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def finish(self):
        self.stop.set()
        self.t.join(timeout=10)
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


# ----------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args):
        self.a = args
        self.rows = args.rows
        self.work = Path(tempfile.mkdtemp(prefix="pacer-bench-mariadb-"))
        os.chmod(self.work, 0o755)
        if IS_ROOT:
            shutil.chown(self.work, "mysql", "mysql")
        self.files = self.work / "files"
        self.files.mkdir()
        CLEANUP.actions.insert(0, self.remove_work)
        mli = (PLUGIN_DIR / "metadata_lock_info.so").exists()
        self.plugin = ["--plugin-load-add=metadata_lock_info"] if mli else []
        self.primary = Mariadbd(self.work, "primary", 1, self.plugin + args.mariadbd_opt)
        self.replica = Mariadbd(self.work, "replica", 2, self.plugin + args.mariadbd_opt + [
            "--relay-log=relay-bin", "--read-only=1", f"--replicate-wild-ignore-table={SCRATCH_IGNORE}"], report=True)
        self.results: dict = {"runs": []}
        self.report: list[str] = []
        self.seq = 0
        self.pacer = None
        self.plans: dict[str, Path] = {}

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
        self.pacer = pacer_binary()
        for name, text in PLANS.items():
            path = self.files / f"{name}.toml"
            path.write_text(text)
            self.plans[name] = path
        t = time.time()
        log(f"mariadb-install-db + start a primary and a replica in {self.work}")
        self.primary.install()
        self.replica.install()
        self.primary.start()
        self.replica.start()
        self.replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
                         f"MASTER_USER='root', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;")
        log(f"  primary on port {self.primary.port}, replica on {self.replica.port} ({time.time() - t:.1f} s)")
        t = time.time()
        self.primary.sql("CREATE DATABASE seed; CREATE DATABASE bench_hb; "
                         "CREATE TABLE bench_hb.heartbeat (id int PRIMARY KEY, ts datetime(6) NOT NULL); "
                         "INSERT INTO bench_hb.heartbeat VALUES (1, NOW(6));")
        self.primary.sql(TABLE_SQL, "seed")
        step = 250_000
        for lo in range(0, self.rows, step):
            hi = min(self.rows, lo + step)
            self.primary.sql(f"INSERT INTO orders (id, amount_cents, note, created_at) SELECT seq, (seq * 104729) % 1000000, "
                             f"CONCAT('order ', seq), TIMESTAMP'2026-01-01 00:00:00' - INTERVAL seq SECOND "
                             f"FROM seq_{lo + 1}_to_{hi}", "seed")
        self.primary.sql("ANALYZE TABLE orders", "seed")
        self.wait_replica(timeout=900)
        self.seed_s = time.time() - t
        self.replica.sql("ANALYZE TABLE orders", "seed")
        size = self.primary.sql("SELECT data_length, index_length FROM information_schema.tables "
                                "WHERE table_schema = 'seed' AND table_name = 'orders'").split()
        self.table_mib = int(size[0]) / 2**20
        log(f"seeded {self.rows:,} rows in {self.seed_s:.1f} s (replica caught up): {self.table_mib:.0f} MiB")
        # Does this pacer build accept max_replication_lag on MySQL/MariaDB?
        db = self.fresh_copy("probe")
        p = pg.run([str(self.pacer), "plan", str(self.plans["throttled"]), "--target", self.primary.url(db),
                    "--audit-log", "off"], check=False)
        self.throttle_supported = p.returncode == 0
        lines = [ln.strip() for ln in p.stderr.splitlines() if "max_replication_lag" in ln]
        self.throttle_probe_msg = (lines or [p.stderr.strip()[-300:]])[-1]
        if pg.run([str(self.pacer), "plan", str(self.plans["batch10k"]), "--target", self.primary.url(db),
                   "--audit-log", "off"], check=False).returncode != 0:
            self.plans["batch10k"].write_text(PLANS["batch10k"].replace("adaptive = false\n", ""))
        self.drop(db)
        log(f"max_replication_lag accepted on MariaDB: {self.throttle_supported} {self.throttle_probe_msg}")

    def wait_replica(self, timeout=600):
        pos = self.primary.sql("SELECT @@gtid_binlog_pos")
        if not pos:
            return
        got = self.replica.sql(f"SELECT MASTER_GTID_WAIT('{pos}', {timeout})")
        if got != "0":
            status = subprocess.run(self.replica.base_cmd()[:-1] + ["-e", "SHOW SLAVE STATUS\\G"],
                                    capture_output=True, text=True, env=clean_env()).stdout
            raise RuntimeError(f"the replica did not reach {pos} within {timeout} s:\n{status[-2500:]}")

    def replica_running(self) -> bool:
        """Both replication threads run (status Slave_running = ON)."""
        return self.replica.sql("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'SLAVE_RUNNING'") == "ON"

    def fresh_copy(self, prefix: str, on_replica=False) -> str:
        """A fresh copy of seed.orders in a new database (imported tablespace, not binlogged)."""
        self.seq += 1
        db = f"{prefix}{self.seq:02d}"
        for srv in [self.primary] + ([self.replica] if on_replica else []):
            srv.sql(f"SET SESSION sql_log_bin = 0; CREATE DATABASE {db}; USE {db}; {TABLE_SQL}; "
                    f"ALTER TABLE orders DISCARD TABLESPACE;")
            s = Session(srv, "seed", self.files / "session.err")
            try:
                s.request("FLUSH TABLES orders FOR EXPORT;")
                for ext in ("ibd", "cfg"):
                    dst = srv.data / db / f"orders.{ext}"
                    shutil.copyfile(srv.data / "seed" / f"orders.{ext}", dst)
                    if IS_ROOT:
                        shutil.chown(dst, "mysql", "mysql")
                s.request("UNLOCK TABLES;")
            finally:
                s.close()
            srv.sql(f"SET SESSION sql_log_bin = 0; ALTER TABLE orders IMPORT TABLESPACE; ANALYZE TABLE orders;", db)
        return db

    def drop(self, db: str, on_replica=False):
        for srv in [self.primary] + ([self.replica] if on_replica else []):
            srv.client(f"SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS {db}", check=False)

    def unfilled(self, db: str) -> int:
        return int(self.primary.sql("SELECT COUNT(*) FROM orders WHERE amount IS NULL", db))

    def header(self):
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
        ver = self.primary.sql("SELECT @@version")
        sv = self.primary.sql("SELECT CONCAT_WS(' ', @@innodb_buffer_pool_size DIV 1048576, "
                              "@@innodb_log_file_size DIV 1048576, @@binlog_row_image, @@sync_binlog, "
                              "@@slave_parallel_threads, @@tx_isolation)").split()
        rsv = self.replica.sql("SELECT @@slave_parallel_threads").strip()
        pv = pg.run([str(self.pacer), "--version"], check=False).stdout.strip()
        git = pg.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
        dirty = pg.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                       check=False).stdout.strip()
        ptosc = shutil.which("pt-online-schema-change")
        ptv = pg.run([ptosc, "--version"], check=False).stdout.strip() if ptosc else "not installed"
        self.out("pacer backfill benchmark on MariaDB (bench/backfill_mariadb.py)")
        self.out(f"date {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; command: "
                 f"{shlex.join(['python3', 'bench/backfill_mariadb.py', *sys.argv[1:]])}")
        self.out(f"machine: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}; "
                 f"load average at start {os.getloadavg()[0]:.2f}")
        self.out(f"MariaDB {ver}: primary + GTID replica on this machine, `mariadbd --no-defaults "
                 f"{' '.join(BASE_ARGS + self.plugin + self.a.mariadbd_opt)}`; other settings the "
                 f"server's defaults: innodb_buffer_pool_size {sv[0]} MiB, innodb_log_file_size {sv[1]} MiB, "
                 f"binlog_row_image {sv[2]}, sync_binlog {sv[3]}, {sv[5]}; the replica: slave_parallel_threads "
                 f"{rsv}, --read-only=1, --replicate-wild-ignore-table={SCRATCH_IGNORE}, --report-host=127.0.0.1 (pacer finds "
                 f"it through SHOW SLAVE HOSTS)")
        self.out(f"pacer: {pv} at {self.pacer}; repository HEAD {git}{' with uncommitted changes in src/' if dirty else ''}")
        self.out(f"pt-online-schema-change: {ptv}")
        self.out(f"table: orders (id bigint auto_increment primary key, amount_cents bigint, note varchar(40), "
                 f"created_at datetime(6)), {self.rows:,} rows, {self.table_mib:.0f} MiB (seeded and replicated in "
                 f"{self.seed_s:.1f} s); every run starts from a fresh copy (imported tablespace)")
        self.out(f"repeats: 1. {self.a.repeats} of each method, interleaved, order rotated each repeat; 2. "
                 f"{self.a.fg_repeats}; 3. {self.a.lag_repeats}; medians reported")
        self.out()

    # -- runs ----------------------------------------------------------------------------------

    def pacer_run(self, db: str, plan: str, label: str) -> tuple[dict, pg.PacerRun]:
        rid = self.next_id(label)
        pr = pg.PacerRun(self.pacer, self.plans[plan], self.primary.url(db), self.files / f"{rid}.jsonl",
                         extra=("--audit-log", str(self.files / f"{rid}-audit.jsonl")))
        rc = pr.wait(max(600.0, self.rows / 1000))
        if rc != 0:
            log(f"pacer exited {rc}: {pr.stderr_tail()}")
        return pr.summary(), pr

    def sync_sql(self, db: str) -> list[str]:
        """pacer's own sync triggers for this table, from `pacer plan --json`."""
        p = pg.run([str(self.pacer), "plan", str(self.plans["defaults"]), "--json", "--target", self.primary.url(db),
                    "--audit-log", "off"])
        doc = json.loads(p.stdout)
        return [st["sql"] for ph in doc["phases"] if ph["phase"] == "sync" for st in ph.get("steps", [])]

    def loop_run(self, db: str, trigger=False) -> dict:
        triggers = self.sync_sql(db) if trigger else []  # planned before the column exists
        self.primary.sql("SET SESSION sql_log_bin = 0; "
                         "ALTER TABLE orders ADD COLUMN amount decimal(14,2), ALGORITHM=INSTANT;" + LOOP_SQL, db)
        if trigger:
            for stmt in triggers:
                self.primary.sql("SET SESSION sql_log_bin = 0;\nDELIMITER //\n" + stmt + "//\nDELIMITER ;\n", db)
        t = time.time()
        self.primary.sql(f"CALL bench_keyset({self.a.loop_batch})", db)
        secs = time.time() - t
        return {"rc": 0, "rows": self.rows, "backfill_s": secs, "rows_per_s": self.rows / secs, "window": (t, t + secs)}

    # -- 1. throughput -------------------------------------------------------------------------

    def item1(self):
        log("1. throughput")
        methods = ["pacer", "loop"] + (["pacer_10k", "loop_trigger"] if self.a.extras else [])
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(self.a.repeats):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for m in order:
                db = self.fresh_copy("scratch")
                la = os.getloadavg()[0]
                if m.startswith("loop"):
                    s = self.loop_run(db, trigger=m == "loop_trigger")
                else:
                    s, _ = self.pacer_run(db, "full_speed" if m == "pacer" else "batch10k", m)
                s.update(unfilled=self.unfilled(db), load=la, repeat=r + 1)
                self.drop(db)
                runs[m].append(s)
                self.results["runs"].append({"item": 1, "method": m, **s})
                log(f"  repeat {r + 1} {m}: {fmt_int(s['rows_per_s'] or 0)} rows/s ({s['rows']:,} rows in "
                    f"{s['backfill_s'] or 0:.2f} s) rc={s['rc']} unfilled={s['unfilled']} load {la:.2f}")
        names = {
            "pacer": "pacer, defaults (no throttle, pause 0; backfill phase)",
            "pacer_10k": "pacer, fixed batch_size = 10000, not adaptive (backfill phase)",
            "loop": f"stored-procedure loop, {self.a.loop_batch:,}-row keyset ranges, COMMIT each",
            "loop_trigger": "the same loop with pacer's two sync triggers installed",
        }
        self.out(f"1. Throughput ({self.rows:,} rows; rows/s = rows ÷ time to fill them)")
        med = {}
        for m in methods:
            med[m] = median([s["rows_per_s"] for s in runs[m] if s["rc"] == 0 and s["unfilled"] == 0])
            each = ", ".join(
                f"{fmt_int(s['rows_per_s'] or 0)} ({s['backfill_s'] or 0:.1f} s"
                + (f", whole run {s['wall_s']:.1f} s, {s['batches']} batches, batch p50 {ms(s['batch_ms_p50'])}, "
                   f"size p50 {s['batch_size_p50']}, pacer CPU {s['cpu_s']:.2f} s" if "batches" in s else "")
                + ("" if s["rc"] == 0 and s["unfilled"] == 0 else f", FAILED rc={s['rc']} unfilled={s['unfilled']}")
                + ")" for s in runs[m])
            self.out(f"   {names[m]}: median {fmt_int(med[m] or 0)} rows/s; runs {each}")
        rs = ratio(med["pacer"], med["loop"])
        self.out(f"   RESULT 1   pacer ÷ stored-procedure loop = {r2(rs)} ({fmt_int(med['pacer'] or 0)} / "
                 f"{fmt_int(med['loop'] or 0)} rows/s); goal ≥ 0.9: {'MET' if rs and rs >= 0.9 else 'NOT MET'}")
        if "pacer_10k" in med:
            self.out(f"   extra      pacer at a fixed 10,000 ÷ loop = {r2(ratio(med['pacer_10k'], med['loop']))}; loop with "
                     f"pacer's triggers ÷ without = {r2(ratio(med['loop_trigger'], med['loop']))}; pacer at 10,000 ÷ loop "
                     f"with the triggers = {r2(ratio(med['pacer_10k'], med['loop_trigger']))}")
        self.item1_median = med
        self.item1_runs = runs
        self.out()

    # -- 2. foreground -------------------------------------------------------------------------

    def item2_run(self, method: str, r: int) -> dict:
        a = self.a
        db = self.fresh_copy("scratch")
        wl = Workload(self.primary, db, a.rate, a.clients, self.rows, self.files / "workload.err", seed=100 * r)
        try:
            time.sleep(a.warmup)
            b0 = time.time()
            time.sleep(a.baseline_secs)
            b1 = time.time()
            if method == "loop":
                s = self.loop_run(db)
                s["backfill_window"] = s["window"]
            else:
                s, _ = self.pacer_run(db, "defaults" if method == "pacer" else method, f"fg-{method.replace(':', '-')}")
            time.sleep(1.0)
        finally:
            wl.finish()
        w0, w1 = s["backfill_window"] or s["window"]
        base, during = wl.window(b0, b1), wl.window(w0, w1)
        whole = wl.window(*s["window"])
        res = {"method": method, "repeat": r + 1, "baseline_n": len(base), "during_n": len(during),
               "baseline_p50": pct(base, 50), "baseline_p99": pct(base, 99), "baseline_max": max(base, default=None),
               "during_p50": pct(during, 50), "during_p99": pct(during, 99), "during_max": max(during, default=None),
               "whole_p99": pct(whole, 99), "whole_max": max(whole, default=None),
               "window_s": w1 - w0, "workload_errors": wl.errors, "unfilled": self.unfilled(db),
               **{k: v for k, v in s.items() if k not in ("window", "backfill_window")}}
        self.drop(db)
        return res

    def item2(self):
        log("2. foreground")
        a = self.a
        methods = ["pacer"] + (["loop"] if a.extras else [])
        variants = {}
        for i, v in enumerate(a.fg_variant, 1):  # other [backfill] settings, e.g. target_batch_ms=10
            name = f"pacer:{i}"
            pairs = [kv.strip() for kv in v.split(",") if kv.strip()]
            lines = [kv.replace("=", " = ", 1) for kv in pairs if not kv.startswith("throttle.")]
            throttle = [kv[len("throttle."):].replace("=", " = ", 1) for kv in pairs if kv.startswith("throttle.")]
            path = self.files / f"fg-variant-{i}.toml"
            path.write_text(PLAN_HEAD + "\n[backfill]\n" + "\n".join(lines) + "\n"
                            + ("[throttle]\n" + "\n".join(throttle) + "\n" if throttle else ""))
            self.plans[name] = path
            variants[name] = v
            methods.append(name)
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(a.fg_repeats):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for m in order:
                res = self.item2_run(m, r)
                runs[m].append(res)
                self.results["runs"].append({"item": 2, **res})
                log(f"  repeat {r + 1} {m}: before p99 {ms(res['baseline_p99'])} (n={res['baseline_n']}), during p99 "
                    f"{ms(res['during_p99'])} (n={res['during_n']}, {fmt_int(res['rows_per_s'] or 0)} rows/s)")
        self.out(f"2. Foreground: {a.rate:.0f}/s fixed-rate workload ({a.clients} client sessions, Poisson arrivals; each "
                 f"transaction UPDATE orders SET note … WHERE id = k, then SELECT … WHERE id = k, autocommit, k random), "
                 f"latency from the scheduled start; the {a.baseline_secs:.0f} s before the method vs while it fills the "
                 f"column, same table and workload, a fresh copy each")
        names = {"pacer": "pacer, defaults", "loop": "the stored-procedure loop (1.)",
                 **{k: f"pacer with {v.replace(',', ', ')}" for k, v in variants.items()}}
        med = {}
        for m in methods:
            med[m] = {k: median([x[k] for x in runs[m]]) for k in ("baseline_p99", "during_p99")}
            for x in runs[m]:
                self.out(f"   {names[m]}, repeat {x['repeat']}: before p50 {ms(x['baseline_p50'])} p99 "
                         f"{ms(x['baseline_p99'])} max {ms(x['baseline_max'])} (n={x['baseline_n']:,}); during p50 "
                         f"{ms(x['during_p50'])} p99 {ms(x['during_p99'])} max {ms(x['during_max'])} (n={x['during_n']:,}, "
                         f"{x['window_s']:.1f} s, {fmt_int(x['rows_per_s'] or 0)} rows/s"
                         + (f", batch p50 {ms(x['batch_ms_p50'])}, p95 {ms(x['batch_ms_p95'])}, size p50 "
                            f"{x['batch_size_p50']}); whole pacer run p99 {ms(x['whole_p99'])} max {ms(x['whole_max'])}"
                            if "batches" in x else ")")
                         + (f"; {x['workload_errors']} workload errors" if x["workload_errors"] else "")
                         + ("" if x["rc"] == 0 and x["unfilled"] == 0 else
                            f"; FAILED rc={x['rc']} unfilled={x['unfilled']}"))
        bp, dp = med["pacer"]["baseline_p99"], med["pacer"]["during_p99"]
        rp = ratio(dp, bp)
        speed = median([x["rows_per_s"] for x in runs["pacer"]])
        full = getattr(self, "item1_median", {}).get("pacer")
        self.out(f"   RESULT 2   p99 during pacer ÷ before = {r2(rp)} ({ms(dp)} / {ms(bp)}, medians); goal ≤ 1.5: "
                 f"{'MET' if rp and rp <= 1.5 else 'NOT MET'}")
        self.out(f"   extra      pacer's speed under the workload ÷ without (1.) = {r2(ratio(speed, full))} "
                 f"({fmt_int(speed or 0)} / {fmt_int(full or 0)} rows/s)")
        for m in methods[1:]:
            sp = median([x["rows_per_s"] for x in runs[m]])
            self.out(f"   extra      {names[m]}: p99 during ÷ before = "
                     f"{r2(ratio(med[m]['during_p99'], med[m]['baseline_p99']))} ({ms(med[m]['during_p99'])} / "
                     f"{ms(med[m]['baseline_p99'])}), {fmt_int(sp or 0)} rows/s")
        self.item2_runs = runs
        self.out()

    # -- 3. replica lag ------------------------------------------------------------------------

    def item3_run(self, variant: str, duty: float) -> dict:
        db = self.fresh_copy("lag", on_replica=True)
        self.wait_replica()
        hb = Heartbeat(self.primary, self.replica, self.a.hb_interval, self.files / "heartbeat.err")
        slow = ReplicaSlower(self.replica, duty, self.a.replica_period) if duty else None
        caught = None
        try:
            time.sleep(2.0)
            pre = [lag for _, lag in hb.samples]
            s, _ = self.pacer_run(db, variant if variant == "throttled" else "defaults", f"lag-{variant}")
            t_end = time.time()
            if slow:
                slow.finish()
                slow = None
            # until the replica has applied everything pacer wrote: heartbeat back under 2 intervals
            deadline = time.time() + 600
            while time.time() < deadline:
                if hb.samples and hb.samples[-1][0] > t_end and hb.last() < 2 * self.a.hb_interval:
                    caught = hb.samples[-1][0]
                    break
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            if slow:
                slow.finish()
            hb.finish()
        w0, w1 = s["backfill_window"] or s["window"]
        inrun = [lag for (t, lag) in hb.samples if w0 <= t <= (caught or w1)]
        inwin = [lag for (t, lag) in hb.samples if w0 <= t <= w1]
        lim = 1.0
        with open(self.files / f"{self.seq:02d}-lag-{variant}-duty{duty}.tsv", "w") as f:
            f.write("t\tlag_s\n")
            for t, lag in hb.samples:
                f.write(f"{t:.3f}\t{lag:.3f}\n")
        res = {"variant": variant, "max_lag_s": max(inrun, default=None), "max_lag_backfill_s": max(inwin, default=None),
               "p50_lag_s": pct(inwin, 50), "over_limit": (sum(1 for x in inwin if x > lim) / len(inwin)) if inwin else None,
               "samples": len(inrun), "pre_max_s": max(pre, default=None), "hb_writes": hb.writes,
               "catch_up_s": (caught - w1) if caught else None, "replica_running": self.replica_running(),
               "unfilled": self.unfilled(db),
               **{k: v for k, v in s.items() if k not in ("window", "backfill_window")}}
        self.wait_replica()
        res["replica_unfilled"] = int(self.replica.sql("SELECT COUNT(*) FROM orders WHERE amount IS NULL", db))
        self.drop(db, on_replica=True)
        return res

    def item3(self):
        log("3. replica lag")
        a = self.a
        # (replica, plan): the replica as it is, and (--replica-duty) slowed, where a throttle has work to do
        variants = [("natural", "unthrottled")]
        if self.throttle_supported and a.lag_natural_throttled:
            variants.append(("natural", "throttled"))
        if a.replica_duty:
            variants.append(("slowed", "unthrottled"))
            if self.throttle_supported:
                variants.append(("slowed", "throttled"))
        runs = {v: [] for v in variants}
        for r in range(a.lag_repeats):
            for v in variants:
                res = self.item3_run(v[1], a.replica_duty if v[0] == "slowed" else 0.0)
                res.update(repeat=r + 1, replica=v[0])
                runs[v].append(res)
                self.results["runs"].append({"item": 3, **res})
                log(f"  repeat {r + 1} {v[0]} {v[1]}: peak lag {res['max_lag_s'] or 0:.2f} s, "
                    f"{fmt_int(res['rows_per_s'] or 0)} rows/s, rc={res['rc']}, replica running {res['replica_running']}")
        self.out(f"3. Replica lag: heartbeat row updated on the primary every {a.hb_interval * 1000:.0f} ms (NOW(6)), read "
                 f"on the replica every {a.hb_interval * 1000:.0f} ms (its NOW(6) − the newest heartbeat applied; "
                 f"Seconds_Behind_Master not used); peak from the start of pacer's backfill until the replica caught up "
                 f"after it. Replica: natural = applying as fast as it can (one SQL thread, same machine); slowed = its "
                 f"mariadbd process running {a.replica_duty * a.replica_period * 1000:.0f} ms of every "
                 f"{a.replica_period * 1000:.0f} ms (SIGCONT/SIGSTOP), "
                 f"until pacer's run ends")
        names = {"unthrottled": "no throttle (defaults)", "throttled": 'max_replication_lag = "1s"'}
        med = {}
        for v in variants:
            med[v] = median([x["max_lag_s"] for x in runs[v]])
            each = "; ".join(
                f"peak {x['max_lag_s'] or 0:.2f} s (within the backfill phase {x['max_lag_backfill_s'] or 0:.2f} s), "
                f"p50 {x['p50_lag_s'] or 0:.2f} s, over 1 s {100 * (x['over_limit'] or 0):.0f} % of the backfill, "
                f"before pacer ≤ {x['pre_max_s'] or 0:.2f} s, caught up {x['catch_up_s'] or 0:.1f} s after the "
                f"backfill, {fmt_int(x['rows_per_s'] or 0)} rows/s over {x['backfill_s'] or 0:.1f} s"
                + (f", throttled {x['throttled_n']}× for {x['throttled_ms'] / 1000:.1f} s" if x.get("throttled_n") else "")
                + f", rc={x['rc']}, replica {'replicating' if x['replica_running'] else 'STOPPED'}, "
                f"unfilled on the replica {x['replica_unfilled']}"
                for x in runs[v])
            self.out(f"   {v[0]} replica, {names[v[1]]}: median peak {med[v] or 0:.2f} s; runs {each}")
        lim = 1.0 + a.hb_interval
        for rep in ("natural", "slowed"):
            if (rep, "unthrottled") not in med:
                continue
            un = med[(rep, "unthrottled")]
            if (rep, "throttled") in med:
                t = med[(rep, "throttled")]
                self.out(f"   RESULT 3   {rep} replica: peak lag with max_replication_lag = 1s {t or 0:.2f} s vs "
                         f"{un or 0:.2f} s without; goal ≤ limit + one sample interval ({lim:.1f} s): "
                         f"{'MET' if t is not None and t <= lim else 'NOT MET'}")
            else:
                self.out(f"   RESULT 3   {rep} replica: peak lag without throttle {un or 0:.2f} s; with "
                         f"max_replication_lag = 1s: "
                         + ("not run (--lag-natural-throttled)" if self.throttle_supported else
                            f"not available in this pacer build ({self.throttle_probe_msg})"))
        self.item3_runs = runs
        self.out()

    # -- 4. pt-online-schema-change ------------------------------------------------------------

    def item4(self):
        tool = shutil.which("pt-online-schema-change")
        if not tool:
            self.out("4. pt-online-schema-change: not installed (apt-get install percona-toolkit)")
            self.out()
            return
        log("4. pt-online-schema-change")
        db = self.fresh_copy("scratch")
        cmd = [tool, "--alter", "ADD COLUMN amount decimal(14,2)", "--execute", "--recursion-method=none",
               f"h=127.0.0.1,P={self.primary.port},u=root,D={db},t=orders"]
        t = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
        secs = time.time() - t
        (self.files / "pt-osc.out").write_text(p.stdout + p.stderr)
        stamps = {}
        for line in p.stdout.splitlines():
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) (Copying approximately|Copied rows OK)", line)
            if m:
                stamps[m.group(2)] = dt.datetime.fromisoformat(m.group(1)).timestamp()
        copy_s = (stamps["Copied rows OK"] - stamps["Copying approximately"]) if len(stamps) == 2 else None
        cols = self.primary.sql("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                                "AND table_name = 'orders' AND column_name = 'amount'", db)
        nulls = int(self.primary.sql("SELECT COUNT(*) FROM orders WHERE amount IS NULL", db)) if cols == "1" else None
        self.drop(db)
        res = {"rc": p.returncode, "wall_s": secs, "copy_s": copy_s, "null_amounts": nulls}
        self.results["runs"].append({"item": 4, **res})
        pacer_walls = [s["wall_s"] for s in getattr(self, "item1_runs", {}).get("pacer", []) if s.get("wall_s")]
        pw = median(pacer_walls)
        self.out(f"4. pt-online-schema-change {shlex.join(cmd[1:-1])} (default chunk-time 0.5 s; it copies the table "
                 f"into a new one with the column at its default, it cannot compute it)")
        self.out(f"   RESULT 4   pt-osc {secs:.1f} s in all (row copy {copy_s if copy_s is not None else float('nan'):.0f} s "
                 f"by its own second-resolution log), rc={p.returncode}; amount left NULL in {nulls if nulls is not None else 'n/a'} "
                 f"rows; pacer's whole run (1., median) {pw or 0:.1f} s, which also fills the column: pt-osc ÷ pacer = "
                 f"{r2(ratio(secs, pw))}")
        if p.returncode != 0:
            self.out(f"   pt-osc failed: {(p.stdout + p.stderr).strip()[-600:]}")
        self.out()

    # -- all -----------------------------------------------------------------------------------

    def main(self):
        t = time.time()
        self.setup()
        self.header()
        only = set(self.a.only.split(","))
        for item, fn in (("1", self.item1), ("2", self.item2), ("4", self.item4), ("3", self.item3)):
            if item in only:
                fn()
        ok = self.replica_running()
        self.out(f"replica replicating at the end: {ok}")
        self.out(f"total harness time {time.time() - t:.0f} s (seeding included; build excluded); "
                 f"load average at the end {os.getloadavg()[0]:.2f}")
        self.save()

    def save(self):
        res_dir = REPO / "bench" / "results"
        res_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
        if (res_dir / f"backfill-mariadb-{stamp}.txt").exists():
            stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")  # two runs in one minute
        path = res_dir / f"backfill-mariadb-{stamp}.txt"
        path.write_text("\n".join(self.report) + "\n")
        (res_dir / f"backfill-mariadb-{stamp}.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        log(f"report written to {path.relative_to(REPO)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows in orders (default 2,000,000)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each method of 1. (default 3)")
    ap.add_argument("--fg-repeats", type=int, default=2, help="repeats of 2. (default 2)")
    ap.add_argument("--only", default="1,2,3,4", help="items to run, e.g. 1,3 (default all)")
    ap.add_argument("--extras", action="store_true",
                    help="1.: also pacer at a fixed batch of 10,000 and the loop with pacer's triggers; "
                         "2.: also the foreground during the loop")
    ap.add_argument("--loop-batch", type=int, default=10_000, help="rows per range of the stored-procedure loop")
    ap.add_argument("--rate", type=float, default=400, help="2.: workload transactions per second (default 400)")
    ap.add_argument("--clients", type=int, default=4, help="2.: workload sessions (default 4)")
    ap.add_argument("--warmup", type=float, default=3.0, help="2.: seconds of workload before the baseline window")
    ap.add_argument("--baseline-secs", type=float, default=15.0, help="2.: length of the window before pacer")
    ap.add_argument("--fg-variant", action="append", default=[], metavar="KEY=VAL[,KEY=VAL]",
                    help="2.: also pacer with these [backfill] settings, e.g. target_batch_ms=10; throttle.KEY=VALUE "
                         "goes to [throttle] (e.g. 'throttle.max_foreground_impact=\"off\"')")
    ap.add_argument("--hb-interval", type=float, default=0.1, help="3.: heartbeat write and read interval (s)")
    ap.add_argument("--replica-duty", type=float, default=0.5,
                    help="3.: the slowed replica's server process runs this fraction of each cycle (default 0.5; "
                         "0: no runs on a slowed replica)")
    ap.add_argument("--replica-period", type=float, default=0.1,
                    help="3.: the slowed replica's cycle in seconds (default 0.1)")
    ap.add_argument("--lag-natural-throttled", action="store_true",
                    help="3.: also the throttled run on the replica as it is (by default only on the slowed one)")
    ap.add_argument("--lag-repeats", type=int, default=1, help="3.: repeats of the lag runs (default 1)")
    ap.add_argument("--mariadbd-opt", action="append", default=[], metavar="--NAME=VALUE",
                    help="one more mariadbd option for both servers, e.g. --mariadbd-opt=--innodb-buffer-pool-size=1G")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (servers are stopped)")
    args = ap.parse_args()

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    try:
        Bench(args).main()
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        sys.exit(130)
    finally:
        CLEANUP.run()


if __name__ == "__main__":
    main()
