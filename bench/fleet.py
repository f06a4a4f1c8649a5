"""Fleet benchmarks: many serving runners (worker processes), one store.

Run ``python bench/fleet.py`` (``--quick`` for a smoke run; ``--stores sqlite,postgres``).
PostgreSQL at ``RUNEFLOW_BENCH_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
every Postgres run uses a fresh schema ``rf_bench_<hex>``, dropped at the end.

Workers are ``bench/_fleet_worker.py`` processes, each a
``Runner(store, workflows=[build], poll_interval=0.05, lease_ttl=..., max_workers=M)``
serving ``fleet_io`` (three chained steps, each sleeping ``FLEET_SLEEP`` seconds). Instances
are submitted by a :class:`runeflow.Client`, which runs no code. Prints JSON lines:

* ``failover`` (per store, ``mode`` ``sigkill`` and ``sigstop``): K workers serve a batch of
  instances; the worker holding the most running ones is SIGKILLed (a dead process of this
  host: taken over at once) or SIGSTOPped (paused: taken over once its leases expire).
  ``failover_s``: seconds from the signal until every instance it held is owned by another
  live worker and its log cursor grew; also the first step completed after the signal, and
  duplicate step applications (a SIGSTOPped worker is SIGCONTed once the others finished,
  given a second to try to write, then SIGKILLed). Target: ``failover_s <= lease_ttl + 1``.
* ``throughput`` (Postgres): instances/s of 1, 2 and 3 workers (10 ms steps), from the first
  submit (``--submitters`` threads sharing one Client) until every instance is idle; the CPU
  used meanwhile by the workers, Postgres, this process and everything else on the machine;
  duplicates (RunnableCompleted per component beyond one in each final log).
  ``throughput_ratio``: 2 and 3 workers over one. Target: 2 workers >= 1.6x one.

  Each worker's pool (``--max-workers``, default 2) is chosen so that one worker is limited
  by I/O concurrency, not by CPU: its ceiling is ``M / (3 x 10 ms)`` instances/s
  (``io_ceiling_instances_per_s``), and an instance costs about 8-9 ms of CPU across the
  worker, Postgres and the client, so on a 2-core machine ``M = 8`` (267/s) would need more
  than both cores and one worker would already be CPU-bound, leaving more workers nothing to
  add. With ``M = 2`` (67/s) one worker needs about 0.6 core.

Figures vary on a shared machine; this is one run, not a best of several.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import runeflow as rf
from runeflow.model.events import RunnableCompleted

PG_DSN = os.environ.get("RUNEFLOW_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_DIR = Path(__file__).resolve().parent
WORKER = BENCH_DIR / "_fleet_worker.py"
COMPONENTS = ("step_a", "step_b", "step_c")
CLK_TCK = os.sysconf("SC_CLK_TCK")
FENCED = "is owned by another runner now"
"""In the warning of a runner whose write or renewal was refused: another one took over."""


def emit(**row: Any) -> dict[str, Any]:
    print(json.dumps(row), flush=True)
    return row


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# --- stores -------------------------------------------------------------------------------------


class StoreEnv:
    """A fresh store for one run: a SQLite file, or a Postgres schema dropped at the end."""

    def __init__(
        self, kind: str, tmp: Path, pool: int | None = None, client_pool: int | None = None
    ) -> None:
        self.kind = kind
        self.pool = pool
        self.client_pool = client_pool
        tag = uuid.uuid4().hex[:10]
        if kind == "sqlite":
            self.path = tmp / f"fleet-{tag}.db"
            self.spec = f"sqlite:///{self.path}"
        else:
            self.schema = f"rf_bench_{tag}"
            self.spec = f"{PG_DSN}#schema={self.schema}" + (f"&pool={pool}" if pool else "")
        self.store = self.open()

    def open(self) -> rf.Store:
        if self.kind == "sqlite":
            return rf.SQLiteStore(self.path)
        options = {"max_size": self.client_pool} if self.client_pool else {}
        return rf.PostgresStore(PG_DSN, schema=self.schema, **options)

    def close(self) -> None:
        self.store.close()
        if self.kind == "postgres":
            import psycopg
            from psycopg import sql

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )

    def __enter__(self) -> StoreEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def postgres_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# --- worker processes ---------------------------------------------------------------------------


class Fleet:
    """K worker processes serving one store; their stderr goes to files."""

    def __init__(
        self, spec: str, k: int, lease_ttl: float, max_workers: int, sleep: float, logs: Path
    ) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(BENCH_DIR), env.get("PYTHONPATH", "")])
        )
        env["FLEET_SLEEP"] = str(sleep)
        self.procs: list[subprocess.Popen[str]] = []
        self.owners: dict[str, subprocess.Popen[str]] = {}
        self.logs: list[Path] = []
        for i in range(k):
            log = logs / f"worker-{uuid.uuid4().hex[:6]}-{i}.stderr"
            self.logs.append(log)
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), spec, str(lease_ttl), str(max_workers)],
                stdout=subprocess.PIPE,
                stderr=log.open("w"),
                text=True,
                env=env,
            )
            self.procs.append(proc)
        for proc, log in zip(self.procs, self.logs, strict=True):
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("serving "):
                self.stop()
                raise RuntimeError(
                    f"worker {proc.pid} did not start ({line!r}); stderr:\n{log.read_text()}"
                )
            self.owners[line.split(" ", 1)[1]] = proc

    def owner_of(self, proc: subprocess.Popen[str]) -> str:
        return next(o for o, p in self.owners.items() if p is proc)

    def live_owners(self) -> set[str]:
        return {o for o, p in self.owners.items() if p.poll() is None and not paused(p.pid)}

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each live worker so far."""
        out = {}
        for owner, proc in self.owners.items():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[owner] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return out

    def stop(self) -> None:
        """SIGTERM the live workers and wait for their clean shutdown (SIGKILL after 20 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                if paused(proc.pid):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                note(f"worker {proc.pid} ignored SIGTERM for 20 s: SIGKILL")
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def problems(self) -> tuple[list[str], int]:
        """Warning, error and traceback lines the workers wrote to stderr, and how many lines
        were the expected notice of a fenced (SIGSTOPped, then resumed) worker."""
        lines, fenced = [], 0
        for log in self.logs:
            for line in log.read_text().splitlines():
                if FENCED in line:
                    fenced += 1
                elif any(w in line for w in ("WARNING", "ERROR", "CRITICAL", "Traceback", "rror")):
                    lines.append(f"{log.name}: {line}")
        return lines, fenced


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def postgres_cpu_seconds() -> float:
    """User + system CPU seconds of this host's live postgres processes (readable ones)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition("(")[2].rpartition(")")
        if name.startswith("postgres"):
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def paused(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state in ("T", "t")


# --- checks -------------------------------------------------------------------------------------


def evidence(store: rf.Store, ids: list[str]) -> list[dict[str, Any]]:
    """The store state of instances that did not finish."""
    out = []
    for wid in ids:
        m = store.get(wid)
        timers = [
            {"id": t.timer_id, "fire_at": t.fire_at, "payload": t.payload}
            for t in store.timers(wid)
        ]
        out.append(
            {
                "id": wid,
                "status": m.status,
                "owner": m.owner,
                "cursor": m.cursor,
                "epoch": m.epoch,
                "error": m.error,
                "timers": timers,
            }
        )
    return out


def wait_finished(store: rf.Store, ids: list[str], timeout: float) -> list[str]:
    """Wait until no instance of ``ids`` is running; return those still running."""
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        running = [m.workflow_id for m in store.list("running") if m.workflow_id in wanted]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.02)


def audit(client: rf.Client, store: rf.Store, inputs: dict[str, int]) -> dict[str, Any]:
    """Duplicates and missing step applications, from each instance's stored log; results."""
    duplicates = missing = wrong = 0
    statuses: collections.Counter[str] = collections.Counter()
    for wid, x in inputs.items():
        statuses[store.get(wid).status] += 1
        done = collections.Counter(
            e.component for e in store.stream(wid, values=False) if isinstance(e, RunnableCompleted)
        )
        duplicates += sum(max(done[c] - 1, 0) for c in COMPONENTS)
        missing += sum(1 for c in COMPONENTS if done[c] == 0)
        if client.get_results(wid, components=["step_c"]) != {"step_c": x + 3}:
            wrong += 1
    return {
        "duplicate_applies": duplicates,
        "missing_applies": missing,
        "wrong_results": wrong,
        "statuses": dict(statuses),
    }


def report_problems(fleet: Fleet, what: str) -> dict[str, int]:
    problems, fenced = fleet.problems()
    for line in problems[:40]:
        note(f"{what}: worker stderr: {line}")
    if len(problems) > 40:
        note(f"{what}: ... {len(problems) - 40} more stderr lines")
    return {"worker_stderr_problem_lines": len(problems), "worker_stderr_fenced_lines": fenced}


# --- failover -----------------------------------------------------------------------------------


def failover(
    kind: str, mode: str, tmp: Path, *, k: int, n: int, lease_ttl: float, sleep: float, m: int
) -> None:
    sig = signal.SIGKILL if mode == "sigkill" else signal.SIGSTOP
    with StoreEnv(kind, tmp) as env:
        store = env.store
        client = rf.Client(store)
        fleet = Fleet(env.spec, k, lease_ttl, m, sleep, tmp)
        victim = None
        try:
            inputs = {f"f{i}": i for i in range(n)}
            for wid, x in inputs.items():
                client.start_instance("fleet_io", x, id=wid)
            # Let every instance be claimed and its first step get under way.
            submitted = time.monotonic()
            while True:
                metas = [store.get(wid) for wid in inputs]
                unclaimed = [x for x in metas if x.status == "running" and x.owner is None]
                if not unclaimed and time.monotonic() - submitted >= sleep * 1.5:
                    break
                if time.monotonic() - submitted > 30:
                    raise RuntimeError(f"instances not claimed: {evidence(store, inputs)}")
                time.sleep(0.01)
            held_by = collections.Counter(x.owner for x in metas if x.status == "running")
            victim_owner = held_by.most_common(1)[0][0]
            victim = fleet.owners[victim_owner]
            held_before = [x.workflow_id for x in metas if x.owner == victim_owner]

            t0 = time.perf_counter()
            os.kill(victim.pid, sig)
            if sig == signal.SIGKILL:
                victim.wait()  # reaped: a zombie would still look alive to its host's peers
            else:
                while not paused(victim.pid):
                    time.sleep(0.001)
            signalled = time.perf_counter() - t0
            after = {wid: store.get(wid) for wid in held_before}
            held = [
                wid
                for wid in held_before
                if after[wid].owner == victim_owner and after[wid].status == "running"
            ]
            base = {wid: after[wid].cursor for wid in held}
            others = {o for o in fleet.owners if o != victim_owner}

            taken: dict[str, float] = {}
            grew: dict[str, float] = {}
            stepped: dict[str, float] = {}
            new_owner: dict[str, str] = {}
            pending = set(held)
            limit = lease_ttl + 15
            while pending and time.perf_counter() - t0 < limit:
                for wid in list(pending):
                    meta = store.get(wid)
                    now = time.perf_counter() - t0
                    if meta.owner in others and fleet.owners[meta.owner].poll() is None:
                        taken.setdefault(wid, now)
                        new_owner[wid] = meta.owner
                    if meta.cursor > base[wid]:
                        grew.setdefault(wid, now)
                        if wid not in stepped and any(
                            isinstance(e, RunnableCompleted)
                            for e in store.stream(wid, after=base[wid], values=False)
                        ):
                            stepped[wid] = now
                    if wid in taken and wid in grew and wid in stepped:
                        pending.discard(wid)
                time.sleep(0.005)

            late = [w for w in held if w not in taken or w not in grew]
            late_state = evidence(store, late) if late else []
            stuck = wait_finished(store, list(inputs), timeout=30)
            stuck_state = evidence(store, stuck) if stuck else []
            fenced: dict[str, Any] = {}
            if sig == signal.SIGSTOP:
                cursors = {wid: store.get(wid).cursor for wid in held}
                os.kill(victim.pid, signal.SIGCONT)
                time.sleep(1.0)  # let it wake up, find its leases gone, and try to write
                fenced["writes_after_sigcont"] = sum(
                    store.get(wid).cursor - c for wid, c in cursors.items()
                )
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
            checks = audit(client, store, inputs)
        finally:
            if victim is not None and victim.poll() is None:
                if paused(victim.pid):
                    os.kill(victim.pid, signal.SIGCONT)
                victim.kill()
                victim.wait()
            fleet.stop()
        per_instance = [max(taken.get(w, float("inf")), grew.get(w, float("inf"))) for w in held]
        failover_s = max(per_instance) if per_instance else None
        emit(
            bench="failover",
            store=kind,
            mode=mode,
            lease_ttl=lease_ttl,
            poll_interval=0.05,
            workers=k,
            max_workers=m,
            step_sleep_s=sleep,
            instances=n,
            held_by_victim=len(held),
            held_per_worker=sorted(held_by.values(), reverse=True),
            taken_over=len(set(taken) & set(grew)),
            failover_s=None if failover_s in (None, float("inf")) else round(failover_s, 3),
            max_takeover_s=round(max(taken.values()), 3) if taken else None,
            min_takeover_s=round(min(taken.values()), 3) if taken else None,
            max_first_step_s=round(max(stepped.values()), 3) if stepped else None,
            signal_delivered_s=round(signalled, 4),
            target_s=lease_ttl + 1,
            within_target=(
                failover_s is not None and failover_s <= lease_ttl + 1 and len(taken) == len(held)
            ),
            new_owners=len(set(new_owner.values())),
            stuck=len(stuck),
            **checks,
            **fenced,
            **report_problems(fleet, f"failover {kind} {mode}"),
        )
        if stuck_state:
            note(f"failover {kind} {mode}: stuck instances: {json.dumps(stuck_state)}")
        if late_state:
            note(
                f"failover {kind} {mode}: not taken over and progressed within {limit}s "
                f"(state then): {json.dumps(late_state)}"
            )


# --- throughput ---------------------------------------------------------------------------------


def throughput(
    workers: int,
    tmp: Path,
    *,
    n: int,
    lease_ttl: float,
    m: int,
    pool: int | None,
    submitters: int,
) -> dict[str, Any]:
    with StoreEnv("postgres", tmp, pool, client_pool=max(4, submitters)) as env:
        store = env.store
        client = rf.Client(store)
        fleet = Fleet(env.spec, workers, lease_ttl, m, 0.01, tmp)
        try:
            inputs = {f"t{i}": i for i in range(n)}
            cpu0 = fleet.cpu_seconds()
            pg0, machine0, self0 = postgres_cpu_seconds(), machine_ticks(), time.process_time()
            items = list(inputs.items())

            def submit(part: int) -> None:
                for wid, x in items[part::submitters]:
                    client.start_instance("fleet_io", x, id=wid)

            start = time.perf_counter()
            with ThreadPoolExecutor(submitters) as pool_:
                list(pool_.map(submit, range(submitters)))
            submitted = time.perf_counter() - start
            stuck = wait_finished(store, list(inputs), timeout=max(60.0, n / 5))
            elapsed = time.perf_counter() - start
            cpu1 = fleet.cpu_seconds()
            pg1, machine1, self1 = postgres_cpu_seconds(), machine_ticks(), time.process_time()
            stuck_state = evidence(store, stuck) if stuck else []
            for wid in inputs:  # the client's own view: settled, commands applied
                if wid not in stuck:
                    client.wait(wid, timeout=10)
            checks = audit(client, store, inputs)
            metas = [x for x in store.list() if x.workflow_id in inputs]
            latency = sorted(x.updated_at - x.created_at for x in metas)
        finally:
            fleet.stop()
        cpu = [round((cpu1[o] - cpu0[o]) / elapsed, 2) for o in cpu0 if o in cpu1]
        row = emit(
            bench="throughput",
            store="postgres",
            workers=workers,
            max_workers=m,
            pg_pool_max_size=pool or 4,
            step_sleep_s=0.01,
            steps=3,
            lease_ttl=lease_ttl,
            poll_interval=0.05,
            instances=n,
            submitters=submitters,
            seconds=round(elapsed, 3),
            submit_to_settled_p50_s=round(latency[len(latency) // 2], 3),
            submit_to_settled_p90_s=round(latency[int(len(latency) * 0.9)], 3),
            submit_s=round(submitted, 3),
            instances_per_s=round((n - len(stuck)) / elapsed, 1),
            io_ceiling_instances_per_s=round(workers * m / (3 * 0.01), 1),
            worker_cpu_cores=cpu,
            postgres_cpu_cores=round((pg1 - pg0) / elapsed, 2),
            client_cpu_cores=round((self1 - self0) / elapsed, 2),
            machine_busy=round((machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1), 2),
            machine_cores=os.cpu_count(),
            other_processes_cpu_cores=round(
                (machine1[0] - machine0[0])
                / max(machine1[1] - machine0[1], 1)
                * (os.cpu_count() or 1)
                - sum(cpu)
                - (pg1 - pg0 + self1 - self0) / elapsed,
                2,
            ),
            stuck=len(stuck),
            **checks,
            **report_problems(fleet, f"throughput {workers}w"),
        )
        if stuck_state:
            note(f"throughput {workers}w: stuck instances: {json.dumps(stuck_state)}")
        return row


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--stores", default="sqlite,postgres", help="failover stores")
    parser.add_argument("--lease-ttl", type=float, default=2.0)
    parser.add_argument(
        "--max-workers",
        type=int,
        default=2,
        help="each worker's thread pool in the throughput runs (see the module doc)",
    )
    parser.add_argument(
        "--failover-max-workers", type=int, default=8, help="each worker's pool in failover"
    )
    parser.add_argument("--pg-pool", type=int, default=None, help="workers' Postgres pool size")
    parser.add_argument(
        "--submitters", type=int, default=4, help="threads sharing the Client to submit"
    )
    parser.add_argument("--worker-counts", default="1,2,3", help="throughput runs")
    parser.add_argument("--instances", type=int, default=None, help="per throughput run")
    parser.add_argument("--skip", default="", help="failover,throughput: parts to skip")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    emit(bench="env", python=sys.version.split()[0], cpus=os.cpu_count(), quick=args.quick)
    pg_problem = postgres_reachable() if "postgres" in stores or "throughput" not in skip else None
    if pg_problem:
        emit(bench="note", note=f"PostgreSQL unreachable at {PG_DSN}, skipped: {pg_problem}")
    with tempfile.TemporaryDirectory(prefix="rf-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        if "failover" not in skip:
            for kind in stores:
                if kind == "postgres" and pg_problem:
                    continue
                for mode in ("sigkill", "sigstop"):
                    failover(
                        kind,
                        mode,
                        tmp,
                        k=3,
                        n=12 if args.quick else 24,
                        lease_ttl=args.lease_ttl,
                        sleep=0.2,
                        m=args.failover_max_workers,
                    )
        if "throughput" not in skip and not pg_problem:
            n = args.instances or (150 if args.quick else 600)
            counts = sorted({1, *(int(c) for c in args.worker_counts.split(","))})
            rates = {}
            for workers in counts:
                row = throughput(
                    workers,
                    tmp,
                    n=n,
                    lease_ttl=args.lease_ttl,
                    m=args.max_workers,
                    pool=args.pg_pool,
                    submitters=args.submitters,
                )
                rates[workers] = row["instances_per_s"]
            emit(
                bench="throughput_ratio",
                store="postgres",
                instances=n,
                max_workers=args.max_workers,
                **{f"ratio_{w}_to_1": round(rates[w] / rates[1], 2) for w in counts if w > 1},
                target_2_to_1=1.6,
                within_target=rates[2] / rates[1] >= 1.6 if 2 in rates else None,
            )
    emit(bench="total", seconds=round(time.perf_counter() - started, 1))


if __name__ == "__main__":
    main()
