"""A person following the documentation, played by a test: starts the suite the way a document
says (``make run`` ...), reads its banner, runs the documented commands in a terminal-like shell.

Everything runs on free ports and in a temporary state directory, so it never meets a suite
someone else runs on this machine; addresses written in the documents (the default ports) are
swapped for the real ones, in the commands and in the outputs they are compared with.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from services.runtime.suite import PROCESSES
from tests.support.processes import BASH, base_env, free_port

__all__ = ["ROOT", "Started", "Terminal", "Walkthrough"]

ROOT = Path(__file__).resolve().parents[2]
_BANNER_END = "Stop: Ctrl-C"
_START_TIMEOUT = 420.0


@dataclass
class Started:
    """A suite started from a document's command."""

    command: str
    popen: subprocess.Popen[bytes]
    out: Path

    def output(self) -> str:
        """What it printed so far."""
        return self.out.read_text(errors="replace")

    def banner(self) -> str:
        """Its banner: from the table's title to the end of the "Try next" lines."""
        text = self.output()
        return text[text.rindex("mediasuite is up") : text.rindex(_BANNER_END) + len(_BANNER_END)]

    def key_export(self) -> str:
        """The ``export MEDIASUITE_API_KEY=...`` line it printed."""
        (line,) = [ln.strip() for ln in self.banner().splitlines() if ln.strip().startswith("export ")]
        return line

    def try_next(self) -> list[str]:
        """The commands listed under "Try next:"."""
        lines = self.banner().splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Try next:"))
        return [ln.strip() for ln in lines[start + 1 :] if ln.startswith("  ")]


@dataclass
class Walkthrough:
    """One reader's machine: a state directory, a working directory, the suite's addresses."""

    tmp: Path
    addresses: dict[str, str] = field(default_factory=dict)
    started: Started | None = None
    name: str = ""
    _terminal: Terminal | None = None

    def __post_init__(self) -> None:
        self.state = self.tmp / "state"
        self.work = self.tmp / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        # The reader's terminal is in the repository; files the commands write go elsewhere.
        (self.work / ".venv").symlink_to(ROOT / ".venv")
        for proc in PROCESSES:
            self.addresses[proc.addr_env] = f"127.0.0.1:{free_port()}"
        self.addresses["GATEWAY_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"
        self.addresses["MONITOR_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"

    # ---- addresses

    def swap(self, text: str) -> str:
        """The text with the documented default addresses replaced by this machine's."""
        defaults = {proc.default_address: self.addresses[proc.addr_env] for proc in PROCESSES}
        defaults["127.0.0.1:8080"] = self.addresses["GATEWAY_HTTP_LISTEN"]
        defaults["127.0.0.1:9464"] = self.addresses["MONITOR_HTTP_LISTEN"]
        pattern = re.compile("|".join(re.escape(k) for k in defaults))
        return pattern.sub(lambda m: defaults[m.group(0)], text)

    def suite_env(self, **extra: str) -> dict[str, str]:
        """The environment of the shell that starts the suite (ports and state dir chosen here)."""
        env = base_env(MEDIASUITE_STATE_DIR=str(self.state), **extra)
        for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
            env.pop(variable, None)
        for proc in PROCESSES:
            env[proc.listen_env] = env[proc.addr_env] = self.addresses[proc.addr_env]
        env["GATEWAY_HTTP_LISTEN"] = self.addresses["GATEWAY_HTTP_LISTEN"]
        env["MONITOR_HTTP_LISTEN"] = self.addresses["MONITOR_HTTP_LISTEN"]
        return env

    # ---- the suite

    def start(self, command: str, name: str) -> Started:
        """Run ``command`` (as a document writes it) in the repository, in the background, until
        the suite's banner is printed; AssertionError with its output when it fails."""
        self.stop()
        out = self.tmp / f"{name}.out"
        with out.open("wb") as sink:  # bash: "OTEL_X=1 make run" sets the reader's variables
            popen = subprocess.Popen(
                [BASH, "-c", command],
                cwd=ROOT,
                env=self.suite_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(command, popen, out)
        deadline = time.monotonic() + _START_TIMEOUT
        while _BANNER_END not in started.output():
            if popen.poll() is not None or time.monotonic() > deadline:
                self._kill(popen)
                raise AssertionError(f"`{command}` did not print its banner:\n{started.output()[-6000:]}")
            time.sleep(0.2)
        self.started, self.name = started, name
        return started

    def stop(self) -> int | None:
        """Ctrl-C in the suite's terminal; its exit code (None when none runs)."""
        if self.started is None:
            return None
        popen, self.started, self.name = self.started.popen, None, ""
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGINT)
            try:
                return popen.wait(90)
            except subprocess.TimeoutExpired:
                self._kill(popen)
        return popen.returncode

    @staticmethod
    def _kill(popen: subprocess.Popen[bytes]) -> None:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()

    # ---- the reader's second terminal

    def command_env(self) -> dict[str, str]:
        """The second terminal: the addresses as variables (mediactl reads them), a wide terminal."""
        env = base_env(MEDIASUITE_STATE_DIR=str(self.state), COLUMNS="120")
        env.update({proc.addr_env: self.addresses[proc.addr_env] for proc in PROCESSES})
        return env

    def terminal(self) -> Terminal:
        """The reader's second terminal (one bash for the whole walkthrough, like a real one)."""
        if self._terminal is None or self._terminal.closed:
            self._terminal = Terminal(self.work, self.command_env())
        return self._terminal

    def run(self, command: str, timeout: float = 180.0) -> tuple[int, str]:
        """Type one documented command (addresses swapped) into the second terminal: exit code, output."""
        return self.terminal().run(self.swap(command), timeout)

    def close(self) -> None:
        """Stop the suite and close the terminal."""
        self.stop()
        if self._terminal is not None:
            self._terminal.close()


class Terminal:
    """A bash kept open between commands: variables, ``cd`` and ``source`` carry over as typed.

    Each command reads from /dev/null (nothing waits for the keyboard); its output is stdout and
    stderr interleaved, as a terminal shows them.
    """

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._bash = subprocess.Popen(
            [BASH, "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._buffer = b""
        self.closed = False
        self.run("set -o pipefail", 30)

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """Run one command line; its exit code and output. TimeoutError when it runs too long."""
        assert self._bash.stdin is not None
        assert self._bash.stdout is not None
        marker = f"__done_{uuid.uuid4().hex}__"
        script = f"{{\n{command}\n}} < /dev/null\nprintf '\\n{marker} %d\\n' $?\n"
        self._bash.stdin.write(script.encode())
        self._bash.stdin.flush()
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"\n?" + marker.encode() + rb" (\d+)\n")
        while (found := pattern.search(self._buffer)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._bash.poll() is not None:
                self.close()
                raise TimeoutError(f"{command!r} did not finish:\n{self._buffer.decode(errors='replace')}")
            ready, _, _ = select.select([self._bash.stdout], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self._bash.stdout.fileno(), 65536)
                if not chunk:
                    continue
                self._buffer += chunk
        output, self._buffer = self._buffer[: found.start()], self._buffer[found.end() :]
        return int(found.group(1)), output.decode(errors="replace")

    def close(self) -> None:
        """End the shell (and anything it started)."""
        self.closed = True
        if self._bash.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._bash.pid, signal.SIGKILL)
            self._bash.wait()
        for pipe in (self._bash.stdin, self._bash.stdout):
            if pipe is not None:
                pipe.close()
