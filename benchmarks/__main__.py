"""``./dev bench``: this backend, pynenc-redis 0.3.0's and pynenc's SQLite one, side by side.

Starts an embedded Redis Stack (free port, nothing on disk), loads the same seeded dataset
into the three backends of one process, checks every answer against the dataset, times each
call alternating the backends (A, B, C, A, B, C, ...), and writes the markdown table, a JSON
file with every number and the log-log plot. Exits 1 if any answer was wrong.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import redis
from tqdm import tqdm

from benchmarks import dataset, pynmon_pages
from benchmarks.backends import Subject, build_subjects, load
from benchmarks.calls import CallSpec, calls
from benchmarks.measure import (
    SERVER_USEC,
    RoundTripCounter,
    command_counts,
    commands_between,
    machine,
    server_facts,
    summarise,
)
from benchmarks.report import CallResult, SizeResult, markdown, plot, write_json

PYNENC03_PYTHON = Path(".venv-pynenc03/bin/python")
"""The pynenc 0.3 line's interpreter (``./dev test03``'s venv: pynenc 0.3.1, pynenc-redis 0.3.0)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000], help="dataset sizes n")
    parser.add_argument("--million", action="store_true", help="also run n = 1 000 000")
    parser.add_argument(
        "--repeat",
        type=int,
        default=100,
        help="repetitions of a cheap call per backend (slow calls do fewer)",
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="measure only the calls whose name contains one of these (e.g. get_history pynmon); "
        "for iterating on one path: the README's numbers come from a full run",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output directory")
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="instead: the start cost of a new process, then tasks/s end to end with every pynenc "
        "runner, redis_stack(components='all') against pynenc's SQLite components "
        "(benchmarks/throughput.py)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--throughput: fewer calls per measurement (about ten minutes in all on 2 cores)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="--throughput: seconds one measurement may take"
    )
    parser.add_argument(
        "--pynenc03",
        nargs="?",
        type=Path,
        const=PYNENC03_PYTHON,
        metavar="PYTHON",
        help="--throughput on the pynenc 0.3 line instead: this package's state backend against "
        "pynenc-redis 0.3.0's, both with pynenc-redis's other components, runners on PYTHON "
        f"(default {PYNENC03_PYTHON}, which ./dev bench builds); writes throughput-pynenc03.*",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="--throughput on a 3-master loopback cluster instead: a task's writes (no queries) from "
        "1, 2 and 4 writer processes, against one embedded server in the same run; writes "
        "throughput-cluster.* (benchmarks/cluster_writes.py)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="--throughput: measurements of each row per composition, alternating which goes "
        "first; tasks/s is then the median of the rounds'",
    )
    args = parser.parse_args(argv)
    if (args.quick or args.pynenc03 or args.cluster or args.rounds != 1) and not args.throughput:
        parser.error("--quick, --pynenc03, --cluster and --rounds apply to --throughput only")
    if args.cluster and args.pynenc03:
        parser.error("--cluster runs on this package's components only, not with --pynenc03")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.pynenc03 and not args.pynenc03.exists():
        parser.error(
            f"--pynenc03: no interpreter at {args.pynenc03} (./dev bench --throughput --pynenc03 builds it)"
        )
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.million and 1_000_000 not in args.sizes:
        args.sizes.append(1_000_000)
    for n in args.sizes:
        if n < dataset.CHUNK or n % dataset.CHUNK:
            parser.error(f"--sizes: {n} is not a positive multiple of {dataset.CHUNK}")
    return args


def balanced_orders(subjects: list[Subject]) -> list[tuple[Subject, ...]]:
    """The orders the backends run in, one per repetition in turn: every permutation.

    Alternating spreads drift and noise over all backends, but which call runs right before
    matters too (the caches it leaves): with the order fixed (ours first), single-command
    calls of 0.1-0.3 ms measured 1.1-1.4x pynenc-redis's where a loop alternating two
    backends measured 0.94-1.05x; rotating the first backend still put ours right after
    SQLite's call in two repetitions of three and pynenc-redis's right after ours (both on
    redis-py) in two of three, and measured 1.04-1.18 where the two alone measured 0.88-0.96.
    Over all permutations each backend follows each other equally often.
    """
    return list(itertools.permutations(subjects))


COUNTED_CALLS = 20
"""Repetitions whose Redis commands are counted (``INFO commandstats`` before and after each)."""


def measure_call(
    spec: CallSpec,
    subjects: list[Subject],
    data: dataset.Dataset,
    repeat: int,
    seed: int,
    client: redis.Redis,
    round_trips: RoundTripCounter,
) -> dict[str, CallResult]:
    """Time every repetition, alternating the backends, and check every answer; then count
    the Redis commands of the first :data:`COUNTED_CALLS` repetitions in a pass of their own."""
    rng = random.Random(seed * 1_000_003 + zlib.crc32(spec.name.encode()))
    arguments = [spec.draw(data, rng) for _ in range(spec.repeats(repeat))]
    runs = [s for s in subjects if spec.runs_on(s.name, data.n)]
    samples: dict[str, list[int]] = {s.name: [] for s in runs}
    trips: dict[str, int] = {s.name: 0 for s in runs}
    commands: dict[str, Counter[str]] = {s.name: Counter() for s in runs}
    checks: dict[str, CallResult] = {s.name: CallResult(summary=None) for s in runs}
    orders = balanced_orders(runs)
    for rep, argument in enumerate(tqdm(arguments, desc=f"{spec.name} n={data.n}", unit="rep", leave=False)):
        for subject in orders[rep % len(orders)]:
            held = argument if spec.prepare is None else spec.prepare(subject, data, argument)
            # The round-trip counter (client side) is active for every backend.
            with round_trips.counting():
                started = time.perf_counter_ns()
                answer = spec.invoke(subject, data, held)
                samples[subject.name].append(time.perf_counter_ns() - started)
            trips[subject.name] += round_trips.count
            problem = spec.check(subject, data, argument, answer)
            checks[subject.name].record(problem, spec.known_deviation(subject.name, problem))
    # Commands per call in their own pass: an INFO commandstats right before a timed call left
    # the server's caches cold for it (RedisJSON's code and data more than GET's): JSON.GET
    # measured 13-17 µs of server time after an INFO, 4.5-5.5 µs back to back.
    counted = arguments[:COUNTED_CALLS]
    for subject in runs:
        if subject.on_redis:
            for argument in counted:
                held = argument if spec.prepare is None else spec.prepare(subject, data, argument)
                before = command_counts(client)
                spec.invoke(subject, data, held)
                commands[subject.name].update(commands_between(before, command_counts(client)))
    results: dict[str, CallResult] = {}
    for subject in subjects:
        if subject not in runs:
            results[subject.name] = CallResult(summary=None, not_run=spec.not_run_reason)
            continue
        calls_made = len(samples[subject.name])
        result = checks[subject.name]
        result.summary = summarise(samples[subject.name])
        if subject.on_redis:
            server_usec = commands[subject.name].pop(SERVER_USEC, 0)
            result.server_ms_per_call = server_usec / 1000 / len(counted)
            result.commands_per_call = sum(commands[subject.name].values()) / len(counted)
            result.round_trips_per_call = trips[subject.name] / calls_made
            result.commands = {
                name: total / len(counted) for name, total in sorted(commands[subject.name].items())
            }
        results[subject.name] = result
    return results


def measure_pages(
    subjects: list[Subject], data: dataset.Dataset, repeat: int, seed: int
) -> dict[str, dict[str, CallResult]]:
    pages = pynmon_pages.pages(data, random.Random(seed))
    out: dict[str, dict[str, CallResult]] = {}
    reps = max(3, repeat // 10)
    with pynmon_pages.monitor(subjects) as (pynmon_app, client):
        for page in pages:
            for subject in subjects:
                pynmon_pages.register(subject, data, page)
            samples: dict[str, list[int]] = {s.name: [] for s in subjects}
            results = {s.name: CallResult(summary=None) for s in subjects}
            orders = balanced_orders(subjects)
            for rep in tqdm(range(reps), desc=f"{page.name} n={data.n}", unit="rep", leave=False):
                for subject in orders[rep % len(orders)]:
                    elapsed, problem = pynmon_pages.request(pynmon_app, client, subject, page)
                    samples[subject.name].append(elapsed)
                    results[subject.name].record(problem, known=None)
            for name, result in results.items():
                result.summary = summarise(samples[name])
            out[page.name] = results
    return out


def run_size(
    n: int,
    args: argparse.Namespace,
    url: str,
    client: redis.Redis,
    round_trips: RoundTripCounter,
    workdir: Path,
) -> SizeResult:
    started = time.perf_counter()
    data = dataset.build(n, args.seed)
    subjects = build_subjects(url, f"bench-n{n}", workdir / f"n{n}")
    (workdir / f"n{n}").mkdir(parents=True, exist_ok=True)
    size = SizeResult(n=n)
    for subject in subjects:
        load(subject, data, client)
        size.record_load(subject)
        print(f"loaded {subject.name} n={n} in {subject.load_seconds:.1f} s", file=sys.stderr)
    specs = [spec for spec in calls() if _selected(args, spec.name)]
    size.targets = {spec.name: spec.target for spec in specs if spec.target is not None}
    size.targets.update(dict.fromkeys(pynmon_pages.PAGE_NAMES, pynmon_pages.TARGET))
    reads = [spec for spec in specs if not spec.name.startswith(("upsert", "add_histories"))]
    writes = [spec for spec in specs if spec not in reads]
    for spec in reads:
        size.calls[spec.name] = measure_call(
            spec, subjects, data, args.repeat, args.seed, client, round_trips
        )
    if _selected(args, "pynmon"):
        size.calls.update(measure_pages(subjects, data, args.repeat, args.seed))
    for spec in writes:  # last: they add history the reads' truth does not have
        size.calls[spec.name] = measure_call(
            spec, subjects, data, args.repeat, args.seed, client, round_trips
        )
    for subject in subjects:
        subject.backend.purge()
    print(f"n={n} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return size


def _selected(args: argparse.Namespace, name: str) -> bool:
    return not args.only or any(text in name for text in args.only)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("pynenc").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.throughput and args.cluster:
        from benchmarks import cluster_writes

        cluster_writes.run(args.quick, args.out, args.timeout, args.rounds)
        return 0
    if args.throughput:
        from benchmarks import throughput

        return throughput.run(args.quick, args.out, args.timeout, args.pynenc03, args.rounds)
    from pynenc_redis_stack.server import EmbeddedRedisStack

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pynenc-redis-stack-bench-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedRedisStack(workdir / "redis", persistent=False)
        url = server.start()
        round_trips = RoundTripCounter(int(url.rsplit(":", 1)[1].split("/")[0]))
        round_trips.install()
        client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
        try:
            facts = {**machine(), **server_facts(client)}
            sizes: list[SizeResult] = []
            for n in sorted(args.sizes):
                size = run_size(n, args, url, client, round_trips, workdir)
                sizes.append(size)
                table = markdown(size, facts)
                print(table)
                (args.out / f"results-n{n}.md").write_text(table)
        finally:
            round_trips.uninstall()
            client.close()
            server.stop()
    facts["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.out / "results.json", sizes, facts)
    plot(args.out / "bench.png", sizes)
    print(
        f"wrote {args.out}/results-n*.md, results.json, bench.png in {facts['total_seconds']:.0f} s",
        file=sys.stderr,
    )
    for problem in (problem for size in sizes for problem in size.mismatches):
        print(f"MISMATCH {problem}", file=sys.stderr)
    return 1 if any(size.wrong_answers for size in sizes) else 0


if __name__ == "__main__":
    sys.exit(main())
