"""How long-running library work says what it is doing: the one progress abstraction of the toolkit.

A :class:`Progress` turns stages into output lines with elapsed time (``[standard] trace ...`` then
``[standard] trace: 8.1 s``), a tqdm bar with an ETA where a stage has a count, a heartbeat line (elapsed
time, and count and ETA where there is one) while a stage runs long, INFO records on the ``agileir`` logger, and :class:`ProgressEvent`\\ s to an
optional callback (a notebook, the Ray actor or a benchmark collecting per-stage seconds)::

    progress = Progress(echo=print)                    # the CLI passes click.echo
    with progress.stage("trace", label="standard"):   # lines at start and end
        ...
    with progress.stage("validate", total=4) as step:  # a bar with an ETA
        for x in items:
            ...; step.advance()

Library functions take ``progress: Progress | None``; None is :func:`quiet` (logging only).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

LOGGER = logging.getLogger("agileir")
HEARTBEAT_S = 5.0  # a stage without a count says it is still running at least this often


@dataclass(frozen=True)
class ProgressEvent:
    kind: str  # "start", "advance", "end" (of a stage) or "note" (a plain line)
    stage: str = ""
    label: str = ""  # what the stage works on: a form, "standard fp16", a peer ...
    done: int = 0
    total: int | None = None
    elapsed_s: float = 0.0
    message: str = ""


class Stage:
    """An open stage: advance() moves its count (and bar); note() prints a line under it."""

    def __init__(self, progress: "Progress", name: str, label: str, total: int | None):
        self.progress, self.name, self.label, self.total = progress, name, label, total
        self.done, self.start = 0, time.perf_counter()
        self.bar = None  # drawn after the stage's first line

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def line(self, text: str = "") -> str:
        return (f"[{self.label}] " if self.label else "") + (text or self.name)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        self.progress._event(ProgressEvent("advance", self.name, self.label, self.done, self.total, self.elapsed))

    def note(self, message: str) -> None:
        self.progress.note(self.line(message))


class Progress:
    """Stage lines to `echo` (None: none), bars on `bar_file` (None: none), records on the 'agileir' logger and
    events to `callback`. While no line was written for `heartbeat_s`, the open stage repeats its line with the
    elapsed time, count and ETA (when the running code lets Python threads run)."""

    def __init__(self, echo: Callable[[str], None] | None = None, callback: Callable[[ProgressEvent], None] | None = None,
                 bar_file=None, heartbeat_s: float = HEARTBEAT_S):
        self.echo, self.callback, self.bar_file, self.heartbeat_s = echo, callback, bar_file, heartbeat_s
        self._lock = threading.Lock()
        self._last_line = time.perf_counter()
        self._counting: list[Stage] = []  # open stages that count the stages ending inside them
        self._open: list[Stage] = []  # the innermost open stage beats

    @classmethod
    def for_terminal(cls, echo: Callable[[str], None], callback=None) -> "Progress":
        """The CLI's: lines to `echo`, bars on stderr."""
        return cls(echo, callback, bar_file=sys.stderr)

    def note(self, message: str) -> None:
        """One line (also an INFO record and a 'note' event)."""
        LOGGER.info(message)
        with self._lock:
            self._last_line = time.perf_counter()
            if self.echo is not None:
                self.echo(message)
        self._event(ProgressEvent("note", message=message))

    @contextlib.contextmanager
    def stage(self, name: str, label: str = "", total: int | None = None, what: str = "",
              counts_stages: bool = False) -> Iterator[Stage]:
        """A stage: `what` (default: `name`) ' ...' at the start, '<name>: <seconds> s' at the end. With
        `counts_stages`, its count (and bar) advances by one whenever a stage inside it ends."""
        stage = Stage(self, name, label, total)
        self.note(stage.line(f"{what or name} ..."))
        stage.bar = self._bar(stage.line(), total) if total else None
        self._event(ProgressEvent("start", name, label, 0, total))
        stop = threading.Event()
        beat = None
        if self.echo is not None and self.heartbeat_s:
            beat = threading.Thread(target=self._heartbeat, args=(stage, what or name, stop), daemon=True)
            beat.start()
        if counts_stages:
            self._counting.append(stage)
        self._open.append(stage)
        try:
            yield stage
        finally:
            self._open.remove(stage)
            if counts_stages:
                self._counting.remove(stage)
            stop.set()
            if beat is not None:
                beat.join()
            if stage.bar is not None:
                stage.bar.close()
        self.note(stage.line(f"{name}: {stage.elapsed:.1f} s"))
        self._event(ProgressEvent("end", name, label, stage.done, total, stage.elapsed))
        for outer in self._counting:
            outer.advance()

    def _heartbeat(self, stage: Stage, what: str, stop: threading.Event) -> None:
        while not stop.wait(min(1.0, self.heartbeat_s)):
            innermost = self._open and self._open[-1] is stage
            if innermost and time.perf_counter() - self._last_line >= self.heartbeat_s and not stop.is_set():
                self.note(stage.line(f"{what} ... {stage.elapsed:.0f} s{_count(stage)}"))

    def _bar(self, desc: str, total: int):
        if self.bar_file is None:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=self.bar_file, leave=False, mininterval=1.0)

    def _event(self, event: ProgressEvent) -> None:
        if self.callback is not None:
            self.callback(event)


def _count(stage: Stage) -> str:
    """', 3/10, ETA 12 s' for a counted stage."""
    if not stage.total:
        return ""
    eta = f", ETA {stage.elapsed / stage.done * (stage.total - stage.done):.0f} s" if stage.done else ""
    return f", {stage.done}/{stage.total}{eta}"


def quiet() -> Progress:
    """No lines, no bars: the 'agileir' logger only."""
    return Progress()


def as_progress(progress: Progress | None = None, echo: Callable[[str], None] | None = None) -> Progress:
    """The Progress a library function uses: the one given, else one that prints lines to `echo`."""
    if progress is not None:
        return progress
    return Progress(echo) if echo is not None else quiet()
