"""Side-by-side benchmark: celltable vs CytoTable vs one hand-written DuckDB query.

    .venv/bin/python benchmarks/run.py --sizes 24,96 --format sqlite

For each size (number of images on a generated plate) this generates the plate once with
``benchmarks/plategen.py`` (cached under ``benchmarks/out/plates``), then runs, one after another
and each in a fresh process:

* celltable (``--celltable-cmd``, by default ``.venv/bin/celltable convert SRC DEST --preset P
  --overwrite``);
* CytoTable 1.2.6 at its preset's default chunk size (1000) and at 10,000, in its own venv
  (created on first use, offline-ready; see ``cytotable_runner.py``);
* the DuckDB single query (``duckdb_single_query.py``), the practical lower bound (and, with
  ``--tools ...,query-unordered``, the same query without its ORDER BY).

It prints a table (time, peak RSS of the process tree, output size, rows, columns) and ratios,
writes everything to ``benchmarks/out/results.json``, and, when matplotlib is available (here or
in the CytoTable venv), plots time and peak memory per size to ``docs/benchmarks.png``.

Real data instead of generated plates: ``--source PATH`` (repeatable; a .sqlite file or a folder
of CellProfiler CSVs). A failing tool is recorded and the others still run. Benchmarks never gate
CI: the exit code is 0 unless the harness itself breaks (``--strict`` makes failures count).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

DEFAULT_CELLTABLE_CMD = (
    shlex.quote(str(REPO / ".venv" / "bin" / "celltable"))
    + " convert {src} {dest} --preset {preset} --overwrite"
)
PRESETS = {"sqlite": "cellprofiler_sqlite", "csv": "cellprofiler_csv"}
MiB = 1024 * 1024


# --------------------------------------------------------------------------- helpers


def _warm(path: Path) -> None:
    """Read the source once so every tool starts with the same (warm) page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with f.open("rb") as fh:
            while fh.read(16 * MiB):
                pass


def _abs_if_path(token: str) -> str:
    """Commands run in a scratch directory: make relative paths that exist absolute."""
    if not token.startswith("-") and not Path(token).is_absolute() and Path(token).exists():
        return str(Path(token).absolute())  # not resolve(): keep venv symlinks
    return token


def _detect_format(src: Path) -> str:
    if src.is_file():
        return "sqlite"
    if any(src.rglob("Cytoplasm.csv")):
        return "csv"
    return "sqlite"


def _sqlite_file(src: Path) -> Path:
    """celltable/CytoTable accept the file; the plate generator may give a folder with one."""
    if src.is_dir():
        dbs = sorted(src.glob("*.sqlite"))
        if len(dbs) == 1:
            return dbs[0]
    return src


def _generate(
    size: int, fmt: str, args: argparse.Namespace, plates_dir: Path
) -> tuple[Path | None, str | None, dict[str, Any]]:
    """Generate (or reuse) a plate; returns (path, error, plategen's PlateStats as a dict)."""
    name = f"plate-{fmt}-i{size}-c{args.cells_per_image}-f{args.features}-s{args.seed}"
    target = plates_dir / (name + (".sqlite" if fmt == "sqlite" else ""))
    done = plates_dir / (name + ".done")
    if done.exists() and target.exists() and not args.regenerate:
        return target, None, json.loads(done.read_text())
    try:
        from plategen import generate_plate  # written alongside this harness
    except Exception as exc:
        return None, f"benchmarks/plategen.py not importable: {exc!r}", {}
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    done.unlink(missing_ok=True)
    plates_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        kwargs: dict[str, Any] = {
            "images": size,
            "cells_per_image": args.cells_per_image,
            "features": args.features,
            "seed": args.seed,
            "workers": args.gen_workers,
        }
        accepted = inspect.signature(generate_plate).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in accepted or k != "workers"}
        stats = generate_plate(target, fmt=fmt, **kwargs)
    except Exception as exc:
        return None, f"plate generation failed: {exc!r}", {}
    try:
        from dataclasses import asdict

        info = asdict(stats)
    except TypeError:
        info = {}
    info["generate_s"] = time.perf_counter() - t0
    done.write_text(json.dumps(info, default=str))
    return target, None, info


def _fmt_num(v: float | None, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# --------------------------------------------------------------------------- one case


def run_case(
    label: str,
    src: Path,
    fmt: str,
    args: argparse.Namespace,
    out_dir: Path,
    ct_info: dict[str, str] | None,
    ct_error: str | None,
) -> dict[str, Any]:
    from measure import Measurement, run_measured

    preset = PRESETS[fmt]
    conv_src = _sqlite_file(src) if fmt == "sqlite" else src
    case_dir = out_dir / "runs" / label
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    tools = set(args.tools.split(","))
    results: list[dict[str, Any]] = []

    def record(m: Measurement, **extra: Any) -> None:
        logged: dict[str, Any] = {}
        if m.log_path and Path(m.log_path).exists():
            # The runners print one JSON line with their in-process timings.
            for line in reversed(Path(m.log_path).read_text(errors="replace").splitlines()):
                if line.startswith("{") and line.endswith("}"):
                    try:
                        logged = json.loads(line)
                    except ValueError:
                        pass
                    break
        m.extra.update({**logged, **extra})
        if m.log_path and Path(m.log_path).exists():
            if not m.ok:
                tail = Path(m.log_path).read_text(errors="replace").strip().splitlines()[-3:]
                m.extra["log_tail"] = tail
        d = m.to_dict()
        results.append(d)
        status = "ok" if m.ok else "FAILED"
        print(
            f"  {m.tool:<32} {status:<6} {m.wall_s:8.2f} s  "
            f"{m.peak_rss_bytes / MiB:9.1f} MiB  rows={m.rows}"
            + ("" if m.ok else f"  ({m.error})"),
            flush=True,
        )
        if not m.ok and m.extra.get("log_tail"):
            for line in m.extra["log_tail"]:
                print(f"      | {line[:200]}", flush=True)
        if not args.keep_outputs and m.output_path:
            p = Path(m.output_path)
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    for rep in range(args.repeat):
        suffix = f"-r{rep}" if args.repeat > 1 else ""
        if not args.no_warm:
            _warm(src)

        if "celltable" in tools:
            dest = case_dir / f"celltable{suffix}.parquet"
            cmd = [
                _abs_if_path(part.format(src=conv_src, dest=dest, preset=preset))
                for part in shlex.split(args.celltable_cmd)
            ]
            wd = Path(tempfile.mkdtemp(prefix="celltable-", dir=case_dir))
            m = run_measured(
                "celltable",
                cmd,
                output=dest,
                cwd=wd,
                timeout=args.timeout,
                log_path=case_dir / f"celltable{suffix}.log",
            )
            record(m, repeat=rep)

        if "cytotable" in tools:
            for cs in args.cytotable_chunk_sizes:
                name = f"cytotable (chunk {cs or 1000}{', default' if cs is None else ''})"
                slug = f"cytotable-{'default' if cs is None else cs}{suffix}"
                dest = case_dir / f"{slug}.parquet"
                log = case_dir / f"{slug}.log"
                if ct_info is None:
                    m = Measurement.failed(name, [], f"CytoTable venv unavailable: {ct_error}")
                    record(m, repeat=rep, chunk_size=cs)
                    continue
                from cytotable_runner import runner_command

                wd = Path(tempfile.mkdtemp(prefix="cytotable-", dir=case_dir))
                cmd, env = runner_command(
                    ct_info,
                    source=conv_src,
                    dest=dest,
                    preset=preset,
                    chunk_size=cs,
                    executor=args.cytotable_executor,
                    run_dir=wd,
                )
                m = run_measured(
                    name, cmd, output=dest, cwd=wd, env=env, timeout=args.timeout, log_path=log
                )
                record(m, repeat=rep, chunk_size=cs or 1000, executor=args.cytotable_executor)

        for key, name, flags in (
            ("query", "duckdb single query", []),
            ("query-unordered", "duckdb query, no ORDER BY", ["--no-order"]),
        ):
            if key not in tools:
                continue
            dest = case_dir / f"duckdb-{key}{suffix}.parquet"
            cmd = [
                args.query_python,
                str(HERE / "duckdb_single_query.py"),
                str(src),
                str(dest),
                "--format",
                fmt,
                *flags,
            ]
            m = run_measured(
                name,
                cmd,
                output=dest,
                cwd=case_dir,
                timeout=args.timeout,
                log_path=case_dir / f"duckdb-{key}{suffix}.log",
            )
            record(m, repeat=rep)

    return {"label": label, "source": str(src), "format": fmt, "preset": preset, "runs": results}


def summarize(case: dict[str, Any], expected_rows: int | None = None) -> dict[str, Any]:
    """Best (fastest) successful run per tool, and the ratios."""
    best: dict[str, dict[str, Any]] = {}
    for r in case["runs"]:
        if not r["ok"]:
            best.setdefault(r["tool"], r)
            continue
        cur = best.get(r["tool"])
        if cur is None or not cur["ok"] or r["wall_s"] < cur["wall_s"]:
            best[r["tool"]] = r
    ct_ok = [r for t, r in best.items() if t.startswith("cytotable") and r["ok"]]
    # CytoTable's best time and best (lowest) peak, each over its chunk-size settings.
    ct_fast = min(ct_ok, key=lambda r: r["wall_s"], default=None)
    ct_lean = min(ct_ok, key=lambda r: r["peak_rss_bytes"], default=None)
    ct_time = ct_fast["wall_s"] if ct_fast else None
    ct_peak = ct_lean["peak_rss_bytes"] if ct_lean else None
    cel = best.get("celltable")
    cel_t = cel["wall_s"] if cel and cel["ok"] else None
    cel_p = cel["peak_rss_bytes"] if cel and cel["ok"] else None
    q = best.get("duckdb single query")
    q_t = q["wall_s"] if q and q["ok"] else None
    rows = {t: r["rows"] for t, r in best.items() if r["ok"]}
    return {
        "best": best,
        "cytotable_best_time_s": ct_time,
        "cytotable_best_peak_bytes": ct_peak,
        "cytotable_best_time_tool": ct_fast["tool"] if ct_fast else None,
        "cytotable_best_peak_tool": ct_lean["tool"] if ct_lean else None,
        "ratios": {
            "cytotable_best_time / celltable_time": _ratio(ct_time, cel_t),
            "celltable_peak / cytotable_best_peak": _ratio(cel_p, ct_peak),
            "celltable_time / single_query_time": _ratio(cel_t, q_t),
        },
        "rows_agree": len(set(rows.values()) | ({expected_rows} if expected_rows else set())) <= 1,
        "rows": rows,
        "expected_rows": expected_rows,
    }


def _work_s(run: dict[str, Any]) -> float | None:
    """In-process time of the conversion itself, when the tool reports it (no start-up)."""
    extra = run.get("extra") or {}
    for key in ("convert_s", "query_s"):
        if isinstance(extra.get(key), (int, float)):
            return float(extra[key])
    return None


def print_table(case: dict[str, Any], summary: dict[str, Any]) -> None:
    print(f"\n== {case['label']}  ({case['format']}, preset {case['preset']})")
    hdr = (
        f"{'tool':<32} {'time s':>8} {'work s':>7} {'peak MiB':>9} {'out MiB':>8} "
        f"{'rows':>9} {'cols':>6}  status"
    )
    print(hdr)
    print("-" * len(hdr))
    for tool, r in summary["best"].items():
        out = None if r["output_bytes"] is None else r["output_bytes"] / MiB
        print(
            f"{tool:<32} {_fmt_num(r['wall_s'] if r['ok'] else None):>8} "
            f"{_fmt_num(_work_s(r) if r['ok'] else None):>7} "
            f"{_fmt_num(r['peak_rss_bytes'] / MiB if r['ok'] else None, 1):>9} "
            f"{_fmt_num(out):>8} {r['rows'] if r['rows'] is not None else '-':>9} "
            f"{r['columns'] if r['columns'] is not None else '-':>6}  "
            f"{'ok' if r['ok'] else r['error']}"
        )
    notes = {
        "cytotable_best_time / celltable_time": summary.get("cytotable_best_time_tool"),
        "celltable_peak / cytotable_best_peak": summary.get("cytotable_best_peak_tool"),
    }
    for k, v in summary["ratios"].items():
        note = f"   (CytoTable best: {notes[k]})" if notes.get(k) else ""
        print(f"  {k:<40} {_fmt_num(v):>6}{note}")
    if not summary["rows_agree"]:
        print(
            f"  WARNING: row counts differ: {summary['rows']}"
            f" (plate generator expects {summary['expected_rows']})"
        )


# --------------------------------------------------------------------------- plot


def plot(results: dict[str, Any], path: Path) -> str:
    """PNG of time and peak memory per case; returns a status message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        # Try the CytoTable venv, where set-up installs matplotlib when it can.
        from cytotable_runner import DEFAULT_VENV

        py = Path(results.get("cytotable_venv") or DEFAULT_VENV) / "bin" / "python"
        if not py.exists() or os.environ.get("_CELLTABLE_BENCH_PLOT_CHILD"):
            return "matplotlib unavailable: plot skipped"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(results, fh)
        env = dict(os.environ, _CELLTABLE_BENCH_PLOT_CHILD="1")
        r = subprocess.run(
            [str(py), __file__, "--plot-only", fh.name, "--plot", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        Path(fh.name).unlink(missing_ok=True)
        return (r.stdout.strip() or r.stderr.strip()[-300:]) or "plot subprocess done"

    cases = results["cases"]
    if not cases:
        return "nothing to plot"
    labels = [c["label"] for c in cases]
    # One line per tool (each CytoTable chunk size separately: its fastest and its leanest
    # setting are usually not the same one).
    names: list[str] = []
    for c in cases:
        for n in c["summary"]["best"]:
            if n not in names:
                names.append(n)
    series: dict[str, tuple[list[float | None], list[float | None]]] = {n: ([], []) for n in names}
    for c in cases:
        b = c["summary"]["best"]
        for n in names:
            r = b.get(n)
            ok = bool(r and r["ok"])
            series[n][0].append(r["wall_s"] if ok else None)
            series[n][1].append(r["peak_rss_bytes"] / MiB if ok else None)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = list(range(len(labels)))
    for n, (ts, ps) in series.items():
        style = "--" if n.startswith("cytotable") else ("-." if "ORDER BY" in n else "-")
        for ax, ys in ((axes[0], ts), (axes[1], ps)):
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=n)
    axes[0].set_ylabel("wall time (s)")
    axes[1].set_ylabel("peak RSS of process tree (MiB)")
    for ax in axes:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    m = results.get("machine", {})
    fig.suptitle(
        f"celltable vs CytoTable {results.get('cytotable_version', '')} "
        f"({m.get('cpus', '?')} CPUs, {m.get('mem_gib', '?')} GiB)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot written to {path}"


# --------------------------------------------------------------------------- main


def _chunk_sizes(s: str) -> list[int | None]:
    out: list[int | None] = []
    for part in s.split(","):
        part = part.strip()
        if part:
            out.append(None if part == "default" else int(part))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--sizes", default="", help="comma-separated image counts to generate, e.g. 24,96"
    )
    ap.add_argument(
        "--format", choices=["sqlite", "csv"], default="sqlite", help="generated format"
    )
    ap.add_argument("--cells-per-image", type=int, default=300)
    ap.add_argument("--features", type=int, default=600, help="measurements per compartment")
    ap.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regenerate", action="store_true", help="ignore cached generated plates")
    ap.add_argument(
        "--source",
        action="append",
        default=[],
        help="existing CellProfiler output (.sqlite file or CSV folder); repeatable",
    )
    ap.add_argument(
        "--tools",
        default="celltable,cytotable,query",
        help="comma list of celltable, cytotable, query, query-unordered (the single query "
        "without its ORDER BY)",
    )
    ap.add_argument(
        "--celltable-cmd",
        default=os.environ.get("CELLTABLE_BENCH_CMD", DEFAULT_CELLTABLE_CMD),
        help="command template with {src} {dest} {preset} (env CELLTABLE_BENCH_CMD)",
    )
    ap.add_argument("--cytotable-venv", default=None, help="default benchmarks/.venvs/cytotable")
    ap.add_argument(
        "--cytotable-chunk-sizes",
        type=_chunk_sizes,
        default=[None, 10000],
        help="comma list; 'default' = the preset's (1000). Default: default,10000",
    )
    ap.add_argument(
        "--cytotable-executor",
        choices=["threads", "htex"],
        default="threads",
        help="Parsl executor for CytoTable (threads: local ThreadPoolExecutor)",
    )
    ap.add_argument("--query-python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest is reported")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--no-warm", action="store_true", help="do not pre-read the source")
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--out-dir", default=str(HERE / "out"))
    ap.add_argument("--json", default=None, help="results file (default OUT_DIR/results.json)")
    ap.add_argument("--plot", default=str(REPO / "docs" / "benchmarks.png"))
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument(
        "--plot-only", metavar="JSON", help="only (re)draw the plot from a results file"
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 if any tool failed")
    args = ap.parse_args(argv)

    if args.plot_only:
        print(plot(json.loads(Path(args.plot_only).read_text()), Path(args.plot)))
        return 0

    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes and not args.source:
        ap.error("give --sizes and/or --source")

    ct_info: dict[str, str] | None = None
    ct_error: str | None = None
    if "cytotable" in args.tools:
        from cytotable_runner import DEFAULT_VENV, ensure_venv

        try:
            ct_info = ensure_venv(args.cytotable_venv or DEFAULT_VENV)
        except Exception as exc:
            ct_error = repr(exc)
            print(f"CytoTable venv set-up failed: {exc}", file=sys.stderr)

    import psutil

    results: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "machine": {
            "cpus": os.cpu_count(),
            "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "celltable_cmd": args.celltable_cmd,
        "cytotable_version": ct_info.get("cytotable") if ct_info else None,
        "cytotable_duckdb": ct_info.get("duckdb") if ct_info else None,
        "cytotable_venv": ct_info.get("venv") if ct_info else None,
        "cytotable_executor": args.cytotable_executor,
        "cases": [],
    }

    cases: list[tuple[str, Path | None, str, str | None, dict[str, Any]]] = []
    for s in args.source:
        p = Path(s).resolve()
        cases.append((p.stem if p.is_file() else p.name, p, _detect_format(p), None, {}))
    for size in sizes:
        print(f"generating plate: {size} images ({args.format}) ...", flush=True)
        p, err, info = _generate(size, args.format, args, out_dir / "plates")
        cases.append((f"{size} images", p, args.format, err, info))

    json_path = Path(args.json) if args.json else out_dir / "results.json"
    any_failed = False
    for label, src, fmt, err, plate in cases:
        print(f"\n# {label}: {src}", flush=True)
        if src is None:
            print(f"  skipped: {err}")
            results["cases"].append({"label": label, "error": err, "runs": []})
            any_failed = True
            continue
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{fmt}-{label}")
        case = run_case(slug, src, fmt, args, out_dir, ct_info, ct_error)
        case["label"] = label
        case["plate"] = plate
        case["summary"] = summarize(case, expected_rows=plate.get("joined_rows"))
        any_failed |= any(not r["ok"] for r in case["runs"])
        results["cases"].append(case)
        print_table(case, case["summary"])
        json_path.write_text(json.dumps(results, indent=2, default=str))

    json_path.write_text(json.dumps(results, indent=2, default=str))
    print(
        "\ntime s: wall time of a fresh process (interpreter start and imports included); "
        "work s: in-process conversion time, where the tool reports it; peak MiB: peak RSS "
        "summed over the process tree/session, sampled every 50 ms."
    )
    print(f"results: {json_path}")
    if not args.no_plot:
        plottable = {**results, "cases": [c for c in results["cases"] if c.get("summary")]}
        print(plot(plottable, Path(args.plot)))
    return 1 if (args.strict and any_failed) else 0


if __name__ == "__main__":
    sys.exit(main())
