"""The reference GSWA op against a deliberately naive implementation (explicit roll, window partition,
Swin's slice-built mask tensor, loops), in float64."""
import numpy as np
import pytest
import torch

from agileir.models.gswa import WindowSpec, gswa, relative_position_index


def naive_gswa(q, k, v, dw_w, dw_b, table, ws, shift, scale):
    q, k, v = (t.double().numpy() for t in (q, k, v))
    B, ck, H, W = q.shape
    cv = v.shape[1]
    if shift:
        q, k, v = (np.roll(t, (-shift, -shift), axis=(2, 3)) for t in (q, k, v))
    # Swin's mask: label slices of the shifted image, compare labels inside each window
    img = np.zeros((H, W))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)) if shift else (slice(None),):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)) if shift else (slice(None),):
            img[hs, wsl] = cnt
            cnt += 1
    out = np.zeros((B, cv, H, W))
    for b in range(B):
        for wy in range(0, H, ws):
            for wx in range(0, W, ws):
                qw = q[b, :, wy:wy + ws, wx:wx + ws]
                if dw_w is not None:
                    padded = np.zeros((ck, ws + 4, ws + 4))
                    padded[:, 2:-2, 2:-2] = qw
                    conv = np.zeros_like(qw)
                    for c in range(ck):
                        for i in range(ws):
                            for j in range(ws):
                                conv[c, i, j] = (padded[c, i:i + 5, j:j + 5] * dw_w[c, 0].double().numpy()).sum()
                        conv[c] += float(dw_b[c])
                    qw = conv
                labels = img[wy:wy + ws, wx:wx + ws].reshape(-1)
                qt = qw.reshape(ck, -1)
                kt = k[b, :, wy:wy + ws, wx:wx + ws].reshape(ck, -1)
                vt = v[b, :, wy:wy + ws, wx:wx + ws].reshape(cv, -1)
                n = ws * ws
                logits = np.zeros((n, n))
                for a in range(n):
                    for m in range(n):
                        ya, xa, ym, xm = a // ws, a % ws, m // ws, m % ws
                        rel = (ya - ym + ws - 1) * (2 * ws - 1) + (xa - xm + ws - 1)
                        logits[a, m] = scale * qt[:, a] @ kt[:, m] + float(table[rel])
                        if labels[a] != labels[m]:
                            logits[a, m] += -100.0
                p = np.exp(logits - logits.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                out[b, :, wy:wy + ws, wx:wx + ws] = (vt @ p.T).reshape(cv, ws, ws)
    if shift:
        out = np.roll(out, (shift, shift), axis=(2, 3))
    return torch.from_numpy(out)


CASES = [  # (B, ck, cv, H, W, window, shift, dw)
    (1, 4, 3, 8, 8, 8, 0, True),
    (2, 4, 3, 16, 24, 8, 4, True),
    (1, 3, 5, 24, 16, 8, 4, False),
    (2, 2, 2, 32, 16, 16, 8, True),
    (1, 3, 2, 16, 48, 16, 8, True),
    (1, 2, 3, 16, 16, 16, 8, True),  # a single window: the shift mask still splits it
]


@pytest.mark.parametrize("B,ck,cv,H,W,ws,shift,dw", CASES)
def test_reference_matches_naive(B, ck, cv, H, W, ws, shift, dw):
    g = torch.Generator().manual_seed(B * 100 + H + W + shift)
    q, k = torch.randn(B, ck, H, W, generator=g), torch.randn(B, ck, H, W, generator=g)
    v = torch.randn(B, cv, H, W, generator=g)
    dw_w = torch.randn(ck, 1, 5, 5, generator=g) * 0.3 if dw else None
    dw_b = torch.randn(ck, generator=g) * 0.1 if dw else None
    table = torch.randn((2 * ws - 1) ** 2, generator=g)
    scale = ck ** -0.5
    got = gswa(q, k, v, (dw_w, dw_b) if dw else None, table, WindowSpec(ws, shift, scale)).double()
    want = naive_gswa(q, k, v, dw_w, dw_b, table, ws, shift, scale)
    assert got.shape == (B, cv, H, W)
    assert (got - want).abs().max().item() <= 1e-5


def test_relative_position_index_range():
    idx = relative_position_index(16)
    assert idx.shape == (256, 256)
    assert idx.min() == 0 and idx.max() == 31 * 31 - 1
    assert (idx.diagonal() == 15 * 31 + 15).all()


def test_rejects_bad_shapes():
    x = torch.zeros(1, 2, 12, 16)
    with pytest.raises(ValueError, match="multiples"):
        gswa(x, x, x, None, torch.zeros(225), WindowSpec(8, 0, 1.0))
    x = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match="shift"):
        gswa(x, x, x, None, torch.zeros(225), WindowSpec(8, 8, 1.0))


def test_inference_then_training_gradients_are_exact():
    """A coordinate cache filled under inference_mode must not leak into a later training forward (it once
    did: inference tensors cannot be saved for backward), and the op's gradients must match finite
    differences (float64 gradcheck, shifted windows, bias table and depthwise conv included)."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, c, 8, 8, generator=g, dtype=torch.float64) for c in (2, 2, 3))
    table = torch.randn(49, generator=g, dtype=torch.float64) * 0.1
    dw_w = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64) * 0.2
    dw_b = torch.randn(2, generator=g, dtype=torch.float64) * 0.1
    with torch.inference_mode():
        gswa(q, k, v, (dw_w, dw_b), table, WindowSpec(4, 2, 0.5))  # fills the coordinate cache in inference mode
    leaves = tuple(t.clone().requires_grad_(True) for t in (q, k, v, dw_w, dw_b, table))

    def op(q, k, v, dw_w, dw_b, table):
        return gswa(q, k, v, (dw_w, dw_b), table, WindowSpec(4, 2, 0.5))

    assert torch.autograd.gradcheck(op, leaves, eps=1e-6, atol=1e-6)
    op(*leaves).square().sum().backward()
    assert all(t.grad is not None and float(t.grad.abs().max()) > 0 for t in leaves)
