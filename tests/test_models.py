import pickle

import pytest
import torch

from agileir.models import PRESETS, ModelLoadError, SRConfig, build_model, infer_config, load_model, preset
from agileir.models.gswa import relative_position_index, shift_mask
from agileir.models.load import save_safetensors
from conftest import randomized

TINY_AGILEIR = SRConfig("agileir", 2, 24, (2, 2), (4, 4), 8, 2.0, (6, 6))
TINY_SWINIR = SRConfig("swinir", 3, 12, (2,), (3,), 8, 2.0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_upscales_odd_sizes(name):
    model = build_model(preset(name)).eval()
    s = model.scale
    x = torch.rand(1, 3, 19, 13)  # neither a multiple of 8 nor of 16
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 19 * s, 13 * s)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("config", [TINY_AGILEIR, TINY_SWINIR, preset("agileir-light-x4")],
                         ids=["agileir-tiny", "swinir-tiny", "agileir-light-x4"])
def test_fuse_is_exact(config):
    model = randomized(build_model(config))
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        before = model(x)
        after = model.fuse()(x)
    assert (before - after).abs().max().item() <= 1e-5
    assert not any(type(m).__name__ == "Conv2dBN" for m in model.modules())


def test_tiny_images_including_1x1():
    model = build_model(TINY_AGILEIR).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 1, 1)).shape == (1, 3, 2, 2)
        assert model(torch.rand(1, 3, 1, 9)).shape == (1, 3, 2, 18)


def official_layout(model) -> dict:
    """The state dict as the official code saves it: derived buffers included, BasicSR wrapper."""
    sd = dict(model.state_dict())
    w = model.config.window_size
    for name, module in model.named_modules():
        if name.endswith(".attn"):
            sd[f"{name}.relative_position_index"] = relative_position_index(w)
        if name.endswith(("blocks.1", "blocks.3", "blocks.5", "blocks.7")):
            sd[f"{name}.attn_mask"] = shift_mask(64, 64, w, w // 2)
    return {"params": {f"module.{k}": v for k, v in sd.items()}}


@pytest.mark.parametrize("config", [preset("agileir-light-x4"), preset("swinir-light-x2"), TINY_SWINIR],
                         ids=["agileir-official", "swinir-official", "swinir-x3"])
def test_official_layout_loads_with_inferred_config(config, tmp_path):
    model = randomized(build_model(config))
    path = tmp_path / "official.pth"
    torch.save(official_layout(model), path)
    loaded = load_model(path)
    assert loaded.config == config
    x = torch.rand(1, 3, 20, 17)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_infer_config_of_every_preset():
    for name, config in PRESETS.items():
        assert infer_config(build_model(config).state_dict()) == config, name


def test_upstream_compat_ignores_attention():
    model = randomized(build_model(TINY_AGILEIR.replace(upstream_compat=True)))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        for m in model.modules():
            if hasattr(m, "groupatt"):
                m.relative_position_bias_table.add_(1.0)
                for p in m.groupatt.parameters():
                    p.add_(0.5)
        assert torch.equal(before, model(x))
    correct = randomized(build_model(TINY_AGILEIR))
    correct.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(correct(x), model(x))


def test_safetensors_roundtrip_keeps_config(tmp_path):
    model = randomized(build_model(TINY_SWINIR))
    save_safetensors(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.config == TINY_SWINIR
    assert len(loaded.sha256) == 64


def test_params_ema_is_preferred(tmp_path):
    good, other = build_model(TINY_SWINIR), build_model(TINY_SWINIR)
    torch.save({"params": other.state_dict(), "params_ema": good.state_dict()}, tmp_path / "w.pth")
    loaded = load_model(tmp_path / "w.pth")
    for k, v in good.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_code_pickles(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params": Evil()}, f)
    with pytest.raises(ModelLoadError, match="arbitrary code"):
        load_model(path)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (b"not a model\n", r"is not a PyTorch checkpoint \(neither a zip archive nor a pickle\)"),
    (b"\x89PNG\r\n\x1a\n", "is not a PyTorch checkpoint"),
    (b"\x80\x02garbage", r"is not a readable PyTorch checkpoint \(Unsupported operand"),
])
def test_files_that_are_not_checkpoints_are_not_called_code_pickles(tmp_path, content, message):
    """Text, an image or a damaged pickle named .pth is refused for what it is, not as a pickle that asks for code."""
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(path)
    assert "arbitrary code" not in str(info.value)


def test_an_unreadable_onnx_file_is_named(tmp_path):
    from agileir.runtime.artifacts import read_onnx
    from agileir.runtime.ort import OnnxRuntimeRunner

    path = tmp_path / "model.onnx"
    path.write_bytes(b"nope, not protobuf" * 3)
    for load in (read_onnx, OnnxRuntimeRunner):
        with pytest.raises(ValueError, match=r"^model.onnx is not a readable ONNX model \("):
            load(path)
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        read_onnx(tmp_path / "missing.onnx")


def test_clear_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="junk.pth"):
        load_model(tmp_path / "junk.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError, match="conv_first"):
        load_model(tmp_path / "other.pth")
    torch.save(build_model(TINY_SWINIR).state_dict(), tmp_path / "swin.pth")
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_model(tmp_path / "swin.pth", "agileir-light-x4")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.pth")
