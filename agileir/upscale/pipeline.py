"""A small staged pipeline: decode (thread pool) -> infer (one thread, owns the runner) -> encode (thread pool).

    pipe = run_pipeline(paths, read_image, upscale_one, write_one, PipelineOptions(batch=4),
                        batch_key=lambda image: image.rgb.shape)
    for result in pipe:                     # ItemResult, in input order
        print(result.item, "ok" if result.ok else result.error)

Rules:

* Results come back in input order, one per item taken (``ItemResult``: ok / error message and stage, seconds).
* A failing item (an exception in decode, infer or encode) is reported and skipped; the others complete.
  With ``fail_fast=True`` the first failure is yielded and the pipeline stops (nothing more is yielded, pending
  work is cancelled).
* Bounded queues give backpressure: at most ``Pipeline.max_in_flight`` items (``2 * queue_size + batch + 2``)
  are between the start of their decode and their result being yielded, whatever the number of items, so
  memory is bounded by the queue sizes.
* Batching (``batch > 1``): consecutive decoded items with the same ``batch_key`` (default: the value's
  ``.shape``; ``None`` never batches) are grouped, up to ``batch``, into one ``infer(list)`` call that returns
  a list of the same length. If a batch fails, its items are retried one by one so only the bad one fails.
  With ``batch=1`` ``infer`` takes one decoded value.
* SIGINT / SIGTERM (when iterated from the main thread and ``handle_signals``): the first signal stops taking
  new items, items in flight finish and are yielded, then :class:`PipelineInterrupted` is raised; a second
  signal raises ``KeyboardInterrupt`` at once and drops what is in flight (work not started is cancelled).
  Files written by encode must go through :mod:`agileir.io.atomic`, so no partial file is ever left.
* When the iteration ends (normally, by an exception, or because the caller stops iterating), every worker
  thread has finished: nothing is written after the pipeline returns.

Standard library only (threading, queue, concurrent.futures); options: agileir.upscale.options.PipelineOptions.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .options import PipelineOptions

_POLL_S = 0.05
_END = object()  # end of stream marker in the queues


@dataclass
class ItemResult:
    index: int  # position in the input
    item: Any  # the input item (e.g. a path)
    ok: bool
    value: Any = None  # what encode returned
    error: str | None = None  # one line: "ExceptionType: message" (or the message of a ValueError/OSError)
    stage: str | None = None  # where it failed: "decode", "infer" or "encode"
    seconds: float = 0.0  # decode + infer (its share of the batch) + encode time
    timings: dict[str, float] = field(default_factory=dict)
    exception: BaseException | None = field(default=None, repr=False)


class PipelineInterrupted(KeyboardInterrupt):
    """Raised after a SIGINT/SIGTERM once the items in flight are done (their results were yielded)."""

    def __init__(self, signum: int, done: int) -> None:
        super().__init__(f"interrupted by signal {signum} after {done} items")
        self.signum, self.done = signum, done


def _message(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, (ValueError, OSError)) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _default_key(value: Any) -> Any:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


class _Stage:
    """A per-item value moving through the pipeline."""

    __slots__ = ("index", "item", "future", "timings", "error", "stage")

    def __init__(self, index: int, item: Any, future: Future) -> None:
        self.index, self.item, self.future = index, item, future
        self.timings: dict[str, float] = {}
        self.error: BaseException | None = None
        self.stage: str | None = None


class Pipeline:
    """Iterable of ItemResult; see the module docstring. Use :func:`run_pipeline` to make one."""

    def __init__(self, items: Iterable[Any], decode: Callable[[Any], Any], infer: Callable[[Any], Any],
                 encode: Callable[[Any, Any], Any] | Callable[[Any], Any], options: PipelineOptions | None = None, *,
                 progress: Callable[[ItemResult], None] | None = None,
                 batch_key: Callable[[Any], Any] = _default_key, encode_takes_item: bool = False) -> None:
        options = options or PipelineOptions()
        self._items, self._decode, self._infer, self._encode = items, decode, infer, encode
        self.decode_workers, self.encode_workers = options.decode_workers, options.encode_workers
        self.queue_size, self.batch, self.fail_fast = options.queue_size, options.batch, options.fail_fast
        self._progress, self._key, self._encode_takes_item = progress, batch_key, encode_takes_item
        self._handle_signals = options.handle_signals
        self._stop = threading.Event()  # take no new item
        self._halt = threading.Event()  # drop everything, threads exit
        self._thread_error: BaseException | None = None
        self._started = False
        self.interrupted: int | None = None  # the signal that stopped the run
        self.taken = 0  # items taken from the input
        self.done = 0  # results yielded
        self.failed = 0

    @property
    def max_in_flight(self) -> int:
        """Items between the start of their decode and their result being yielded, at most."""
        return 2 * self.queue_size + self.batch + 2

    def stop(self, drop: bool = False) -> None:
        """Take no new item; `drop=True` also abandons the items in flight."""
        self._stop.set()
        if drop:
            self._halt.set()

    # -- queue helpers that give up when halted --------------------------------------------------
    def _put(self, q: queue.Queue, value: Any) -> bool:
        while not self._halt.is_set():
            try:
                q.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while not self._halt.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    # -- stages ----------------------------------------------------------------------------------
    def _timed(self, stage: _Stage, name: str, fn: Callable, *args: Any) -> Any:
        if self._halt.is_set():
            raise _Dropped()
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            stage.timings[name] = stage.timings.get(name, 0.0) + time.perf_counter() - start

    @staticmethod
    def _settled(stage: _Stage, name: str) -> Any:
        """The value of the stage's future; an exception of that step (other than _Dropped, which propagates)
        becomes the stage's error, and the value None."""
        try:
            return stage.future.result()
        except _Dropped:
            raise
        except Exception as e:
            stage.error, stage.stage = e, name
            return None

    def _feed(self, pool: ThreadPoolExecutor, decoded: queue.Queue) -> None:
        try:
            for index, item in enumerate(self._items):
                if self._stop.is_set():
                    break
                stage = _Stage(index, item, None)  # type: ignore[arg-type]
                stage.future = pool.submit(self._timed, stage, "decode", self._decode, item)
                self.taken += 1
                if not self._put(decoded, stage):
                    return
        except BaseException as e:  # the input iterator itself failed: not one item's fault
            self._thread_error = e
        self._put(decoded, _END)

    def _run_infer(self, group: list[tuple[_Stage, Any]]) -> list[tuple[_Stage, Any]]:
        """[(stage, decoded)] -> [(stage, inferred or None with stage.error set)]."""
        if self.batch == 1:
            stage, value = group[0]
            try:
                return [(stage, self._timed(stage, "infer", self._infer, value))]
            except _Dropped:
                raise
            except Exception as e:
                stage.error, stage.stage = e, "infer"
                return [(stage, None)]
        if self._halt.is_set():
            raise _Dropped()
        start = time.perf_counter()
        try:
            outputs = list(self._infer([value for _, value in group]))
            if len(outputs) != len(group):
                raise ValueError(f"infer returned {len(outputs)} results for a batch of {len(group)}")
        except Exception as e:
            if len(group) == 1:
                group[0][0].error, group[0][0].stage = e, "infer"
                return [(group[0][0], None)]
            # retry one by one: only the bad item fails
            return [r for one in group for r in self._run_infer([one])]
        share = (time.perf_counter() - start) / len(group)
        for stage, _ in group:
            stage.timings["infer"] = share
        return list(zip((s for s, _ in group), outputs))

    def _infer_loop(self, pool: ThreadPoolExecutor, decoded: queue.Queue, encoded: queue.Queue) -> None:
        group: list[tuple[_Stage, Any]] = []
        group_key: Any = None

        def flush() -> bool:
            nonlocal group
            outputs, group = self._run_infer(group), []
            for stage, value in outputs:
                if stage.error is None:
                    args = (stage.item, value) if self._encode_takes_item else (value,)
                    stage.future = pool.submit(self._timed, stage, "encode", self._encode, *args)
                if not self._put(encoded, stage):
                    return False
            return True

        try:
            while True:
                stage = self._get(decoded)
                if stage is _END:
                    break
                value = self._settled(stage, "decode")  # _Dropped: caught below
                if stage.error is not None:
                    if (group and not flush()) or not self._put(encoded, stage):
                        return
                    continue
                key = self._key(value) if self.batch > 1 else None
                if group and (key is None or key != group_key):
                    if not flush():
                        return
                group.append((stage, value))
                group_key = key
                if len(group) >= self.batch or key is None:
                    if not flush():
                        return
            if group and not flush():
                return
        except _Dropped:
            return
        except BaseException as e:
            self._thread_error = e
        self._put(encoded, _END)

    # -- the consumer ----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.interrupted is not None:
            self.stop(drop=True)
            raise KeyboardInterrupt()
        self.interrupted = signum
        self.stop()

    def __iter__(self) -> Iterator[ItemResult]:
        if self._started:
            raise RuntimeError("a pipeline runs once")
        self._started = True
        return self._results()

    def _results(self) -> Iterator[ItemResult]:
        previous = {}
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        decoded: queue.Queue = queue.Queue(self.queue_size)
        encoded: queue.Queue = queue.Queue(self.queue_size)
        decode_pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="agileir-decode")
        encode_pool = ThreadPoolExecutor(self.encode_workers, thread_name_prefix="agileir-encode")
        threads = [threading.Thread(target=self._feed, args=(decode_pool, decoded), name="agileir-feed", daemon=True),
                   threading.Thread(target=self._infer_loop, args=(encode_pool, decoded, encoded),
                                    name="agileir-infer", daemon=True)]
        for t in threads:
            t.start()
        try:
            while True:
                stage = self._get(encoded)
                if stage is _END:
                    break
                value = None
                if stage.error is None:
                    try:
                        value = self._settled(stage, "encode")
                    except _Dropped:
                        break
                error = stage.error
                result = ItemResult(stage.index, stage.item, error is None, value,
                                    None if error is None else _message(error), stage.stage,
                                    sum(stage.timings.values()), dict(stage.timings), error)
                self.done += 1
                self.failed += error is not None
                if self._progress is not None:
                    self._progress(result)
                yield result
                if error is not None and self.fail_fast:
                    self.stop(drop=True)
                    return
            if self._thread_error is not None:
                raise self._thread_error
            if self.interrupted is not None:
                raise PipelineInterrupted(self.interrupted, self.done)
        finally:
            self.stop(drop=True)
            for t in threads:
                t.join()
            decode_pool.shutdown(wait=True, cancel_futures=True)
            encode_pool.shutdown(wait=True, cancel_futures=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Dropped(Exception):
    """Work abandoned because the pipeline was halted."""


def run_pipeline(items: Iterable[Any], decode: Callable[[Any], Any], infer: Callable[[Any], Any],
                 encode: Callable[..., Any], options: PipelineOptions | None = None, *,
                 progress: Callable[[ItemResult], None] | None = None,
                 batch_key: Callable[[Any], Any] = _default_key, encode_takes_item: bool = False) -> Pipeline:
    """`decode(item) -> value`, `infer(value) -> out` (`infer([value, ...]) -> [out, ...]` when options.batch > 1),
    `encode(out) -> result` (`encode(item, out)` with `encode_takes_item=True`, e.g. to name the output file);
    `options` (agileir.upscale.options.PipelineOptions): batch, worker threads, queue size, fail_fast, signals.
    Returns a :class:`Pipeline`: iterate it for the :class:`ItemResult` of every item taken, in input order."""
    return Pipeline(items, decode, infer, encode, options, progress=progress, batch_key=batch_key,
                    encode_takes_item=encode_takes_item)


__all__ = ["ItemResult", "Pipeline", "PipelineInterrupted", "run_pipeline"]
