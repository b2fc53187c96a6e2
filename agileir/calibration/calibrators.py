"""Activation ranges of the quantized layers' inputs, with ONNX Runtime's calibration algorithms.

onnxruntime.quantization's calibrators keep every intermediate output of every image in memory (GBs for
AgileIR-light) and run on all cores. Here the standard-form graph runs on one thread with only the
needed tensors as extra outputs, in two passes over the images: min/max first, then histograms over the
final range. Those histograms are bin for bin the ones ORT's HistogramCollector builds from all images
at once, and ORT's own code turns them into ranges (entropy, percentile); `mse` is ours, on the same
histogram. Everything is deterministic: same images, same graph -> same ranges.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import CALIBRATORS, DEFAULT_CALIBRATOR  # noqa: F401  (re-exported)

# entropy: TensorRT's legacy entropy calibrator settings (2048-bin histogram, 128 quantized bins)
SETTINGS: dict[str, dict[str, Any]] = {
    "max": {},
    "entropy": {"num_bins": 2048, "num_quantized_bins": 128},
    "percentile": {"num_bins": 2048, "percentile": 99.99},
    "mse": {"num_bins": 2048, "candidates": 1024},
}
Range = tuple[float, float]


def _session(proto: onnx.ModelProto, tensors: list[str]):
    from ..runtime.ort import create_session

    model = onnx.ModelProto.FromString(proto.SerializeToString())
    outputs = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in outputs:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = create_session(model, ["CPUExecutionProvider"], threads=1, optimize=False)  # as ORT's calibrators
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        values = dict(zip(names, session.run(None, {input_name: batch})))
        return {t: values[t] for t in tensors}

    return run


def activation_ranges(standard: onnx.ModelProto, tensors: list[str], images: list[np.ndarray],
                      method: str = DEFAULT_CALIBRATOR, progress: Callable[[int], None] | None = None,
                      ) -> dict[str, Range]:
    """(lo, hi) per tensor of the standard-form graph; `progress` gets progress_steps() calls."""
    if method not in CALIBRATORS:
        raise ValueError(f"unknown calibrator {method!r} (choose from {', '.join(CALIBRATORS)})")
    if not images:
        raise ValueError("no calibration images")
    run = _session(standard, tensors)

    def passes() -> Iterator[dict[str, np.ndarray]]:
        for image in images:
            yield run(image)
            if progress:
                progress(1)

    extremes = value_extremes(passes(), tensors)
    if method == "max":
        return {t: (float(lo), float(hi)) for t, (lo, hi, _) in extremes.items()}
    histograms = build_histograms(passes(), method, extremes)
    if method == "mse":
        return {t: _tick(progress, _mse_range(h[0], h[1], h[2], h[3], SETTINGS["mse"]["candidates"]))
                for t, h in histograms.items()}
    if method == "entropy":
        bins = SETTINGS["entropy"]["num_quantized_bins"]
        return {t: _tick(progress, entropy_range(h, bins)) for t, h in histograms.items()}
    return {t: _tick(progress, _ort_range(method, t, h)) for t, h in histograms.items()}


def value_extremes(batches: Iterable[dict[str, np.ndarray]], tensors: list[str]) -> dict[str, tuple]:
    """tensor -> (min, max, min |x|) over all batches, as float32."""
    lo = {t: np.float32(np.inf) for t in tensors}
    hi = {t: np.float32(-np.inf) for t in tensors}
    abs_lo = {t: np.float32(np.inf) for t in tensors}
    for values in batches:
        for t in tensors:
            a = values[t]
            lo[t], hi[t] = min(lo[t], np.nanmin(a)), max(hi[t], np.nanmax(a))
            abs_lo[t] = min(abs_lo[t], np.nanmin(np.abs(a)))
    return {t: (lo[t], hi[t], abs_lo[t]) for t in tensors}


def build_histograms(batches: Iterable[dict[str, np.ndarray]], method: str, extremes: dict[str, tuple]) -> dict:
    """ORT HistogramCollector.histogram_dict for `method`, batch by batch over the final range.

    entropy/mse: histogram of x on [-t, t], t = max |x| (ORT's collect_value); percentile: histogram
    of |x| on [min |x|, max |x|] (ORT's symmetric collect_absolute_value)."""
    bins = SETTINGS[method]["num_bins"]
    absolute = method == "percentile"
    ranges: dict[str, Any] = {}  # float32 ends, exactly as ORT's collector passes them
    for t, (lo, hi, abs_lo) in extremes.items():
        top = np.float32(max(abs(lo), abs(hi)))
        ranges[t] = (abs_lo, top) if absolute else (-top, top)
    hists = {t: np.zeros(bins, np.int64) for t in extremes}
    edges: dict[str, np.ndarray] = {}
    for values in batches:
        for t in extremes:
            flat = np.abs(values[t]).ravel() if absolute else values[t].ravel()
            h, e = np.histogram(flat, bins, range=ranges[t])
            hists[t] += h
            edges.setdefault(t, e.astype(flat.dtype) if absolute else e)
    if absolute:
        return {t: (hists[t], edges[t], lo, hi) for t, (lo, hi, _) in extremes.items()}
    return {t: (hists[t], edges[t], lo, hi, ranges[t][1]) for t, (lo, hi, _) in extremes.items()}


def progress_steps(method: str, images: int, tensors: int) -> int:
    """How many `progress` calls activation_ranges makes."""
    return images if method == "max" else 2 * images + tensors


def _tick(progress, value):
    if progress:
        progress(1)
    return value


def _ort_range(method: str, tensor: str, histogram: tuple) -> Range:
    from onnxruntime.quantization.calibrate import HistogramCollector

    settings = SETTINGS[method]
    collector = HistogramCollector(method, symmetric=method == "percentile", num_bins=settings["num_bins"],
                                   num_quantized_bins=settings.get("num_quantized_bins", 128),
                                   percentile=settings.get("percentile", 99.999), scenario="same")
    collector.histogram_dict = {tensor: histogram}
    with contextlib.redirect_stdout(io.StringIO()):  # the collector prints its progress
        lo, hi = collector.compute_collection_result()[tensor][:2]
    return float(lo), float(hi)


def entropy_range(histogram: tuple, num_quantized_bins: int = 128) -> Range:
    """ORT's KL-divergence threshold (HistogramCollector.get_entropy_threshold), every candidate at once.

    ORT's loop spends ~1.3 s per tensor in Python sums; here each block of candidate thresholds is one set of
    array operations (~0.2 s). Bin merging and smoothing are ORT's, KL is summed in float64 and rounded to
    the histogram's float type before the argmin, as ORT stores it; the chosen threshold is ORT's except on
    near-ties of the divergence (tested)."""
    hist, edges, lo, hi = np.asarray(histogram[0], np.int64), histogram[1], histogram[2], histogram[3]
    n = hist.size
    zero, half = n // 2, num_quantized_bins // 2
    i = np.arange(half, zero + 1)
    start, end = zero - i, np.minimum(zero + i + 1, n)
    csum = np.concatenate([[0], np.cumsum(hist)])
    block = 96  # rows per block: keeps the (block, n) arrays in cache
    kl = np.concatenate([_kl_divergences(hist, csum, start[b:b + block], end[b:b + block], num_quantized_bins)
                         for b in range(0, i.size, block)]).astype(edges.dtype)
    best = int(np.argmin(kl))
    return float(max(edges[start[best]], lo)), float(min(edges[end[best]], hi))


def _kl_divergences(hist, csum, start, end, nq: int, eps: float = 1e-4) -> np.ndarray:
    """KL(p || q) of ORT's entropy search for the candidate slices hist[start:end], one row each."""
    n, rows = hist.size, np.arange(start.size)
    length = end - start
    cols = np.arange(int(length.max()))
    valid = cols[None] < length[:, None]
    sliced = hist[np.minimum(start[:, None] + cols[None], n - 1)]
    sliced[~valid] = 0
    p = sliced.copy()  # the slice with the outliers folded into its end bins
    p[rows, 0] += csum[start]
    p[rows, length - 1] += csum[n] - csum[end]
    merged = length // nq
    grouped = nq * merged
    counts = np.zeros((rows.size, cols.size + 1), np.int64)
    np.cumsum(sliced, axis=1, out=counts[:, 1:])
    nonzeros = np.zeros_like(counts)
    np.cumsum(p != 0, axis=1, out=nonzeros[:, 1:])
    k = np.arange(nq + 1)[None] * merged[:, None]
    counts_k = np.take_along_axis(counts, k, 1)
    qbins, norm = np.diff(counts_k, axis=1), np.diff(np.take_along_axis(nonzeros, k, 1), axis=1)
    qbins[:, -1] += counts[rows, length] - counts_k[:, -1]
    per_bin = np.where(norm > 0, qbins // np.maximum(norm, 1), 0)  # ORT's int64 q truncates
    q = np.take_along_axis(per_bin, np.minimum(cols[None] // merged[:, None], nq - 1), 1)
    q[cols[None] >= grouped[:, None]] = 0
    ps, p_ok = _smoothed(p, valid, eps)
    qs, q_ok = _smoothed(q, valid, eps)
    ps /= ps.sum(1, keepdims=True)
    qs /= qs.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = ps * np.log(ps / qs)
    terms[~valid | (ps <= 0)] = 0
    return np.where(p_ok & q_ok, terms.sum(1), np.inf)


def _smoothed(d: np.ndarray, valid: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """ORT's smooth_distribution per row: zeros become eps, taken off the non-zero bins."""
    zeros, nonzero = valid & (d == 0), d != 0
    n_nonzero = nonzero.sum(1)
    out = d.astype(np.float64) + eps * zeros
    out -= (eps * zeros.sum(1) / np.maximum(n_nonzero, 1))[:, None] * nonzero
    return out, n_nonzero > 0


def _mse_range(hist: np.ndarray, edges: np.ndarray, lo, hi, candidates: int) -> Range:
    """Symmetric int8 clipping threshold that minimises the histogram's expected squared error."""
    centers = (edges[:-1].astype(np.float64) + edges[1:]) / 2
    positive = edges[len(hist) // 2 + 1:].astype(np.float64)
    step = max(1, len(positive) // candidates)
    best, best_err = float(positive[-1]), np.inf
    for chunk in np.array_split(positive[::step], max(1, len(positive[::step]) // 128)):
        scale = chunk[:, None] / 127.0
        q = np.clip(np.round(centers[None] / scale), -127, 127) * scale
        err = ((centers[None] - q) ** 2 * hist[None]).sum(axis=1)
        i = int(np.argmin(err))
        if err[i] < best_err:
            best, best_err = float(chunk[i]), float(err[i])
    return max(float(lo), -best), min(float(hi), best)
