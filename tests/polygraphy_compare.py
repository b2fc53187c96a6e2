"""Test tooling: raw output parity between runners with Polygraphy's Comparator (`Comparator.run` +
`compare_accuracy`), so agileir's runners are checked against Polygraphy's own `TrtRunner` / `OnnxrtRunner`.

The comparison itself is agileir's one parity function (`agileir.runtime.parity.float_parity`), given to
Polygraphy as its compare function. Needs polygraphy (the dev extra).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from agileir.runtime.base import INPUT, Runner
from agileir.runtime.parity import float_parity


def as_polygraphy(runner: Runner) -> Any:
    """A polygraphy BaseRunner driving an agileir runner (float32 input `lr`, dynamic B/H/W)."""
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata

    class AgileirRunner(BaseRunner):
        def __init__(self, inner: Runner) -> None:
            super().__init__(name=f"agileir-{inner.backend}-{inner.precision}-{id(inner):x}")
            self.inner = inner

        def activate_impl(self) -> None:
            self.inner.activate()

        def get_input_metadata_impl(self):
            return TensorMetadata().add(INPUT, np.float32, ("batch", 3, "height", "width"))

        def infer_impl(self, feed_dict):
            outputs = self.inner.infer(feed_dict)
            self.inference_time = self.inner.last_inference_time()
            return OrderedDict(outputs)

        def deactivate_impl(self) -> None:
            self.inner.deactivate()

    return AgileirRunner(runner)


def psnr_compare_func(min_psnr_db: float, record: list | None = None):
    """A Polygraphy compare_func: output name -> PSNR(run0, run1) >= min_psnr_db (PSNRs appended to `record`)."""
    def compare(iter0, iter1) -> OrderedDict:
        result = OrderedDict()
        for name in iter0.keys() & iter1.keys():
            value = float_parity(iter0[name], iter1[name])["psnr_db"]
            if record is not None:
                record.append({"runners": (iter0.runner_name, iter1.runner_name), "output": name, "psnr_db": value})
            result[name] = value >= min_psnr_db
        return result
    return compare


def compare_runners(runners: Sequence[Any], feeds: Sequence[dict[str, np.ndarray]],
                    min_psnr_db: float) -> tuple[bool, list[dict]]:
    """Run every runner (agileir runners are wrapped; Polygraphy runners pass as they are) on every feed dict
    and compare each with the first. Returns (all passed, [{runners, output, psnr_db}, ...])."""
    from polygraphy.comparator import Comparator

    wrapped = [as_polygraphy(r) if isinstance(r, Runner) else r for r in runners]
    results = Comparator.run(wrapped, data_loader=list(feeds))
    record: list[dict] = []
    accuracy = Comparator.compare_accuracy(results, compare_func=psnr_compare_func(min_psnr_db, record))
    return bool(accuracy), record
