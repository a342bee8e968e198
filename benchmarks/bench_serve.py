"""Serving speed: `loopline serve` against `mlflow models serve` of the same registered version, side by side.

A MiniLM classifier is fine-tuned on BANKING77 rows (two epochs: enough to have learnt, so that a
runtime that answers differently shows in the accuracy) and registered in a temporary home. The
servers then answer, one after the other on the same machine: single-text requests one at a time
(p50/p95/p99 latency), requests of 32 texts (throughput in texts/s) and single-text requests from 8
clients at once (where micro-batching could help). Each loopline row runs the service as configured
(torch, ONNX, ONNX with INT8 weights, with or without micro-batching), doing its real work meanwhile:
every prediction is logged, with its sentence embedding, to the feedback store. Accuracy is that of
the one-at-a-time answers on the BANKING77 test texts.

    python benchmarks/bench_serve.py --data ../shared/data/banking77 --rows 4000 --epochs 2 --requests 300
    python benchmarks/bench_serve.py --smoke          # tiny model, a few requests; writes nothing

Appends a section to benchmarks/RESULTS.md unless --no-write (or --smoke without --results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import (
    command_line,
    git_commit,
    load_average,
    load_labelled_csv,
    machine_line,
    packaged_model_path,
    publish_section,
    tiny_model,
    utc_now,
)

BIN = Path(sys.executable).parent
CLIENTS = 8  # concurrent single-text clients

_TORCH = {"LOOPLINE_SERVE__RUNTIME": "torch"}
_INT8 = {"LOOPLINE_SERVE__RUNTIME": "onnx-int8"}
_MICRO = {"LOOPLINE_SERVE__MICRO_BATCH": "true"}
LOOPLINE_ROWS: list[tuple[str, dict[str, str]]] = [
    ("loopline serve (torch; logs + embeds)", _TORCH),
    ("loopline serve (torch + micro-batching)", {**_TORCH, **_MICRO}),
    ("loopline serve (onnx; logs + embeds)", {"LOOPLINE_SERVE__RUNTIME": "onnx"}),
    ("loopline serve (onnx-int8; logs + embeds)", _INT8),
    ("loopline serve (onnx-int8 + micro-batching)", {**_INT8, **_MICRO}),
    ("loopline serve (onnx-int8; logs, no embedding)", {**_INT8, "LOOPLINE_SERVE__LOG_EMBEDDINGS": "false"}),
]


@dataclass(frozen=True)
class ServerTiming:
    name: str
    single_ms: list[float]
    batch_texts_per_s: float
    concurrent_ms: list[float]
    concurrent_texts_per_s: float
    accuracy: float
    runtime: str
    verdict: str  # why that runtime answers (the service's /model)

    def percentile(self, q: float, concurrent: bool = False) -> float:
        return float(np.percentile(self.concurrent_ms if concurrent else self.single_ms, q))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts, labels, train = load_texts(args)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        home = Path(folder) / "home"
        base = tiny_model(Path(folder) / "tiny") if args.smoke else packaged_model_path()
        version = train_and_register(home, base, train, args)
        env = server_env(home, base, args.threads)
        serve = [str(BIN / "loopline"), "serve", "--home", str(home)]
        loopline = [
            measure(
                name,
                serve,
                "/ready",
                lambda t: {"texts": t},
                texts,
                labels,
                args,
                {**env, **extra},
                Path(folder),
            )
            for name, extra in (LOOPLINE_ROWS[::4] if args.smoke else LOOPLINE_ROWS)  # smoke: two rows
        ]
        anchor = measure(
            "mlflow models serve",
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/loopline-classifier/{version}",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
            ],
            "/ping",
            lambda t: {"dataframe_split": {"columns": ["text"], "data": [[x] for x in t]}},
            texts,
            labels,
            args,
            {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"},
            Path(folder),
        )
    publish_section(report(loopline, anchor, args), args.results, args.smoke, args.no_write)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/banking77"))
    parser.add_argument("--rows", type=int, default=4000, help="Training rows.")
    parser.add_argument("--epochs", type=int, default=2, help="Training epochs (a model that has learnt).")
    parser.add_argument("--requests", type=int, default=300, help="Single-text requests per server.")
    parser.add_argument("--batches", type=int, default=30, help="Requests of 32 texts per server.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of each server.")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.epochs, args.requests, args.batches = 64, 1, 10, 2
    return args


def load_texts(args: argparse.Namespace) -> tuple[list[str], list[str], pd.DataFrame]:
    """Texts to send with their true labels, and the training rows."""
    if args.smoke:
        train = pd.DataFrame(
            {
                "text": [f"smoke text number {i} about {k}" for i, k in enumerate(["a", "b"] * 40)],
                "label": ["a", "b"] * 40,
            }
        )
        return list(train["text"]), list(train["label"]), train
    train = load_labelled_csv(args.data / "train.csv").sample(n=args.rows, random_state=13)
    test = load_labelled_csv(args.data / "test.csv").sample(frac=1.0, random_state=7)  # all labels early
    return [str(t) for t in test["text"]], [str(y) for y in test["label"]], train


def train_and_register(home: Path, base: str, train: pd.DataFrame, args: argparse.Namespace) -> str:
    """Trained and registered as version 1 with the production alias (through loopline's own CLI)."""
    home.mkdir(parents=True)
    data = home.parent / "train.csv"
    train.to_csv(data, index=False)
    config = home.parent / "loopline.toml"
    config.write_text(
        f'base_model = "{base}"\n[training]\nepochs = {args.epochs}\n'
        "[gate]\nmin_macro_f1 = 0.0\nmin_accuracy = 0.0\nmin_behaviour_pass_rate = 0.0\n"
        "[contract]\nmax_duplicate_rate = 1.0\nmin_examples_per_label = 1\n"
    )
    command = [
        str(BIN / "loopline"),
        "train",
        "--data",
        str(data),
        "--home",
        str(home),
        "--config",
        str(config),
    ]
    subprocess.run(
        command, check=True, capture_output=True, text=True, env=server_env(home, base, args.threads)
    )
    return "1"


def server_env(home: Path, base: str, threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_"))}
    env.update(
        {
            "LOOPLINE_BASE_MODEL": base,
            "LOOPLINE_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow starts `uvicorn` by name
        }
    )
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def measure(
    name: str,
    command: list[str],
    ready_path: str,
    body: Callable[[list[str]], object],
    texts: list[str],
    labels: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    folder: Path,
) -> ServerTiming:
    port = free_port()
    log = (folder / f"{len(list(folder.glob('*.log')))}-{name.split()[0]}.log").open("wb")
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    loopline = "loopline" in name
    path = "/predict" if loopline else "/invocations"

    def ask(batch: list[str]) -> tuple[float, list[str]]:
        started = time.perf_counter()
        answer = post(url + path, body(batch))
        return (time.perf_counter() - started) * 1000, predicted_labels(answer)

    try:
        wait_ready(url + ready_path, process, timeout=600)
        info = get(url + "/model")["runtime"] if loopline else {"used": "torch (pyfunc)", "reason": "-"}
        for text in texts[:5]:  # warm-up
            ask([text])
        single, answers = [], []
        for text in texts[: args.requests]:
            elapsed, predicted = ask([text])
            single.append(elapsed)
            answers += predicted
        correct = sum(p == y for p, y in zip(answers, labels, strict=False))
        batches = [texts[i * 32 : (i + 1) * 32] for i in range(args.batches)]
        started = time.perf_counter()
        for batch in batches:
            ask(batch)
        throughput = sum(len(b) for b in batches) / (time.perf_counter() - started)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            concurrent = [ms for ms, _ in pool.map(lambda t: ask([t]), texts[: args.requests])]
        concurrent_throughput = len(concurrent) / (time.perf_counter() - started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    return ServerTiming(
        name,
        single,
        throughput,
        concurrent,
        concurrent_throughput,
        correct / len(answers),
        info["used"],
        info["reason"],
    )


def predicted_labels(answer: dict) -> list[str]:
    """The labels of a /predict answer (loopline) or an /invocations answer (MLflow pyfunc)."""
    if "predictions" in answer and answer["predictions"] and isinstance(answer["predictions"][0], dict):
        first = answer["predictions"][0]
        if "best_guess" in first:
            return [p["best_guess"] for p in answer["predictions"]]
        return [p["label"] for p in answer["predictions"]]
    return [str(p) for p in answer.get("predictions", [])]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post(url: str, payload: object) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(loopline: list[ServerTiming], anchor: ServerTiming, args: argparse.Namespace) -> list[str]:
    rows = [
        f"| {t.name} | {t.runtime} | {t.percentile(50):.1f} | {t.percentile(95):.1f} | "
        f"{t.percentile(99):.1f} | {t.batch_texts_per_s:.0f} | {t.percentile(50, True):.1f} | "
        f"{t.percentile(95, True):.1f} | {t.concurrent_texts_per_s:.0f} | {100 * t.accuracy:.1f} |"
        for t in (*loopline, anchor)
    ]
    ratios = [
        f"| {t.name} | {t.percentile(95) / anchor.percentile(95):.2f}× | "
        f"{t.batch_texts_per_s / anchor.batch_texts_per_s:.2f}× | "
        f"{t.concurrent_texts_per_s / anchor.concurrent_texts_per_s:.2f}× | "
        f"{100 * (t.accuracy - anchor.accuracy):+.1f} |"
        for t in loopline
    ]
    return [
        f"## Serving speed ({'smoke' if args.smoke else 'MiniLM, BANKING77 test texts'})",
        "",
        f"{utc_now()} · commit {git_commit()} · {machine_line()} · load {load_average()}",
        command_line("bench_serve.py"),
        "",
        f"{args.requests} single-text requests one at a time, then {args.batches} requests of 32 texts each, "
        f"then {args.requests} single-text requests from {CLIENTS} clients at once. Accuracy: of the "
        "one-at-a-time answers against the true labels.",
        "",
        "| server | answered by | p50 ms | p95 ms | p99 ms | texts/s (batches of 32) | "
        f"p50 ms ({CLIENTS} clients) | p95 ms ({CLIENTS} clients) | texts/s ({CLIENTS} clients) | "
        "accuracy % |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Against the anchor (mlflow models serve of the same version):",
        "",
        f"| server | p95 (one at a time) | throughput (batches of 32) | throughput ({CLIENTS} clients) | "
        "accuracy Δ points |",
        "|---|---|---|---|---|",
        *ratios,
        "",
        "Why each runtime answered (the service's verdict on its frozen test set):",
        "",
        *dict.fromkeys(f"- {t.name}: {t.runtime}: {t.verdict}" for t in loopline),
    ]


if __name__ == "__main__":
    sys.exit(main())
