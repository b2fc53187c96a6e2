"""A small staged pipeline: decode (thread pool) -> infer (one thread, owns the runner) -> encode (thread pool).

    pipe = run_pipeline(paths, read_image, upscale_same_size, write_one, PipelineOptions(batch=4),
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
  ``infer`` always takes a list (of one value with ``batch=1``); ``decode`` and ``encode`` take one value.
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

    def __init__(self, index: int, item: Any, future: Future | None = None) -> None:
        self.index, self.item, self.future = index, item, future
        self.timings: dict[str, float] = {}
        self.error: BaseException | None = None
        self.stage: str | None = None

    def result(self, value: Any) -> ItemResult:
        error = self.error
        return ItemResult(self.index, self.item, error is None, value, None if error is None else _message(error),
                          self.stage, sum(self.timings.values()), dict(self.timings), error)


class _Dropped(Exception):
    """Work abandoned because the pipeline was halted."""


class _Flow:
    """The queues and events the pipeline's threads share: puts and gets that give up once halted."""

    def __init__(self, queue_size: int) -> None:
        self.decoded: queue.Queue = queue.Queue(queue_size)
        self.encoded: queue.Queue = queue.Queue(queue_size)
        self.stop = threading.Event()  # take no new item
        self.halt = threading.Event()  # drop everything, threads exit

    def put(self, q: queue.Queue, value: Any) -> bool:
        while not self.halt.is_set():
            try:
                q.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue) -> Any:
        while not self.halt.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def timed(self, stage: _Stage, name: str, fn: Callable, *args: Any) -> Any:
        if self.halt.is_set():
            raise _Dropped()
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            stage.timings[name] = stage.timings.get(name, 0.0) + time.perf_counter() - start


def _settled(stage: _Stage, name: str) -> Any:
    """The value of the stage's future; an exception of that step (other than _Dropped, which propagates)
    becomes the stage's error, and the value None."""
    try:
        return stage.future.result()  # type: ignore[union-attr]
    except _Dropped:
        raise
    except Exception as e:
        stage.error, stage.stage = e, name
        return None


class _Inference:
    """The infer thread: groups consecutive decoded values of one key (up to `batch`) into one `infer(list)`
    call, retries a failing group one by one, and hands each value to the encode pool."""

    def __init__(self, flow: _Flow, infer: Callable, encode: Callable, batch: int, key: Callable) -> None:
        self.flow, self._infer, self._encode, self.batch, self._key = flow, infer, encode, batch, key
        self.group: list[tuple[_Stage, Any]] = []
        self.group_key: Any = None
        self.error: BaseException | None = None

    def run(self, pool: ThreadPoolExecutor) -> None:
        flow = self.flow
        try:
            while True:
                stage = flow.get(flow.decoded)
                if stage is _END:
                    break
                value = _settled(stage, "decode")  # _Dropped: caught below
                if stage.error is not None:
                    if not self.flush(pool) or not flow.put(flow.encoded, stage):
                        return
                    continue
                key = self._key(value) if self.batch > 1 else None
                if self.group and (key is None or key != self.group_key) and not self.flush(pool):
                    return
                self.group.append((stage, value))
                self.group_key = key
                if (len(self.group) >= self.batch or key is None) and not self.flush(pool):
                    return
            if not self.flush(pool):
                return
        except _Dropped:
            return
        except BaseException as e:
            self.error = e
        flow.put(flow.encoded, _END)

    def flush(self, pool: ThreadPoolExecutor) -> bool:
        outputs, self.group = self.infer(self.group), []
        for stage, value in outputs:
            if stage.error is None:
                stage.future = pool.submit(self.flow.timed, stage, "encode", self._encode, value)
            if not self.flow.put(self.flow.encoded, stage):
                return False
        return True

    def infer(self, group: list[tuple[_Stage, Any]]) -> list[tuple[_Stage, Any]]:
        """[(stage, decoded)] -> [(stage, inferred or None with stage.error set)]."""
        if not group:
            return []
        if self.flow.halt.is_set():
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
            return [r for one in group for r in self.infer([one])]  # one by one: only the bad item fails
        share = (time.perf_counter() - start) / len(group)
        for stage, _ in group:
            stage.timings["infer"] = share
        return list(zip((s for s, _ in group), outputs))


class Pipeline:
    """Iterable of ItemResult; see the module docstring. Use :func:`run_pipeline` to make one."""

    def __init__(self, items: Iterable[Any], decode: Callable[[Any], Any], infer: Callable[[list], list],
                 encode: Callable[[Any], Any], options: PipelineOptions | None = None, *,
                 progress: Callable[[ItemResult], None] | None = None,
                 batch_key: Callable[[Any], Any] = _default_key) -> None:
        self.options = options = options or PipelineOptions()
        self._items, self._decode, self._progress = items, decode, progress
        self._flow = _Flow(options.queue_size)
        self._inference = _Inference(self._flow, infer, encode, options.batch, batch_key)
        self._feed_error: BaseException | None = None
        self._started = False
        self.interrupted: int | None = None  # the signal that stopped the run
        self.taken = 0  # items taken from the input
        self.done = 0  # results yielded
        self.failed = 0

    @property
    def max_in_flight(self) -> int:
        """Items between the start of their decode and their result being yielded, at most."""
        return 2 * self.options.queue_size + self.options.batch + 2

    def stop(self, drop: bool = False) -> None:
        """Take no new item; `drop=True` also abandons the items in flight."""
        self._flow.stop.set()
        if drop:
            self._flow.halt.set()

    def _feed(self, pool: ThreadPoolExecutor) -> None:
        flow = self._flow
        try:
            for index, item in enumerate(self._items):
                if flow.stop.is_set():
                    break
                stage = _Stage(index, item)
                stage.future = pool.submit(flow.timed, stage, "decode", self._decode, item)
                self.taken += 1
                if not flow.put(flow.decoded, stage):
                    return
        except BaseException as e:  # the input iterator itself failed: not one item's fault
            self._feed_error = e
        flow.put(flow.decoded, _END)

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
        if self.options.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        decode_pool = ThreadPoolExecutor(self.options.decode_workers, thread_name_prefix="agileir-decode")
        encode_pool = ThreadPoolExecutor(self.options.encode_workers, thread_name_prefix="agileir-encode")
        threads = [threading.Thread(target=self._feed, args=(decode_pool,), name="agileir-feed", daemon=True),
                   threading.Thread(target=self._inference.run, args=(encode_pool,), name="agileir-infer",
                                    daemon=True)]
        for t in threads:
            t.start()
        try:
            yield from self._collect()
        finally:
            self.stop(drop=True)
            for t in threads:
                t.join()
            decode_pool.shutdown(wait=True, cancel_futures=True)
            encode_pool.shutdown(wait=True, cancel_futures=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _collect(self) -> Iterator[ItemResult]:
        flow = self._flow
        while True:
            stage = flow.get(flow.encoded)
            if stage is _END:
                break
            value = None
            if stage.error is None:
                try:
                    value = _settled(stage, "encode")
                except _Dropped:
                    break
            result = stage.result(value)
            self.done += 1
            self.failed += not result.ok
            if self._progress is not None:
                self._progress(result)
            yield result
            if not result.ok and self.options.fail_fast:
                self.stop(drop=True)
                return
        error = self._feed_error or self._inference.error
        if error is not None:
            raise error
        if self.interrupted is not None:
            raise PipelineInterrupted(self.interrupted, self.done)


def run_pipeline(items: Iterable[Any], decode: Callable[[Any], Any], infer: Callable[[list], list],
                 encode: Callable[[Any], Any], options: PipelineOptions | None = None, *,
                 progress: Callable[[ItemResult], None] | None = None,
                 batch_key: Callable[[Any], Any] = _default_key) -> Pipeline:
    """`decode(item) -> value`, `infer([value, ...]) -> [out, ...]` (one value per call with options.batch 1),
    `encode(out) -> result`; `options` (agileir.upscale.options.PipelineOptions): batch, worker threads, queue
    size, fail_fast, signals. Returns a :class:`Pipeline`: iterate it for the :class:`ItemResult` of every item
    taken, in input order."""
    return Pipeline(items, decode, infer, encode, options, progress=progress, batch_key=batch_key)


__all__ = ["ItemResult", "Pipeline", "PipelineInterrupted", "run_pipeline"]
