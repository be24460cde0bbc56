"""Scale-out benchmark: plates as tasks on Parsl's HighThroughputExecutor against local threads.

    .venv/bin/python benchmarks/scale_out.py [--only four,s3,many] [--many 25,50,100,200]
                                             [--rounds 3]

Every run is one fresh ``celltable convert`` process (``benchmarks/io_probe.py`` wraps the CLI
to record the main process's own I/O, peak memory and object-store requests); the harness of
``measure.py`` adds wall time and the peak memory of the whole process tree (main process,
Parsl's interchange and workers). One run each, ratios printed; the machine may be shared, so
figures are noisy: the runs a ratio compares run back to back, and each run records the load
average before it started (``load_before``), so a ratio measured while other work came or went
can be told apart. Results go to ``benchmarks/out/scale_out.json``.

Cases:
* ``four``: four generated 24-image SQLite plates (``plategen``), ``--partition-by plate``:
  threads; HTEX with 2 workers; the same HTEX command on a one-image plate (the main process's
  fixed I/O); HTEX ``--workers 2 --threads 2`` against ``--workers 1 --threads 1``. The four
  commands run back to back in each of ``--rounds`` rounds, timed without the memory sampler
  (it takes about 5% of a core, which a run keeping both cores busy loses and a one-core run
  does not), then threads and HTEX 2 workers again with it for the memory ratio; each ratio is
  the median of the rounds' ratios (all are kept). Outputs are compared table by table with the threads run.
  Memory is the RSS summed over the tree (shared pages once per process) and, at that peak,
  the PSS sum (shared pages once in all).
* ``s3``: the same plates in a bucket of a local S3 server (moto, 127.0.0.1), DEST in the bucket
  too: threads and HTEX 2 workers, each with an empty cache; the main process's ``GetObject``
  requests show whether it downloaded a plate.
* ``many``: 25 ... 200 one-image plates through HTEX 2 workers: the main process's peak memory
  and I/O per plate count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import run_measured  # noqa: E402
from benchmarks.plategen import generate_plates  # noqa: E402

PY = str(Path(sys.executable))
OUT = HERE / "out"
MiB = 2**20


def convert(name: str, src: str, dest: str, *extra: str, env: dict[str, str] | None = None,
            work: Path, sampled: bool = True) -> dict:
    """One measured run. ``sampled``: the process tree's memory is read every 50 ms (about 5%
    of a core, which a run keeping both cores busy loses and a one-core run does not); else
    only at the start, for a run timed undisturbed (its memory figures are then the main
    process's own)."""
    probe = work / f"{name}.io.json"
    load = round(os.getloadavg()[0], 1)
    cmd = [PY, str(HERE / "io_probe.py"), str(probe), "convert", src, dest, "--preset",
           "cellprofiler_sqlite", "--partition-by", "plate", "--overwrite", "--report", "-",
           *extra]
    m = run_measured(name, cmd, env={**os.environ, **(env or {})}, log_path=work / f"{name}.log",
                     timeout=1800, poll_interval=0.05 if sampled else 3600)
    if not m.ok:
        raise SystemExit(f"{name} failed ({m.error}); see {work / f'{name}.log'}")
    io = json.loads(probe.read_text())
    run = {"wall_s": round(m.wall_s, 2), "load_before": load, "reap_s": io["reap_s"],
           # the sum over the tree (polled) or the main process's own high-water mark: not the
           # kernel's largest-process figure, which counts this harness's own memory in (a
           # process started by fork and exec keeps its parent's size as its first peak)
           "peak_tree_mib": round(max(m.peak_rss_tree_bytes, io["peak_rss_bytes"]) / MiB),
           "pss_at_peak_tree_mib": round(m.pss_at_peak_tree_bytes / MiB),
           "cpu_tree_s": io["cpu_tree_s"], "cpu_main_s": io["cpu_main_s"],
           "main_peak_mib": round(io["peak_rss_bytes"] / MiB),
           "main_rchar_mib": round(io["io"]["rchar"] / MiB, 1),
           "main_wchar_mib": round(io["io"]["wchar"] / MiB, 1),
           "main_read_bytes_mib": round(io["io"]["read_bytes"] / MiB, 1),
           "main_write_bytes_mib": round(io["io"]["write_bytes"] / MiB, 1),
           "main_requests": io["requests"]}
    print(f"  {name:<24} {run['wall_s']:>7.2f} s  tree {run['peak_tree_mib']:>5} MiB "
          f"(PSS {run['pss_at_peak_tree_mib']:>4})  "
          f"main {run['main_peak_mib']:>4} MiB  main rchar+wchar "
          f"{run['main_rchar_mib'] + run['main_wchar_mib']:>7.1f} MiB  CPU {run['cpu_tree_s']:>5.1f} s "
          f"(main {run['cpu_main_s']:.1f})  reap {run['reap_s']:.2f} s  (load {load})", flush=True)
    return run


def same_tables(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    other = sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    return bool(files) and files == other and all(
        pq.read_table(a / f).equals(pq.read_table(b / f)) for f in files)


def case_four(work: Path, plates: Path, one: Path, rounds: int) -> dict:
    print(f"four 24-image SQLite plates, --partition-by plate, {rounds} round(s)", flush=True)
    r: dict = {"htex2_one_image": convert("htex2_one_image", str(one), str(work / "one-out"),
                                          "--executor", "htex", "--workers", "2", work=work)}
    commands = {
        "threads": (),
        "htex2": ("--executor", "htex", "--workers", "2"),
        "htex_w2t2": ("--executor", "htex", "--workers", "2", "--threads", "2"),
        "htex_w1t1": ("--executor", "htex", "--workers", "1", "--threads", "1"),
    }
    # Each round runs the four commands back to back, timed without the memory sampler, then
    # threads and HTEX 2 workers again with it (the memory ratio); a ratio is taken within a
    # round, and the median of the rounds' ratios is reported (this machine's run-to-run noise
    # is about 10%).
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    memory: dict[str, list[dict]] = {"threads": [], "htex2": []}
    for i in range(rounds):
        for name, extra in commands.items():
            runs[name].append(convert(f"{name}_{i}", str(plates), str(work / name), *extra,
                                      work=work, sampled=False))
        for name in memory:
            memory[name].append(convert(f"{name}_{i}_memory", str(plates),
                                        str(work / f"{name}-memory"), *commands[name],
                                        work=work))
    r["rounds"] = runs
    r["memory_rounds"] = memory
    io = lambda run: run["main_rchar_mib"] + run["main_wchar_mib"]  # noqa: E731

    def ratio(a: str, b: str, key: str, of: dict[str, list[dict]] = runs) -> dict:
        each = [round(x[key] / y[key], 2) for x, y in zip(of[a], of[b], strict=True)]
        return {"median": statistics.median(each), "rounds": each}

    r["ratios"] = {
        "main_io_over_one_image_mib (rchar+wchar)":
            round(max(io(x) for x in runs["htex2"]) - io(r["htex2_one_image"]), 1),
        "htex2_time_over_threads": ratio("htex2", "threads", "wall_s"),
        "htex2_tree_peak_over_threads": ratio("htex2", "threads", "peak_tree_mib", memory),
        "htex2_tree_pss_over_threads": ratio("htex2", "threads", "pss_at_peak_tree_mib", memory),
        "w1t1_time_over_w2t2": ratio("htex_w1t1", "htex_w2t2", "wall_s"),
        # the CPU seconds of the process trees: what a shared machine's ratios follow
        "htex2_cpu_over_threads": ratio("htex2", "threads", "cpu_tree_s"),
        "htex2_one_image_cpu_s": r["htex2_one_image"]["cpu_tree_s"],
        "w1t1_cpu_over_w2t2": ratio("htex_w1t1", "htex_w2t2", "cpu_tree_s"),
        "htex2_tables_equal_threads": same_tables(work / "threads", work / "htex2"),
        "w2t2_tables_equal_threads": same_tables(work / "threads", work / "htex_w2t2"),
    }
    print(json.dumps(r["ratios"], indent=1), flush=True)
    return r


def case_s3(work: Path, plates: Path) -> dict:
    print("S3 source and DEST on a local moto server (127.0.0.1)", flush=True)
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's log of every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    os.environ.update(env)
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        for f in sorted(plates.glob("*.sqlite")):
            s3.upload_file(str(f), "bench", f"src/{f.name}")
        r = {}
        for name, extra in (("s3_threads", ()), ("s3_htex2", ("--executor", "htex", "--workers", "2"))):
            cache = work / f"cache-{name}"
            r[name] = convert(name, "s3://bench/src", f"s3://bench/{name}", *extra, work=work,
                              env={**env, "CELLTABLE_LOCAL_CACHE_DIR": str(cache)})
            got = work / name
            for o in s3.list_objects_v2(Bucket="bench", Prefix=f"{name}/")["Contents"]:
                target = got / o["Key"].split("/", 1)[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file("bench", o["Key"], str(target))
        for run in (r["s3_threads"], r["s3_htex2"]):  # by operation: UploadPartCopy is server-side
            ops: dict[str, int] = {}
            for k, n in run["main_requests"].items():
                ops[k.split()[0]] = ops.get(k.split()[0], 0) + n
            run["main_operations"] = ops
        gets = {k: n for k, n in r["s3_htex2"]["main_requests"].items() if k.startswith("GetObject")}
        r["ratios"] = {
            "tables_equal": same_tables(work / "s3_threads", work / "s3_htex2"),
            "main_process_GetObject_requests_htex2": gets,
            "main_process_operations_htex2": r["s3_htex2"]["main_operations"],
            "main_process_operations_threads": r["s3_threads"]["main_operations"],
            "main_process_GetObject_requests_threads": sum(
                n for k, n in r["s3_threads"]["main_requests"].items() if k.startswith("GetObject")),
            "htex2_time_over_threads": round(r["s3_htex2"]["wall_s"] / r["s3_threads"]["wall_s"], 2),
        }
        print(json.dumps(r["ratios"], indent=1), flush=True)
        return r
    finally:
        server.stop()


def case_many(work: Path, counts: list[int]) -> dict:
    print("many one-image plates through HTEX, 2 workers", flush=True)
    r = {}
    for n in counts:
        src = work / f"many-{n}"
        generate_plates(src, "sqlite", plates=n, images=1, cells_per_image=20, features=20)
        r[n] = convert(f"many_{n}", str(src), str(work / f"many-{n}-out"), "--executor", "htex",
                       "--workers", "2", work=work)
        r[n]["per_plate_s"] = round(r[n]["wall_s"] / n, 3)
        shutil.rmtree(src)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="four,s3,many")
    ap.add_argument("--many", default="25,50,100,200")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four-plate runs")
    args = ap.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-out-", dir=OUT))
    plates, one = work / "plates", work / "one"
    cases = args.only.split(",")
    results: dict = {"machine": f"{os.cpu_count()} cores, shared with other work: figures are noisy"}
    if "four" in cases or "s3" in cases:
        generate_plates(plates, "sqlite", plates=4, images=24)
        generate_plates(one, "sqlite", plates=1, images=1)
    if "four" in cases:
        results["four"] = case_four(work, plates, one, args.rounds)
    if "s3" in cases:
        results["s3"] = case_s3(work, plates)
    if "many" in cases:
        results["many"] = case_many(work, [int(n) for n in args.many.split(",")])
    (OUT / "scale_out.json").write_text(json.dumps(results, indent=1))
    print(f"results: {OUT / 'scale_out.json'}; work folder {work} (remove when done)")


if __name__ == "__main__":
    main()
