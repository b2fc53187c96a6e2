"""The bundled reference weights: small, described by their model cards, and the cards' Set5 numbers
reproduced by `agileir eval`."""
import json

import pytest
from click.testing import CliRunner

from agileir.cli import main
from agileir.models.load import WEIGHTS_DIR, default_checkpoint, file_sha256, load_model

BUNDLED = sorted(WEIGHTS_DIR.glob("*.safetensors"))


def card(weights):
    return json.loads(weights.with_suffix(".json").read_text())


def test_default_checkpoint_is_agileir_light_x4():
    assert default_checkpoint().name == "agileir_light_x4.safetensors"
    assert load_model().preset == "agileir-light-x4"


@pytest.mark.parametrize("weights", BUNDLED, ids=lambda p: p.stem)
def test_card_describes_the_file(weights):
    info = card(weights)
    assert weights.stat().st_size < 6 * 2**20
    assert info["sha256"] == file_sha256(weights)
    assert load_model(weights).preset == info["preset"]
    assert "NOT the AgileIR paper's weights" in info["what"]
    for name in ("Set5", "Set14"):
        scores = info["benchmarks"][name]
        assert scores["psnr"] > scores["bicubic_psnr"], name


@pytest.mark.parametrize("weights", BUNDLED, ids=lambda p: p.stem)
def test_agileir_eval_reproduces_the_card_on_set5(weights, set5, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["eval", str(weights), "--dataset", str(set5), "--json", str(out)])
    assert result.exit_code == 0, result.output
    measured = json.loads(out.read_text())["mean"]
    expected = card(weights)["benchmarks"]["Set5"]
    assert measured["psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert measured["ssim"] == pytest.approx(expected["ssim"], abs=1e-4)
    assert measured["bicubic_psnr"] == pytest.approx(expected["bicubic_psnr"], abs=1e-3)
