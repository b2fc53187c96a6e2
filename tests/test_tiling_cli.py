import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image as PILImage

from agileir.cli import main
from agileir.io.images import read_image
from agileir.runtime.pytorch import torch_upscaler
from agileir.upscale.arrays import apply_to_rgbs
from agileir.models import build_model, preset
from agileir.upscale.tiling import DEFAULT_OVERLAP, tile_spans
from test_models import TINY_AGILEIR
from conftest import randomized, saved_model


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return randomized(build_model(TINY_AGILEIR)).fuse()


@pytest.mark.parametrize("size,tile,overlap,align", [(100, 32, 8, 1), (33, 32, 16, 1), (32, 32, 4, 1),
                                                      (10, 64, 16, 1), (52, 32, 8, 8), (100, 48, 16, 16)])
def test_tile_spans_cover_everything(size, tile, overlap, align):
    spans = tile_spans(size, tile, overlap, align)
    covered = np.zeros(size, bool)
    for (s, e), nxt in zip(spans, spans[1:] + [None]):
        assert s % align == 0 and e - s <= tile
        covered[s:e] = True
        if nxt:
            assert e - nxt[0] >= overlap
    assert covered.all() and spans[0][0] == 0 and spans[-1][1] == size


def test_whole_image_tile_is_identical(tiny_model):
    rgb = np.random.default_rng(0).random((30, 41, 3), dtype=np.float32)
    run = torch_upscaler(tiny_model)
    assert np.array_equal(apply_to_rgbs(run, [rgb], 2)[0], apply_to_rgbs(run, [rgb], 2, tile=64)[0])


@pytest.mark.parametrize("crop", [(96, 120), (90, 109)], ids=["window-multiple", "odd-size"])
def test_small_tiles_stay_close(tiny_model, set5, crop):
    # A real image: tiles see less context at their borders; blending keeps the difference small.
    # Tiles start on window multiples, so odd sizes behave like window multiples.
    rgb = read_image(set5 / "LR_bicubic" / "X2" / "birdx2.png").to_rgb()[:crop[0], :crop[1]]
    run = torch_upscaler(tiny_model)
    whole = apply_to_rgbs(run, [rgb], 2)[0]
    tiled = apply_to_rgbs(run, [rgb], 2, tile=48, overlap=DEFAULT_OVERLAP, align=TINY_AGILEIR.window_size)[0]
    assert psnr(tiled, whole) >= 40.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("ckpt"), TINY_AGILEIR)[1]


def write_png(path, array, mode=None):
    PILImage.fromarray(array, mode).save(path)
    return path


def test_info_and_infer_on_random_checkpoint(checkpoint, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["info", str(checkpoint)])
    assert r.exit_code == 0, r.output
    assert "agileir" in r.output and "x2" in r.output
    src = write_png(tmp_path / "in.png", np.random.default_rng(1).integers(0, 255, (13, 17, 3), np.uint8))
    r = runner.invoke(main, ["infer", str(checkpoint), str(src), "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 0, r.output
    assert PILImage.open(tmp_path / "out.png").size == (34, 26)


def test_infer_folder_rgba_16bit_and_1x1(checkpoint, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 255, (9, 11, 4), np.uint8)
    write_png(folder / "rgba.png", rgba, "RGBA")
    PILImage.fromarray(rng.integers(0, 65535, (10, 12)).astype(np.uint16)).save(folder / "gray16.png")
    write_png(folder / "dot.png", np.full((1, 1, 3), 200, np.uint8))
    r = CliRunner().invoke(main, ["infer", str(checkpoint), str(folder), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    out = PILImage.open(tmp_path / "out" / "rgba_x2.png")
    assert out.mode == "RGBA" and out.size == (22, 18)  # alpha upscaled separately, kept
    gray = PILImage.open(tmp_path / "out" / "gray16_x2.png")
    assert gray.mode.startswith("I") and gray.size == (24, 20)  # 16-bit grayscale stays 16-bit
    assert PILImage.open(tmp_path / "out" / "dot_x2.png").size == (2, 2)  # 1x1 is upscaled like any image


def test_bad_inputs_one_line_errors(checkpoint, tmp_path):
    runner = CliRunner()
    corrupt = tmp_path / "corrupt.png"
    good = write_png(tmp_path / "good.png", np.zeros((8, 8, 3), np.uint8))
    corrupt.write_bytes(good.read_bytes()[:40])
    out = tmp_path / "never.png"
    r = runner.invoke(main, ["infer", str(checkpoint), str(corrupt), "-o", str(out)])
    assert r.exit_code == 2 and "corrupt.png" in r.output and "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))  # no partial output
    r = runner.invoke(main, ["infer", str(checkpoint), str(good), "-o", str(good)])
    assert r.exit_code == 2 and "overwrite" in r.output
    r = runner.invoke(main, ["infer", str(tmp_path / "missing.pth"), str(good)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


def test_infer_reports_psnr_against_hr(checkpoint, tmp_path):
    rng = np.random.default_rng(3)
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    write_png(hr_dir / "pic.png", rng.integers(0, 255, (32, 32, 3), np.uint8))
    lr = write_png(tmp_path / "picx2.png", rng.integers(0, 255, (16, 16, 3), np.uint8))
    r = CliRunner().invoke(main, ["infer", str(checkpoint), str(lr), "-o", str(tmp_path / "o.png"),
                                  "--hr", str(hr_dir)])
    assert r.exit_code == 0 and "PSNR" in r.output
