"""Load benchmark of python -m lenet5.serve, the server before and after its move to uvicorn.

    python benchmarks/serve_load.py [--quick] [--seconds S] [--before REF] [--json docs/serve_load.json]

Two servers run side by side on this machine, each in its own process with
the shipped pretrained model: "before", the standard library's threading
HTTP server of commit REF (default 021f99b, the last one; its serve.py is
taken from git and run against this checkout's package), and "now", this
checkout's.  They take turns, cell by cell, so a change in the machine's load
falls on both alike.

- Load: POST /api/predict with a JSON body (28 x 28 pixels of an MNIST test
  digit) and with a PNG body (the digit drawn at 280 x 280, as the page sends
  it), from 1, 8 and 32 concurrent clients, on kept-alive connections and on
  a fresh connection per request (connecting is timed too).  Each cell runs
  for --seconds; it gives requests per second and the p50 and p99 latency.
  The clients are one asyncio process on the same 2 cores as the server, and
  send each request in one write, as browsers do.
- Hostile: 150 connections dribbling their headers while one client sends
  normal requests (their median and slowest latency); 8 clients x 100 mixed
  JSON and PNG requests on kept-alive connections (errors); three 6 KB PNG
  strips of 50 megapixels (decompression bombs) posted at once, each server
  under an address-space cap (--memory-cap, so that the machine is safe),
  with the answers, the time and the server's peak resident memory.

Latency is reported here, never asserted in a test.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import render_tables  # benchmarks/render_tables.py: the tables' one format
from common import cpu_model, write_json  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "021f99b"  # the last commit of the http.server version
#: Runs a serve.py taken from git as lenet5._serve_before, so its relative
#: imports (cli, images, model) resolve to this checkout's package.
LOADER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('lenet5._serve_before', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "sys.exit(module.main(sys.argv[2:]))\n"
)


class Server:
    """A server in its own process; its standard error goes to a file."""

    def __init__(self, name: str, command: List[str], memory_cap: Optional[int] = None) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"serve-{name}-", suffix=".log", delete=False)

        def limit() -> None:
            if memory_cap:
                resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

        self.process = subprocess.Popen(
            command + ["--port", "0"], stderr=self.log, stdout=subprocess.DEVNULL, preexec_fn=limit, cwd=ROOT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"open http://127\.0\.0\.1:(\d+)/", Path(self.log.name).read_text())
            if found:
                self.port = int(found.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the {name} server did not start: {Path(self.log.name).read_text()[-2000:]}")

    def peak_memory(self) -> Optional[int]:
        """The process's peak resident memory in bytes (VmHWM), None once it has ended."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) << 10 if found else None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(2)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


def servers(before: str, memory_cap: Optional[int] = None) -> List[Server]:
    """The server of commit `before` and this checkout's."""
    old = subprocess.run(["git", "show", f"{before}:lenet5/serve.py"], cwd=ROOT, capture_output=True, text=True)
    if old.returncode != 0:
        raise SystemExit(f"serve_load: cannot read lenet5/serve.py at {before}: {old.stderr.strip()}")
    folder = Path(tempfile.mkdtemp(prefix="serve-before-"))
    (folder / "serve_before.py").write_text(old.stdout)
    (folder / "web").symlink_to(ROOT / "lenet5" / "web")  # the page it serves from beside itself
    return [
        Server("before", [sys.executable, "-c", LOADER, str(folder / "serve_before.py")], memory_cap),
        Server("now", [sys.executable, "-m", "lenet5.serve"], memory_cap),
    ]


# ---------------------------------------------------------------------------
# The clients: asyncio, one write per request


def request_bytes(body: bytes, kind: str, close: bool) -> bytes:
    return (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ).encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    """Send one request and read its whole answer; returns the status."""
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if length:
        await reader.readexactly(int(length.group(1)))
    else:
        await reader.read()
    return status


async def load(port: int, data: List[bytes], clients: int, fresh: bool, seconds: float) -> Dict[str, Any]:
    """clients loops sending data (round robin) for `seconds`; rates and latencies."""
    latencies: List[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal errors
        conn: Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None
        i = k
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                status = await exchange(conn[0], conn[1], data[i % len(data)])
                if fresh:
                    conn[1].close()
                    conn = None
                if status != 200:
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - start)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if conn is not None:
                    conn[1].close()
                conn = None
            i += 1
        if conn is not None:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    ms = sorted(1000 * t for t in latencies)
    return {
        "requests": len(ms),
        "errors": errors,
        "per_second": len(ms) / elapsed,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else None,
    }


async def dribble_check(port: int, json_body: bytes, dribblers: int, requests: int) -> Dict[str, Any]:
    """Normal requests one after another while `dribblers` connections send a header byte every 0.1 s."""
    header = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(dribblers)]
    stop = asyncio.Event()

    async def dribble() -> None:
        for i in range(len(header)):
            if stop.is_set():
                return
            for _, writer in conns:
                if not writer.is_closing():
                    writer.write(header[i : i + 1])
            await asyncio.sleep(0.1)

    task = asyncio.ensure_future(dribble())
    await asyncio.sleep(0.5)
    times, errors = [], 0
    data = request_bytes(json_body, "application/json", close=True)
    for _ in range(requests):
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            status = await asyncio.wait_for(exchange(reader, writer, data), 30)
            writer.close()
            errors += status != 200
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            errors += 1
        times.append(time.perf_counter() - start)
    stop.set()
    await task
    for _, writer in conns:
        writer.close()
    return {
        "dribblers": dribblers,
        "requests": requests,
        "errors": errors,
        "p50_ms": 1000 * statistics.median(times),
        "max_ms": 1000 * max(times),
    }


def strip_png(width: int = 16_666_666, height: int = 3) -> bytes:
    """A 1-bit PNG of 50 megapixels in a strip: about 6 KB on the wire."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress((b"\x00" + b"\xff" * ((width + 7) // 8)) * height, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def bombs(server: Server, bomb: bytes, count: int = 3, timeout: float = 120) -> Dict[str, Any]:
    """count strips posted at once; their statuses (None: no answer), seconds, the peak memory."""
    statuses: List[Optional[int]] = [None] * count
    peak = [server.peak_memory() or 0]
    done = threading.Event()

    def watch() -> None:  # VmHWM is lost when the process dies: keep the last reading
        while not done.is_set():
            reading = server.peak_memory()
            if reading:
                peak[0] = max(peak[0], reading)
            time.sleep(0.05)

    async def post(k: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            statuses[k] = await asyncio.wait_for(
                exchange(reader, writer, request_bytes(bomb, "image/png", True)), timeout
            )
            writer.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            statuses[k] = None

    async def all_of_them() -> None:
        await asyncio.gather(*(post(k) for k in range(count)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    asyncio.run(all_of_them())
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    return {"statuses": statuses, "seconds": seconds, "peak_mb": peak[0] / 2**20, "alive": server.alive()}


# ---------------------------------------------------------------------------


def bodies() -> Dict[str, Tuple[bytes, str]]:
    """A JSON and a PNG body of the same MNIST test digit (a 7)."""
    import numpy as np
    from PIL import Image

    from lenet5.data import load_split

    digit = load_split("test", download=False, progress=False)[0][0]
    buf = io.BytesIO()
    Image.fromarray((255 - digit).astype(np.uint8)).resize((280, 280), Image.BILINEAR).save(buf, "PNG")
    return {
        "JSON": (json.dumps({"pixels": digit.tolist()}).encode(), "application/json"),
        "PNG": (buf.getvalue(), "image/png"),
    }


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short cells, no bombs: checks that it runs")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per load cell (default 3)")
    p.add_argument("--before", default=BEFORE, help=f"the commit of the server to compare with (default {BEFORE})")
    p.add_argument(
        "--memory-cap",
        type=float,
        default=4.0,
        metavar="GB",
        help="address-space cap of each server for the bombs (default 4 GB)",
    )
    p.add_argument("--no-bombs", action="store_true", help="leave out the decompression bombs")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = p.parse_args(argv)
    seconds = 0.3 if args.quick else args.seconds
    cells = [(kind, clients, fresh) for kind in ("JSON", "PNG") for clients in (1, 8, 32) for fresh in (False, True)]
    payload = bodies()
    report: Dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "before": args.before,
        "seconds_per_cell": seconds,
        "quick": args.quick,
        "load": [],
        "dribble": {},
        "mixed": {},
        "bombs": {},
    }
    print(
        f"CPU: {report['cpu']}, {report['cores']} cores; Python {report['python']}; "
        f"before: commit {args.before} (http.server), now: this checkout (uvicorn); {seconds:g} s a cell"
    )

    running = servers(args.before)
    try:
        for kind, clients, fresh in cells:
            body, media = payload[kind]
            data = [request_bytes(body, media, close=fresh)]
            row: Dict[str, Any] = {"body": kind, "clients": clients, "connections": "fresh" if fresh else "kept-alive"}
            for server in running:  # taking turns, cell by cell
                asyncio.run(load(server.port, data, 1, fresh, min(0.2, seconds)))  # warm-up
                row[server.name] = asyncio.run(load(server.port, data, clients, fresh, seconds))
            before, now = row.get("before"), row.get("now")
            if before and now and before["per_second"]:
                row["ratio"] = now["per_second"] / before["per_second"]
            report["load"].append(row)
        mixed_data = [request_bytes(*payload["JSON"], close=False), request_bytes(*payload["PNG"], close=False)]
        for server in running:
            report["dribble"][server.name] = asyncio.run(
                dribble_check(server.port, payload["JSON"][0], 150, 5 if args.quick else 20)
            )
            report["mixed"][server.name] = asyncio.run(
                count_load(server.port, mixed_data, 8, 10 if args.quick else 100)
            )
    finally:
        for server in running:
            server.stop()

    if not (args.quick or args.no_bombs):
        cap = int(args.memory_cap * 2**30)
        bomb = strip_png()
        for server in servers(args.before, memory_cap=cap):
            try:
                report["bombs"][server.name] = dict(bombs(server, bomb), bytes=len(bomb), cap_gb=args.memory_cap)
            finally:
                server.stop()

    print_report(report)
    if args.json:
        write_json(args.json, report)
    return 0


async def count_load(port: int, data: List[bytes], clients: int, per_client: int) -> Dict[str, Any]:
    """clients kept-alive clients, each sending exactly per_client requests (data in turn)."""
    errors, times = 0, []

    async def client(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(per_client):
            start = time.perf_counter()
            try:
                status = await exchange(reader, writer, data[(k + i) % len(data)])
                errors += status != 200
                times.append(time.perf_counter() - start)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        "requests": clients * per_client,
        "errors": errors,
        "per_second": clients * per_client / elapsed,
        "p50_ms": 1000 * statistics.median(times) if times else None,
    }


def print_report(report: Dict[str, Any]) -> None:
    """The two tables, as benchmarks/render_tables.py renders them into docs/server.md."""
    print("\n" + render_tables.serve_load(report))
    print("\n" + render_tables.serve_hostile(report))


if __name__ == "__main__":
    sys.exit(main())
