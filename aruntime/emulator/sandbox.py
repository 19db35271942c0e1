"""The execution environment: queue of invocations, runtime process lifecycle, timeouts, logs.

The runtime process starts lazily, on the first invoke after start-up or after the previous
process ended (crash, init error, timeout kill), as a Lambda cold start does; the invoke
that triggered the start waits for init. Each process gets its own Runtime API listener,
so a dead process's leftover connections can never take another process's events.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from .config import FunctionConfig
from .invocation import SERVICE_EXCEPTION, Invocation, Outcome, State, error_outcome
from .output import SafeSink
from . import process
from .process import RuntimeProcess, exit_reason
from .runtime_api import RuntimeAPIServer

LogSink = Callable[[str], None]
_REMEMBERED = 1000  # settled request ids kept to answer 403/410 rather than 400


class ProcessGone(Exception):
    """The asking process is no longer the live one."""


class Sandbox:
    def __init__(self, config: FunctionConfig, log: LogSink) -> None:
        self.config = config
        self._log = SafeSink(log)  # a line that cannot be shown never stops the emulator
        self._pending: deque[Invocation] = deque()
        self._inflight: dict[str, Invocation] = {}
        self._known: OrderedDict[str, Invocation] = OrderedDict()
        self._waiters: set[asyncio.Future[None]] = set()
        self._proc: RuntimeProcess | None = None
        self._api: RuntimeAPIServer | None = None
        self._retired: set[RuntimeAPIServer] = set()  # listeners of ended processes
        self._starting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False
        self._later_count = 0
        self._reports: dict[str, tuple[asyncio.TimerHandle, tuple[str, ...]]] = {}
        self._draining: set[RuntimeProcess] = set()  # retired, finishing invocations in flight
        self._restart_when_started = False

    # -- invoke side ------------------------------------------------------------------
    def submit(self, inv: Invocation) -> None:
        if self._closed:
            inv.finish(error_outcome(SERVICE_EXCEPTION, "the emulator is shutting down"))
            return
        self._pending.append(inv)
        self._kick()
        self._ensure_process()

    def log(self, line: str) -> None:
        # The runtime joins the lines of an error record with \r (one CloudWatch event each,
        # docs/SPEC.md §4); in a terminal they would overwrite each other, so the echo splits them.
        # LogResult keeps the record as the runtime wrote it.
        for part in line.split("\r"):
            self._log(part)
        # With one invocation in flight, everything printed belongs to it (for LogResult);
        # so does output that trails its response, until its REPORT is written.
        if len(self._inflight) == 1:
            next(iter(self._inflight.values())).log_lines.append(line)
        elif not self._inflight and len(self._reports) == 1:
            request_id = next(iter(self._reports))
            if (inv := self._known.get(request_id)) is not None:
                inv.log_lines.append(line)

    def notice(self, line: str) -> None:
        """A line of the emulator's own (not part of any invocation's log)."""
        self._log(line)

    @property
    def busy(self) -> bool:
        """Whether an invocation is in flight."""
        return bool(self._inflight)

    @property
    def runtime_api(self) -> str | None:
        return self._api.address if self._api else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- Runtime API side -------------------------------------------------------------
    def is_current(self, proc: RuntimeProcess) -> bool:
        return proc is self._proc and not proc.killed

    async def next_invocation(self, proc: RuntimeProcess) -> Invocation:
        if proc.init_done_at is None:
            proc.init_done_at = time.monotonic()
        while True:
            if not self.is_current(proc):
                raise ProcessGone
            if self._pending and len(self._inflight) < self.config.max_concurrency:
                inv = self._pending.popleft()
                self._dispatch(inv, proc)
                return inv
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)

    def requeue(self, inv: Invocation) -> None:
        """A /next poller vanished before it could take `inv`: give it to the next one."""
        if inv.state is State.RUNNING and inv.request_id in self._inflight:
            del self._inflight[inv.request_id]
            self._cancel_timer(inv)
            inv.state = State.QUEUED
            self._pending.appendleft(inv)
            self._kick()

    def lookup(self, request_id: str) -> Invocation | None:
        return self._known.get(request_id)

    def complete(self, inv: Invocation, outcome: Outcome, status: str | None = None) -> None:
        if not inv.finish(outcome):
            return
        self._cancel_timer(inv)
        if self._inflight.pop(inv.request_id, None) is not None:
            self._report(inv, status or ("" if outcome.ok else "error"), outcome)
        self._reap_retired()
        self._kick()

    def restart(self) -> None:
        """Retire the runtime process (`serve --reload`): invocations in flight finish on it,
        then it is stopped; the next invocation cold-starts a new process."""
        if self._starting is not None:
            self._restart_when_started = True  # retire it once it exists
            return
        proc = self._proc
        if proc is None:
            return
        self._proc = self._api = None  # its /next polls now end with ProcessGone
        self._draining.add(proc)
        self._reap_retired()
        self._kick()
        self._ensure_process()

    def _reap_retired(self) -> None:
        for proc in list(self._draining):
            if not any(inv.proc is proc for inv in self._inflight.values()):
                self._draining.discard(proc)
                self._spawn(proc.stop())  # SIGTERM first: its shutdown hooks run, as on Lambda

    def init_error(self, proc: RuntimeProcess, error_type: str, body: bytes, phase: str = "init") -> None:
        """The runtime reported it cannot start: the invoke waiting on it fails with that
        error, and the process is replaced (if it does not exit on its own) as Lambda does."""
        proc.init_failed = True
        init_ms = (time.monotonic() - proc.spawned_at) * 1000
        self.log(
            f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: error\tError Type: {error_type}"
        )
        if self._pending:
            inv = self._pending.popleft()
            inv.finish(Outcome(error_type, body))
        self._kick()
        self._later(1.0, lambda: proc.kill() if proc.proc and proc.proc.returncode is None else None)

    # -- lifecycle --------------------------------------------------------------------
    def _ensure_process(self) -> None:
        if self._closed or self._proc is not None or self._starting or not self._pending:
            return
        self._starting = self._spawn(self._start_process())

    async def _start_process(self) -> None:
        api = RuntimeAPIServer(self)
        try:
            await api.start()
            proc = RuntimeProcess(self.config, api.address, self.log)
            api.proc = proc
            self._proc, self._api = proc, api
            await proc.start()
        except OSError as e:
            self._proc = self._api = None
            await api.close()
            self._starting = None
            cmd = " ".join(self.config.runtime_command)
            # Said where the user looks, not only to the caller: a Function URL's caller sees
            # a bare 502, and a mistyped --runtime-command would otherwise fail in silence.
            self.log(f"aruntime serve: cannot start runtime {cmd!r}: {e}; "
                     "it will be tried again on the next invoke")
            if self._pending:
                self._pending.popleft().finish(
                    error_outcome("Runtime.InvalidEntrypoint", f"cannot start runtime {cmd!r}: {e}")
                )
            self._ensure_process()
            return
        self._starting = None
        if self._restart_when_started:
            self._restart_when_started = False
            self._spawn(self._watch(proc, api))
            self.restart()
            return
        # Init gets the function timeout, like the init that Lambda retries inside an invoke.
        self._later(self.config.timeout, lambda: self._init_timeout(proc))
        self._spawn(self._watch(proc, api))

    def _init_timeout(self, proc: RuntimeProcess) -> None:
        if proc.init_done_at is not None or proc.init_failed or not self.is_current(proc):
            return
        if self._pending:
            inv = self._pending.popleft()
            inv.finish(error_outcome("Sandbox.Timedout", self._timeout_message(inv)))
        proc.kill()

    async def _watch(self, proc: RuntimeProcess, api: RuntimeAPIServer) -> None:
        code = await proc.wait()
        await api.close(abort=False)
        self._retired = {old for old in self._retired if old.has_connections} | {api}
        if self._proc is proc:
            self._proc = self._api = None
        reason = exit_reason(code)
        lost = [inv for inv in self._inflight.values() if inv.proc is proc and inv.state is not State.DONE]
        for inv in lost:
            if self._closed:
                # Stopped under it (Ctrl-C): one line says so, then its END and REPORT.
                how = f"the runtime was sent SIGTERM and ended with {reason}"
                self.log(f"{_stamp()} {inv.request_id} Stopped: aruntime serve shut down during the invocation; {how}")
                message = f"RequestId: {inv.request_id} Error: aruntime serve shut down during the invocation; {how}"
            else:
                message = f"RequestId: {inv.request_id} Error: Runtime exited with error: {reason}"
            self.complete(inv, error_outcome("Runtime.ExitError", message))
        if proc.init_done_at is None and not proc.init_failed and not proc.killed and self._pending:
            # Died during init without saying why: the invoke that started it fails.
            inv = self._pending.popleft()
            message = f"RequestId: {inv.request_id} Error: Runtime exited with error: {reason}"
            inv.finish(error_outcome("Runtime.ExitError", message))
        if not proc.killed and not self._closed:
            self.log(f"Runtime exited ({reason}); it will be started again on the next invoke")
        self._kick()
        self._ensure_process()

    def _dispatch(self, inv: Invocation, proc: RuntimeProcess) -> None:
        inv.state = State.RUNNING
        inv.started_at = time.monotonic()
        inv.deadline_ms = int(time.time() * 1000 + self.config.timeout * 1000)
        self._inflight[inv.request_id] = inv
        self._known[inv.request_id] = inv
        while len(self._known) > _REMEMBERED:
            self._known.popitem(last=False)
        inv.proc = proc
        self._timers[inv.request_id] = asyncio.get_running_loop().call_later(
            self.config.timeout, self._on_timeout, inv, proc
        )
        proc.max_memory_mb()  # remembered, in case the process is gone by REPORT time
        self._flush_reports()  # the previous END/REPORT before this START
        self.log(f"START RequestId: {inv.request_id} Version: $LATEST")

    def _on_timeout(self, inv: Invocation, proc: RuntimeProcess) -> None:
        self._timers.pop(inv.request_id, None)
        if inv.state is State.DONE:
            return
        inv.timed_out = True
        message = self._timeout_message(inv)
        self.log(f"{_stamp()} {inv.request_id} Task timed out after {self.config.timeout:.2f} seconds")
        self.complete(inv, error_outcome("Sandbox.Timedout", message), status="timeout")
        proc.kill()

    def _timeout_message(self, inv: Invocation) -> str:
        return f"RequestId: {inv.request_id} Error: Task timed out after {self.config.timeout:.2f} seconds"

    def _report(self, inv: Invocation, status: str, outcome: Outcome) -> None:
        duration = (time.monotonic() - inv.started_at) * 1000
        proc = inv.proc
        fields = [
            f"REPORT RequestId: {inv.request_id}",
            f"Duration: {duration:.2f} ms",
            f"Billed Duration: {math.ceil(duration)} ms",
            f"Memory Size: {self.config.memory} MB",
            f"Max Memory Used: {proc.max_memory_mb() if proc else 0} MB",
        ]
        if proc and not proc.init_reported and proc.init_done_at is not None:
            proc.init_reported = True
            fields.append(f"Init Duration: {(proc.init_done_at - proc.spawned_at) * 1000:.2f} ms")
        if status:
            fields.append(f"Status: {status}")
            if status == "error" and outcome.error_type:
                fields.append(f"Error Type: {outcome.error_type}")
        lines = (f"END RequestId: {inv.request_id}", "\t".join(fields))
        # A moment's grace lets the function's last output lines (read from its pipes)
        # come before END, as they were written before the response.
        self._reports[inv.request_id] = (
            asyncio.get_running_loop().call_later(0.05, self._emit_report, inv, lines),
            lines,
        )

    def _flush_reports(self) -> None:
        for request_id, (timer, lines) in list(self._reports.items()):
            timer.cancel()
            inv = self._known.get(request_id)
            if inv is not None:
                self._emit_report(inv, lines)
            self._reports.pop(request_id, None)

    def _emit_report(self, inv: Invocation, lines: tuple[str, ...]) -> None:
        self._reports.pop(inv.request_id, None)
        for line in lines:
            self._log(line)
            inv.log_lines.append(line)
        inv.reported.set()

    # -- plumbing ---------------------------------------------------------------------
    def _kick(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    def _cancel_timer(self, inv: Invocation) -> None:
        timer = self._timers.pop(inv.request_id, None)
        if timer:
            timer.cancel()

    def _later(self, delay: float, fn: Callable[[], object]) -> None:
        self._later_count += 1
        key = f"_later_{self._later_count}"

        def run() -> None:
            self._timers.pop(key, None)
            fn()

        self._timers[key] = asyncio.get_running_loop().call_later(delay, run)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Shut down as Lambda shuts an execution environment down: queued invocations fail,
        each runtime process gets SIGTERM then, after `process.SHUTDOWN_GRACE` s, SIGKILL; each
        invocation in flight ends with one `Stopped:` line, then its END and REPORT."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._flush_reports()
        while self._pending:
            self._pending.popleft().finish(error_outcome(SERVICE_EXCEPTION, "the emulator stopped"))
        if self._starting:
            await asyncio.wait({self._starting}, timeout=5)
        procs = [proc for proc in (self._proc, *self._draining) if proc is not None]
        if self._inflight:
            n = len(self._inflight)
            self.notice(f"aruntime serve: stopping with {n} invocation{'s' if n > 1 else ''} in flight: "
                        f"the runtime gets SIGTERM, then SIGKILL after {process.SHUTDOWN_GRACE:g} s")
        self._kick()
        stops = [self._spawn(proc.stop()) for proc in procs]
        if stops:
            await asyncio.wait(stops)  # each bounded by the grace period
        while self._tasks:  # the processes' watchers settle what was in flight on them
            done, _ = await asyncio.wait(set(self._tasks), timeout=5)
            if not done:
                break
        for inv in list(self._inflight.values()):
            self.complete(inv, error_outcome(SERVICE_EXCEPTION, "the emulator stopped"))
        self._flush_reports()  # END/REPORT now: the loop may not run for their short delay
        for api in {*self._retired, *([self._api] if self._api else [])}:
            await api.close()


def _stamp() -> str:
    """Now as Lambda's platform lines show it: 2026-11-27T19:09:04.795Z."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
