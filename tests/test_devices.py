"""The precision rule: bf16 only where it is native (CUDA, a CPU with AVX-512 BF16 or AMX), fp32 elsewhere."""
import warnings

import pytest
import torch

from styledrop_mini import devices
from styledrop_mini.training import TrainSettings, fit


def fake_cpu(monkeypatch, flags, isa_cap=None):
    """Pretend the CPU has these feature flags (and oneDNN this ISA cap)."""
    monkeypatch.setattr(devices, "_cpu_flags", lambda: set(flags))
    monkeypatch.setattr(devices.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if isa_cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def test_auto_is_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    fake_cpu(monkeypatch, {"avx2", "fma3", "avx512_f"})  # AVX-512 alone is not bf16
    assert not devices.cpu_has_native_bf16()
    assert devices.resolve_precision("auto", "cpu") == "fp32"
    assert isinstance(devices.autocast(torch.device("cpu"), "auto"), type(devices.contextlib.nullcontext()))
    assert "fp32 (auto: no native bf16)" in devices.describe("cpu")


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_is_bf16_on_a_cpu_with_native_bf16(monkeypatch, flag):
    fake_cpu(monkeypatch, {"avx2", flag})
    assert devices.cpu_has_native_bf16()
    assert devices.resolve_precision("auto", "cpu") == "bf16"
    assert isinstance(devices.autocast(torch.device("cpu"), "auto"), torch.autocast)


def test_capping_onednn_below_bf16_makes_it_emulated(monkeypatch):
    fake_cpu(monkeypatch, {"avx512_bf16"}, isa_cap="AVX2")
    assert devices.resolve_precision("auto", "cpu") == "fp32"
    fake_cpu(monkeypatch, {"avx512_bf16"}, isa_cap="avx512_core_bf16")
    assert devices.resolve_precision("auto", "cpu") == "bf16"


def test_forcing_bf16_where_it_is_emulated_warns_and_fp32_never_autocasts(monkeypatch):
    fake_cpu(monkeypatch, {"avx2"})
    with pytest.warns(UserWarning, match="about 30x slower"):
        assert devices.resolve_precision("bf16", "cpu") == "bf16"
    fake_cpu(monkeypatch, {"avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert devices.resolve_precision("fp32", "cpu") == "fp32"
        assert devices.resolve_precision("bf16", "cpu") == "bf16"  # native: no warning
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        devices.resolve_precision("fp8", "cpu")


def test_a_missing_gpu_and_an_unknown_device_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        devices.pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        devices.pick_device("tpu")


def _tiny_run(precision):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
    data = torch.randn(32, 8)

    class Bank:
        def __len__(self):
            return 32

        def batch(self, index, device):
            return {"x": data[index].to(device)}

    def loss_fn(m, batch):
        return (m(batch["x"]) - batch["x"].sum(1, keepdim=True)).pow(2).mean(), {}

    fit(model, loss_fn, Bank(), TrainSettings(steps=5, batch_size=8, lr=1e-2, warmup=1, precision=precision), "cpu")
    return model


def test_a_seeded_run_is_the_same_whichever_cpu_auto_finds_when_it_picks_fp32(monkeypatch):
    # the figures of tests and notebook checks must not depend on the CPU: with fp32 chosen, auto is fp32 exactly
    fake_cpu(monkeypatch, {"avx2"})
    auto = _tiny_run("auto")
    fp32 = _tiny_run("fp32")
    assert all(torch.equal(a, b) for a, b in zip(auto.state_dict().values(), fp32.state_dict().values()))
    fake_cpu(monkeypatch, {"avx512_bf16"})
    assert devices.resolve_precision("auto", "cpu") == "bf16"  # ...and on a bf16 CPU auto is bf16 autocast


def test_tuning_and_training_default_to_auto():
    import inspect

    from styledrop_mini import adapters, dreambooth, feedback, recipes

    assert inspect.signature(adapters.tune).parameters["precision"].default == "auto"
    assert inspect.signature(dreambooth.tune_subject).parameters["precision"].default == "auto"
    assert inspect.signature(feedback.train_round).parameters["precision"].default == "auto"
    assert TrainSettings(steps=1, batch_size=1, lr=1.0).precision == "auto"
    assert all(recipe.precision == "auto" for recipe in recipes.RECIPES.values())
