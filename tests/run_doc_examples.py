"""Run the examples of README.md and docs/*.md as a reader would (CI runs this).

    python tests/run_doc_examples.py            # every runnable block, in order
    python tests/run_doc_examples.py --check    # only parse and check the blocks (fast)
    python tests/run_doc_examples.py docs/usage.md --timeout 600

The rules (docs/development.md, "Examples in the docs", says the same):

- A fenced block opened with ```python is run as written, in a fresh
  ``python`` process, from the repository root.
- A block opened with ```console runs its lines that start with ``$ ``, in one
  bash process from the repository root, so ``$ echo $?`` shows the status of
  the line before.  The lines that follow a command are its expected output
  (standard output and standard error together); ``...`` stands for any text
  within a line, or, alone on a line, for any number of lines.  A command
  shown without output may print anything.  A command that exits non-zero
  fails the block unless the next command is ``echo $?``.
- ``notrun`` after the language (```python notrun, ```console notrun) marks a
  block that is never run (it takes too long, or needs what CI lacks); it is
  still checked like the others.
- ``server`` after the language (```python server) runs the block while the
  draw-a-digit server listens on 127.0.0.1:8000: the harness starts
  ``python -m lenet5.serve --port 8000`` before the first such block and stops
  it at the end.  With ``--port N`` it listens on N instead, and each block's
  ``127.0.0.1:8000`` is read as ``127.0.0.1:N``.
- Every repository file a block names (a path under data/, docs/, lenet5/,
  tests/, benchmarks/ or csrc/) must exist, in every block.
- Files the examples write (model.npz, ck.npz, ...) are removed afterwards,
  unless they were there before.

Each block has a timeout (--timeout, default 300 s).  The programs run with
this interpreter's folder first on PATH, so ``python``, ``pip`` and ``lenet5``
are this environment's.  Exit status: 0 all passed, 1 an example failed,
2 a bad argument.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
#: The languages whose blocks the harness knows; any other fence is prose.
RUNNABLE = ("python", "console")
#: The words a block's info string may add after the language.
FLAGS = ("notrun", "server")
#: The server's address as the docs write it.
DOC_ADDRESS = "127.0.0.1:8000"
#: Folders of the repository whose files an example may name.
REPO_DIRS = ("data", "docs", "lenet5", "tests", "benchmarks", "csrc")
_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(REPO_DIRS) + r")/[\w./-]*\w\.\w+)")
#: Where each command's output ends in a console block's run, and its status.
_MARK = "@@lenet5-doc-example-status"


@dataclass
class Block:
    """One fenced block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    flags: Set[str]
    text: str
    problems: List[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUNNABLE and "notrun" not in self.flags


def doc_files() -> List[Path]:
    """README.md, then docs/*.md in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks_of(path: Path) -> List[Block]:
    """The fenced blocks of one Markdown file (``` fences, not nested)."""
    found: List[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = lines[i].strip()
        if opening.startswith("```"):
            words = opening[3:].split()
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            language = words[0] if words else ""
            block = Block(path, start, language, set(words[1:]), "\n".join(body) + "\n")
            if language in RUNNABLE:
                unknown = block.flags - set(FLAGS)
                if unknown:
                    block.problems.append(
                        f"unknown word(s) after ```{language}: {', '.join(sorted(unknown))} (known: {', '.join(FLAGS)})"
                    )
            found.append(block)
        i += 1
    return found


def named_files(text: str) -> List[str]:
    """The repository paths a block names (data/..., docs/..., with an extension)."""
    return sorted(set(_PATH.findall(text)))


def check(block: Block) -> List[str]:
    """What is wrong with a block without running it: unknown flags, missing files."""
    problems = list(block.problems)
    if block.language in RUNNABLE:
        for name in named_files(block.text):
            if not (ROOT / name).exists():
                problems.append(f"names {name}, which is not in the repository")
        if block.language == "console" and block.runs and not commands(block.text):
            problems.append("a runnable console block with no '$ ' line (mark it notrun, or use ```text)")
    return problems


def commands(text: str) -> List[Tuple[str, List[str]]]:
    """A console block's commands, each with the output lines shown after it."""
    found: List[Tuple[str, List[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line.rstrip())
    return found


def output_matches(expected: Sequence[str], actual: str) -> bool:
    """True if the output has the expected lines; '...' is any text in a line,
    or any lines when alone on one."""
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(re.escape(line.strip()).replace(r"\.\.\.", r"[^\n]*") + r"\n")
    # blank lines between outputs do not count
    actual_lines = "".join(line.strip() + "\n" for line in actual.splitlines() if line.strip())
    pattern = "".join(parts)
    return re.fullmatch(pattern, actual_lines) is not None


def environment() -> dict:
    """This interpreter's folder first on PATH; no colour or bars in the output."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_group(argv: List[str], timeout: float) -> Tuple[Optional[int], str]:
    """Run argv in a process group of its own, output and errors together; on
    the timeout the whole group is killed (a server an example started too).
    Returns (exit status, or None after the timeout; the output)."""
    p = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out


def run_python(block: Block, timeout: float, port: int) -> Optional[str]:
    """Run a python block; None if it passed, else why not."""
    source = block.text.replace(DOC_ADDRESS, f"127.0.0.1:{port}")
    status, out = run_group([sys.executable, "-c", source], timeout)
    if status is None:
        return f"did not finish within {timeout:g} s:\n{out}"
    if status != 0:
        return f"exit status {status}:\n{out}"
    return None


def run_console(block: Block, timeout: float, port: int) -> Optional[str]:
    """Run a console block's commands in one bash; None if all passed, else why not."""
    steps = commands(block.text)
    script = []
    for command, _ in steps:
        command = command.replace(DOC_ADDRESS, f"127.0.0.1:{port}")
        # the status is printed after the command and handed on, so "$ echo $?" shows it
        script.append(f'{command}\n__l5=$?; printf \'\\n{_MARK} %d\\n\' "$__l5"; (exit "$__l5")')
    status, output = run_group(["bash", "-c", "\n".join(script) + "\n"], timeout)
    if status is None:
        return f"did not finish within {timeout:g} s:\n{output}"
    pieces = re.split(rf"\n?{_MARK} (\d+)\n", output)
    outputs, statuses = pieces[0:-1:2], [int(s) for s in pieces[1::2]]
    if len(statuses) != len(steps):
        return f"ended after {len(statuses)} of {len(steps)} commands:\n{output}"
    for k, ((command, expected), out, status) in enumerate(zip(steps, outputs, statuses)):
        shown_next = steps[k + 1][0].strip() if k + 1 < len(steps) else ""
        if status != 0 and shown_next != "echo $?":
            return f"$ {command}\nexit status {status} (show it with '$ echo $?' if it is meant):\n{out}"
        if any(line.strip() for line in expected) and not output_matches(expected, out):
            return f"$ {command}\nprinted:\n{out}\nwhere the docs show:\n" + "\n".join(expected)
    return None


class Server:
    """python -m lenet5.serve, started on first need and stopped at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: Optional[subprocess.Popen] = None

    def ensure(self) -> Optional[str]:
        """Start the server unless it runs; None when it listens, else why not."""
        if self.process is not None:
            return None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lenet5.serve", "--port", str(self.port)],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"the server stopped at once:\n{self.process.stdout.read() if self.process.stdout else ''}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return None
            except OSError:
                time.sleep(0.2)
        return f"the server did not listen on port {self.port} within 60 s"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def snapshot() -> Set[Path]:
    """The files of the working tree (hidden folders, caches and environments left out)."""
    files: Set[Path] = set()
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "build")]
        files.update(Path(folder) / n for n in names)
    return files


def remove_new(before: Set[Path]) -> None:
    """Remove the files the examples made, and the folders they leave empty."""
    for path in sorted(snapshot() - before, reverse=True):
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != ROOT and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def main(argv: Optional[List[str]] = None) -> int:
    """Check, then run, the examples; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python tests/run_doc_examples.py", description="Run the examples of README.md and docs/*.md."
    )
    p.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/*.md)")
    p.add_argument("--check", action="store_true", help="only check the blocks (flags, named files); run none")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per block (default 300)")
    p.add_argument("--port", type=int, default=8000, help="the server's port for 'server' blocks (default 8000)")
    args = p.parse_args(argv)
    files = [f.resolve() for f in args.files] or doc_files()
    for f in files:
        if not f.is_file():
            p.error(f"{f}: no such file")
    blocks = [b for f in files for b in blocks_of(f)]
    failures = [f"{b.where}: {problem}" for b in blocks for problem in check(b)]
    if failures or args.check:
        for line in failures:
            print(line, file=sys.stderr)
        runnable = sum(b.runs for b in blocks)
        print(f"{len(blocks)} blocks, {runnable} runnable; {len(failures)} problem(s)")
        return 1 if failures else 0
    before = snapshot()
    server = Server(args.port)
    ran = 0
    try:
        for b in (b for b in blocks if b.runs):
            started = time.monotonic()
            why = server.ensure() if "server" in b.flags else None
            if why is None:
                why = (run_python if b.language == "python" else run_console)(b, args.timeout, args.port)
            ran += 1
            status = "ok" if why is None else "FAILED"
            print(
                f"{b.where}: ```{b.language} {' '.join(sorted(b.flags))}".rstrip()
                + f" {status} ({time.monotonic() - started:.1f} s)",
                flush=True,
            )
            if why is not None:
                failures.append(f"{b.where}: {why}")
    finally:
        server.stop()
        remove_new(before)
    for line in failures:
        print(line, file=sys.stderr)
    print(f"{ran} examples run, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
