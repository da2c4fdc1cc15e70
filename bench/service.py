"""The service's cost: read endpoints on a 1,000-trial study, and a study run through the
service against the same study run by `groupwise launch`, on the same storage.

    python bench/service.py [--storage sqlite|postgresql] [--requests 40] [--trials 40]
        [--repeats 5]

1. Reads: a real 20-trial study is run, then copied 50 times over into a 1,000-trial study
   (Optuna's add_trials, groupwise's attributes kept); `groupwise serve` runs on it and each
   read endpoint is asked ``--requests`` times by 4 client threads: requests/s, p50, p99.
2. Overhead: one study of ``--trials`` trials run by `groupwise launch`, and the same study
   (another name) submitted to the service and run as its job, followed as `launch --server`
   follows it (a status request a second); ``--repeats`` times each, alternated, as one run
   varies by +-25% on its own. Seconds per trial, from the first trial's start to the last
   trial's end in the database (start-up of Ray and the workers excluded on both sides), the
   whole run, and the median ratios. The server's first job, which starts its Ray head, runs
   before and is timed apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_service import FULL, READ, Server  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = ROOT / "search_spaces" / "seeds_mixed.yaml"


def study_yaml(name: str, trials: int) -> str:
    return (
        f"name: {name}\ntask: digits_mlp\nsearch_space: seeds_mixed.yaml\n"
        f"budget: {{trials: {trials}}}\n"
        "training: {epochs: 1, steps_per_epoch: 2, batch_size: 32}\n"
        "sampler: {name: random}\npruner: none\nworkers: {count: 2}\nseed: 0\n"
    )


def launch(work: Path, name: str, trials: int, storage: str) -> float:
    (work / f"{name}.yaml").write_text(study_yaml(name, trials))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "groupwise", "launch", f"{name}.yaml", "--storage", storage],
        cwd=work,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def submit_and_follow(client: httpx.Client, name: str, trials: int) -> float:
    """Submit a study and poll it as `groupwise launch --server` follows one (every second)
    until it finishes: seconds from submit to finished, as the job's record says."""
    text = study_yaml(name, trials)
    answer = client.post("/studies", content=text, headers={"Content-Type": "application/yaml"})
    assert answer.status_code == 201, answer.text
    while (body := client.get(f"/studies/{name}").json())["state"] != "finished":
        time.sleep(1.0)
    # the job's own record, not the poll, so the second between polls is not counted
    ended, submitted = (dt.datetime.fromisoformat(body[k]) for k in ("ended_at", "submitted_at"))
    return (ended - submitted).total_seconds()


def per_trial(storage: str, name: str) -> float:
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return (end - start).total_seconds() / len(trials)


def big_study(storage: str, work: Path) -> None:
    launch(work, "small", 20, storage)
    small = optuna.load_study(study_name="small", storage=storage)
    big = optuna.create_study(study_name="big", storage=storage, direction="minimize")
    for key, value in small.user_attrs.items():
        big.set_user_attr(key, value)
    trials = small.get_trials()
    big.add_trials([trials[i % len(trials)] for i in range(1000)])


def hammer(url: str, path: str, token: str, count: int, threads: int = 4) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as c:
            for _ in range(n):
                t = time.perf_counter()
                response = c.get(path)
                elapsed = time.perf_counter() - t
                assert response.status_code == 200, response.text
                with lock:
                    latencies.append(elapsed)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(count // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def postgres_url() -> str:
    import uuid

    import sqlalchemy

    admin = os.environ.get(
        "GROUPWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"groupwise_bench_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    return (
        sqlalchemy.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"bench/service.py: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, storage {args.storage}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "seeds_mixed.yaml").write_text(SPACE.read_text())
        storage = f"sqlite:///{work}/bench.db" if args.storage == "sqlite" else postgres_url()
        big_study(storage, work)
        server = Server(storage, work).start()
        try:
            print(f"\nreads on a 1,000-trial study ({args.requests} requests, 4 threads):")
            print(f"  {'endpoint':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for path in [
                "/health",
                "/studies",
                "/studies/big",
                "/studies/big/trials?limit=100",
                "/studies/big/best?top=5",
                "/studies/big/config",
                "/studies/big/compare?by=scheme",
            ]:
                token = READ if path != "/health" else FULL
                r = hammer(server.url, path, token, args.requests)
                print(f"  GET {path:<38} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}")

            with server.client() as client:
                # the server's first job starts its Ray head; timed apart, as a server pays
                # it once, not per study
                head_wall = submit_and_follow(client, "first-job", 2)
                walls: list[tuple[float, float]] = []
                for i in range(args.repeats):  # alternated: the machine's drift hits both
                    cli_wall = launch(work, f"by-cli-{i}", args.trials, storage)
                    walls.append(
                        (cli_wall, submit_and_follow(client, f"by-service-{i}", args.trials))
                    )
        finally:
            server.kill()
        print(f"\nthe server's first job (2 trials, starting its Ray head): {head_wall:.1f} s")
        print(
            f"\n{args.trials}-trial study, {args.repeats} runs each, alternated; seconds per trial "
            "(first start to last end) and whole run (launch command / submit to finished):"
        )
        ratios, end_ratios = [], []
        for i, (cli_wall, service_wall) in enumerate(walls):
            cli = per_trial(storage, f"by-cli-{i}")
            service = per_trial(storage, f"by-service-{i}")
            ratios.append(service / cli)
            end_ratios.append(service_wall / cli_wall)
            print(
                f"  run {i}: launch {cli:.3f} s/trial ({cli_wall:.1f} s), service {service:.3f} "
                f"s/trial ({service_wall:.1f} s): {service / cli:.2f}x per trial, "
                f"{service_wall / cli_wall:.2f}x whole"
            )
        print(
            f"  median ratio service / launch: {statistics.median(ratios):.2f}x per trial, "
            f"{statistics.median(end_ratios):.2f}x whole run"
        )


if __name__ == "__main__":
    main()
