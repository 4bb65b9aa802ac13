"""Load test for `nmt serve`: N concurrent clients over loopback, one line per request.

    python tools/load_test.py --url http://127.0.0.1:8000 --checkpoint runs/sample/best.pt \\
        --input data/test.en --clients 64 --seconds 30

First translates the input lines in-process with `Translator`, at the precision
the server reports for the model (the offline reference, and its sentences/s),
then runs the clients until --seconds have passed or --requests were sent, each
on its own keep-alive connection, sending one line per request (the lines in
turn). Reports requests/s, sentences/s, latency percentiles, errors and the
clients' own CPU time, and checks every answer against the offline translation
of its line (same text, score within 1e-4). Exits 1 if there were errors or
mismatches. Targets only this machine (the loopback addresses).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.translation import Translator  # noqa: E402

SCORE_TOLERANCE = 1e-4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (loopback)")
    parser.add_argument("--checkpoint", required=True,
                        help="the served model's checkpoint (comma-separated for an ensemble)")
    parser.add_argument("--model", help="model name to ask for (default: the only one)")
    parser.add_argument("--input", default="data/test.en", help="lines to send")
    parser.add_argument("--lines", type=int, help="use only the first N non-empty lines")
    parser.add_argument("--beam", type=int, default=1, help="beam size (default: 1, greedy)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30, help="stop after this long")
    parser.add_argument("--requests", type=int, default=100_000, help="stop after this many")
    parser.add_argument("--api-key-file", help="file holding the server's API key")
    parser.add_argument("--json", help="also write the report here")
    return parser.parse_args(argv)


def check_loopback(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"load_test: --url {url}: expected http://HOST:PORT")
    addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"load_test: --url {url}: only loopback addresses (this machine) "
                         "may be targeted")
    return parts.hostname, parts.port or 80


def served_precision(url: str, model: Optional[str], headers: str) -> str:
    """The precision the server translates `model` (or its only model) at."""
    extra = dict(line.split(": ", 1) for line in headers.splitlines() if line)
    with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/models", headers=extra),
                                timeout=60) as response:
        models = json.loads(response.read())["models"]
    chosen = [m for m in models if model in (None, m["name"])]
    if len(chosen) != 1:
        raise SystemExit(f"load_test: the server has {', '.join(m['name'] for m in models)}; "
                         "name one with --model")
    return chosen[0]["precision"]


class Connection:
    """One keep-alive HTTP/1.1 connection: lean, so that the clients cost little CPU."""

    def __init__(self, host: str, port: int, headers: str):
        self.host, self.port, self.headers = host, port, headers
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
        content = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_clients(args, host: str, port: int, lines: list[str], expected: list[tuple],
                      headers: str) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    sent = answered = 0
    deadline = time.perf_counter() + args.seconds

    async def client() -> None:
        nonlocal sent, answered
        connection = Connection(host, port, headers)
        while sent < args.requests and time.perf_counter() < deadline:
            index = sent % len(lines)
            sent += 1
            body = {"text": [lines[index]], "beam": args.beam}
            if args.model:
                body["model"] = args.model
            start = time.perf_counter()
            try:
                status, content = await connection.post("/v1/translate",
                                                        json.dumps(body).encode())
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
                errors.append(f"{type(error).__name__}: {error}")
                connection.close()
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"HTTP {status}: {content[:200]!r}")
                continue
            answered += 1
            best = json.loads(content)["translations"][0]["hypotheses"][0]
            text, score = expected[index]
            if best["text"] != text or abs(best["score"] - score) > SCORE_TOLERANCE:
                mismatches.append(f"line {index + 1}: got {best['text']!r} ({best['score']}), "
                                  f"offline {text!r} ({score})")
        connection.close()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(args.clients)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"clients": args.clients, "requests": sent, "seconds": round(seconds, 3),
            "requests_per_s": round(sent / seconds, 1),
            # the clients' own CPU: on a small machine they take it from the server
            "client_cpu_s": round(cpu, 2),
            "sentences_per_s": round(answered / seconds, 1),
            "latency_ms": {name: round(1000 * quantiles[q - 1], 1)
                           for name, q in (("p50", 50), ("p95", 95), ("p99", 99))},
            "errors": len(errors), "mismatches": len(mismatches),
            "first_problems": (errors + mismatches)[:5]}


def main(argv=None) -> int:
    args = parse_args(argv)
    host, port = check_loopback(args.url)
    lines = [line for line in Path(args.input).read_text(encoding="utf-8").splitlines() if line]
    lines = lines[:args.lines] if args.lines else lines
    headers = ""
    if args.api_key_file:
        headers = f"X-API-Key: {Path(args.api_key_file).read_text(encoding='utf-8').strip()}\r\n"

    # The server's precision: in bf16 a line's scores depend on the batch around it.
    precision = served_precision(args.url, args.model, headers)
    translator = Translator.load(args.checkpoint.split(","), device="cpu", precision=precision)
    translator.translate(lines[:8], beam=args.beam)  # warm-up: the first call is slow
    start = time.perf_counter()
    offline = translator.translate(lines, beam=args.beam)
    offline_seconds = time.perf_counter() - start
    expected = [(t.hypotheses[0].text, t.hypotheses[0].score) for t in offline]

    report = asyncio.run(run_clients(args, host, port, lines, expected, headers))
    report["offline"] = {"sentences": len(lines), "seconds": round(offline_seconds, 3),
                         "sentences_per_s": round(len(lines) / offline_seconds, 1),
                         "batch_size": translator.decoding.batch_size, "beam": args.beam,
                         "precision": precision, "torch_threads": torch.get_num_threads()}
    report["ratio_to_offline"] = round(report["sentences_per_s"]
                                       / report["offline"]["sentences_per_s"], 3)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0 if report["errors"] == 0 and report["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
