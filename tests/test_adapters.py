from dataclasses import asdict

import pytest
import torch

from styledrop_mini import adapters, prompts, world
from styledrop_mini.adapters import AdapterConfig, AdapterInfo, attach, count, gate, load_adapter, save_adapter
from styledrop_mini.checkpoints import CheckpointError, save_checkpoint
from styledrop_mini.sampling import GUIDANCE, AdapterGuidance, adapter_guided_logits, check_gamma, guided_logits
from styledrop_mini.text_encoder import TextFeatures
from styledrop_mini.transformer import MaskedTransformer, TransformerConfig

CFG = TransformerConfig(codebook_size=16, grid=4, width=64, layers=2, heads=2, text_width=8)


def text(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TextFeatures(torch.randn(batch, 5, 8, generator=g), torch.ones(batch, 5, dtype=torch.bool),
                        torch.randn(batch, 8, generator=g))


def inputs():
    return torch.randint(0, 17, (2, 16), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["bottleneck", "lora"])
def test_zero_init_reproduces_the_base_model_and_only_adapters_train(kind):
    torch.manual_seed(0)
    base = MaskedTransformer(CFG).eval()
    t, tokens = text(), inputs()
    with torch.no_grad():
        before = base(tokens, t.tokens, t.mask)
    params = attach(base, AdapterConfig(kind=kind, d_prj=2, lora_rank=2))
    with torch.no_grad():
        assert torch.equal(base(tokens, t.tokens, t.mask), before)  # W_up = 0 / LoRA B = 0
    trainable = [p for p in base.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in params} and trainable
    base(tokens, t.tokens, t.mask).sum().backward()
    assert all(p.grad is None for p in base.parameters() if not p.requires_grad)
    n_adapter, n_base = count(base)
    assert n_adapter == sum(p.numel() for p in params) and n_adapter < 0.05 * n_base


def test_the_default_adapter_is_under_one_percent_of_the_bundled_size_model():
    model = MaskedTransformer(TransformerConfig())
    attach(model, AdapterConfig())
    n_adapter, n_base = count(model)
    assert n_adapter / n_base < 0.01, (n_adapter, n_base)


@pytest.mark.parametrize("pooled_width", [0, 8])  # 8: the prompt's pooled embedding modulates the norms
def test_gate_switches_adapters_per_example_and_adapter_guidance_reduces_to_cfg(pooled_width):
    torch.manual_seed(0)
    cfg = TransformerConfig(**{**CFG.__dict__, "pooled_width": pooled_width})
    model = MaskedTransformer(cfg).eval()
    if pooled_width:  # as if trained: the pooled embedding changes the logits
        torch.nn.init.normal_(model.modulation[1].weight, std=0.3)
    base_copy = MaskedTransformer(cfg).eval()
    base_copy.load_state_dict(model.state_dict())
    attach(model, AdapterConfig(d_prj=2))
    for m in adapters.adapters_of(model):  # make the adapters do something
        torch.nn.init.normal_(m.up.weight, std=0.5)
    t, u, tokens = text(seed=1), text(seed=2), inputs()
    with torch.no_grad():
        adapted = model(tokens, t.tokens, t.mask, t.pooled)
        base = base_copy(tokens, t.tokens, t.mask, t.pooled)
        assert not torch.allclose(adapted, base, atol=1e-4)
        with gate(model, torch.tensor([1.0, 0.0])):
            mixed = model(tokens, t.tokens, t.mask, t.pooled)
        assert torch.allclose(mixed[0], adapted[0], atol=1e-5) and torch.allclose(mixed[1], base[1], atol=1e-5)
        # Eq. 4 with lambda_A = 0 is the adapted logits plus the base model's guidance term
        got = adapter_guided_logits(model, t, u, AdapterGuidance(0.0, 2.0))(tokens)
        base_u = base_copy(tokens, u.tokens, u.mask, u.pooled)
        assert torch.allclose(got, adapted + 2.0 * (base - base_u), atol=1e-4)
        full = adapter_guided_logits(model, t, u, AdapterGuidance(1.5, 2.0))(tokens)
        assert torch.allclose(full, adapted + 1.5 * (adapted - base) + 2.0 * (base - base_u), atol=1e-4)
        # a separate base model (how a fully fine-tuned copy is guided) gives the same logits
        separate = adapter_guided_logits(model, t, u, AdapterGuidance(1.5, 2.0), base=base_copy)(tokens)
        assert torch.allclose(separate, full, atol=1e-4)
        # with the adapters gated off everywhere it is plain classifier-free guidance (scale 1 + lambda_B)
        with gate(model, 0.0):
            plain = guided_logits(model, t, u, 3.0)(tokens)
        assert torch.allclose(plain, base_u + 3.0 * (base - base_u), atol=1e-4)


def test_save_load_round_trip_and_wrong_base(tmp_path):
    torch.manual_seed(0)
    model = MaskedTransformer(CFG)
    attach(model, AdapterConfig(d_prj=3))
    for m in adapters.adapters_of(model):
        torch.nn.init.normal_(m.up.weight)
    path = tmp_path / "style.safetensors"
    save_adapter(model, path, AdapterInfo("abc", caption="a yellow house in stained glass style",
                                          descriptor="stained glass", tuning={"steps": 3}))
    assert path.stat().st_size < 64 * 1024
    fresh = MaskedTransformer(CFG)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k in fresh.state_dict()})
    load_adapter(fresh, path, base_fingerprint="abc")
    t, tokens = text(), inputs()
    with torch.no_grad():
        assert torch.allclose(fresh(tokens, t.tokens, t.mask), model(tokens, t.tokens, t.mask), atol=1e-6)
    assert fresh.adapter_info == adapters.read_info(path) == AdapterInfo(
        "abc", caption="a yellow house in stained glass style", descriptor="stained glass", tuning={"steps": 3})
    assert fresh.adapter_info.prompt("a letter A") == "a letter A in stained glass style"
    with pytest.raises(CheckpointError, match="tuned on base model abc"):
        load_adapter(MaskedTransformer(CFG), path, base_fingerprint="xyz")
    with pytest.raises(CheckpointError, match="has shape .* the adapters of this base model expects"):
        load_adapter(MaskedTransformer(TransformerConfig(codebook_size=16, grid=4, width=32, layers=2, heads=2,
                                                         text_width=8)), path)
    with pytest.raises(ValueError, match="already has adapters"):
        attach(fresh, AdapterConfig())
    with pytest.raises(ValueError, match="unknown adapter kind"):
        AdapterConfig(kind="prefix").check()


def test_templates():
    assert prompts.styled("a yellow house", "stained glass") == "a yellow house in stained glass style"
    assert prompts.styled("arrow", "glowing neon") == "an arrow in glowing neon style"
    assert prompts.styled("  letter A ", "watercolor painting") == "a letter A in watercolor painting style"
    assert prompts.descriptor_of("neon") == "glowing neon" and prompts.descriptor_of("crayon") == "crayon"
    with pytest.raises(ValueError, match="content is empty"):
        prompts.styled("  ", "neon")
    with pytest.raises(ValueError, match="descriptor is empty"):
        prompts.styled("a star", "")
    with pytest.raises(ValueError, match="needs"):
        prompts.styled("a star", "neon", template="{content} in neon")


def test_a_caption_is_read_back_with_its_own_template():
    mine = "{descriptor} art: {content}"
    for template in (prompts.TEMPLATE, mine, "a photo of {content}, {descriptor} (style)"):
        caption = prompts.styled("a yellow house", "stained glass", template)
        assert prompts.content_of(caption, "stained glass", template) == "a yellow house"
    with pytest.raises(ValueError, match="does not follow the template"):  # the default template cannot read it
        prompts.content_of(prompts.styled("a yellow house", "stained glass", mine), "stained glass")


def test_cli_style_tune_generate_and_demo_end_to_end(tmp_path, capsys):
    from PIL import Image

    from styledrop_mini.cli import main
    from styledrop_mini.settings import STYLES_DIR

    # a user's reference: RGBA, not square, not 64 px
    ref = Image.open(STYLES_DIR / "stained_glass.png").convert("RGBA").resize((200, 150))
    ref.save(tmp_path / "ref.png")
    adapter = tmp_path / "glass.safetensors"
    assert main(["style-tune", str(tmp_path / "ref.png"), "--content", "yellow house", "--style", "stained glass",
                 "-o", str(adapter), "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "centre-cropped and resized to 64x64" in out and "'a yellow house in stained glass style'" in out
    assert adapter.exists() and adapter.stat().st_size < 200 * 1024
    grid = tmp_path / "grid.png"
    assert main(["generate", "a letter A", "--adapter", str(adapter), "-n", "2", "--steps", "3", "-o", str(grid)]) == 0
    assert "'a letter A in stained glass style'" in capsys.readouterr().out and grid.exists()
    # no content given: the mini CLIP proposes one and says so
    assert main(["style-tune", str(tmp_path / "ref.png"), "--style", "stained glass", "-o", str(tmp_path / "b"),
                 "--steps", "2"]) == 0
    assert "the mini CLIP proposes" in capsys.readouterr().out
    # bad references are clear errors
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert main(["style-tune", str(tmp_path / "broken.png"), "--style", "x", "-o", str(tmp_path / "c")]) == 2
    assert "broken.png: not a readable image" in capsys.readouterr().err
    assert main(["style-tune", str(tmp_path / "missing.png"), "--style", "x", "-o", str(tmp_path / "c")]) == 2
    assert "no such file" in capsys.readouterr().err
    # the main job, shrunk
    assert main(["demo", "--steps", "3", "-n", "2", "-o", str(tmp_path / "demo.png")]) == 0
    out = capsys.readouterr().out  # every held-out style, both ways, and one grid with two rows each
    assert all(f"{s}, StyleDrop" in out and f"{s}, base model" in out for s in world.HELD_OUT_STYLES)
    tall = Image.open(tmp_path / "demo.png").size
    assert main(["demo", "--styles", "neon", "--steps", "3", "-n", "2", "-o", str(tmp_path / "one.png")]) == 0
    assert "stained glass" not in capsys.readouterr().out
    one = Image.open(tmp_path / "one.png").size
    assert one[0] == tall[0] and one[1] < tall[1] / 2


def test_tuning_is_reproducible_for_a_seed():
    from styledrop_mini.pipeline import MusePipeline

    pipe = MusePipeline.load()
    image = torch.rand(3, 64, 64)
    torch.rand(5)  # whatever ran before must not matter
    a, _ = adapters.tune(pipe, image, ["a red star in neon style"], steps=3, seed=1)
    torch.rand(7)
    b, _ = adapters.tune(pipe, image, ["a red star in neon style"], steps=3, seed=1)
    sa, sb = adapters.adapter_state(a), adapters.adapter_state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tuning_runs_on_the_pipelines_device_unless_told(monkeypatch):
    """A pipeline on a GPU tunes there: its text encoder's features are on that device (a CPU default
    broke `evaluate style-prior --device cuda`)."""
    from styledrop_mini.pipeline import MusePipeline

    pipe, seen = MusePipeline.load(), []
    monkeypatch.setattr(adapters, "fit", lambda model, loss_fn, bank, settings, device, **kw: seen.append(device))
    monkeypatch.setattr(type(pipe), "device", property(lambda self: torch.device("meta")))  # "where the pipe is"
    monkeypatch.setattr(pipe.tokenizer, "encode", lambda images: torch.zeros(len(images), 16, 16, dtype=torch.long))
    adapters.tune(pipe, torch.rand(3, 64, 64), ["a red star in neon style"], steps=1)
    adapters.tune(pipe, torch.rand(3, 64, 64), ["a red star in neon style"], steps=1, device="cpu")
    assert seen == [torch.device("meta"), torch.device("cpu")]


def test_full_fine_tuning_trains_every_weight_and_is_not_saved_as_an_adapter(tmp_path):
    model = MaskedTransformer(CFG)
    params = attach(model, AdapterConfig(kind="full"))
    assert len(params) == len(list(model.parameters())) and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="already has adapters"):
        attach(model, AdapterConfig())
    with pytest.raises(ValueError, match="whole new model"):
        save_adapter(model, tmp_path / "full.safetensors", AdapterInfo())


def test_shared_adapters_share_matrices_across_layers_and_round_trip(tmp_path):
    torch.manual_seed(0)
    base = MaskedTransformer(CFG)
    per_layer, shared = MaskedTransformer(CFG), MaskedTransformer(CFG)
    per_layer.load_state_dict(base.state_dict()); shared.load_state_dict(base.state_dict())
    attach(per_layer, AdapterConfig(d_prj=2))
    params = attach(shared, AdapterConfig(d_prj=2, shared=True))
    w, d, layers = CFG.width, 2, CFG.layers
    assert count(per_layer)[0] == layers * 2 * (2 * w * d + d + w)
    assert count(shared)[0] == 2 * (2 * w * d) + layers * 2 * (d + w)  # matrices once, biases per layer
    assert sum(p.numel() for p in params) == count(shared)[0]
    assert shared.blocks[0].after_mlp.up.weight is shared.blocks[1].after_mlp.up.weight
    assert shared.blocks[0].after_mlp.up.bias is not shared.blocks[1].after_mlp.up.bias
    for p in params:  # a "trained" adapter
        torch.nn.init.normal_(p, std=0.3)
    path = tmp_path / "shared.safetensors"
    save_adapter(shared, path, AdapterInfo())
    again = MaskedTransformer(CFG)
    again.load_state_dict(base.state_dict())
    load_adapter(again, path)
    assert again.blocks[1].after_cross.down.weight is again.blocks[0].after_cross.down.weight
    t, tokens = text(), inputs()
    with torch.no_grad():
        assert torch.allclose(again(tokens, t.tokens, t.mask), shared(tokens, t.tokens, t.mask), atol=1e-6)


def test_an_adapter_with_nan_weights_is_refused(tmp_path):
    torch.manual_seed(0)
    model = MaskedTransformer(CFG)
    attach(model, AdapterConfig(d_prj=2))
    with torch.no_grad():
        model.blocks[1].after_mlp.up.weight[0, 0] = float("inf")
    save_adapter(model, tmp_path / "diverged.safetensors", AdapterInfo())
    with pytest.raises(CheckpointError, match=r"diverged.safetensors: tensor 'blocks.1.after_mlp.up.weight' holds 1 "
                                              "NaN or infinite"):
        load_adapter(MaskedTransformer(CFG), tmp_path / "diverged")


def test_an_adapter_without_a_base_fingerprint_warns_and_can_be_stamped(tmp_path):
    torch.manual_seed(0)
    base = MaskedTransformer(CFG)
    base.save(tmp_path / "base.safetensors")
    model = MaskedTransformer(CFG)
    attach(model, AdapterConfig(d_prj=2))
    # an older file: no fingerprint, the caption under its old name, settings beside the rest
    save_checkpoint(tmp_path / "old.safetensors", adapters.adapter_state(model), adapters.KIND,
                    asdict(model.adapter_config), {"descriptor": "neon", "reference_caption": "a pink star in neon style",
                                                   "steps": 300})
    assert adapters.read_info(tmp_path / "old") == AdapterInfo(caption="a pink star in neon style", descriptor="neon",
                                                               tuning={"steps": 300})
    from styledrop_mini.checkpoints import fingerprint

    with pytest.warns(UserWarning, match=r"old.safetensors does not record which base model.*record_base"):
        load_adapter(MaskedTransformer(CFG), tmp_path / "old.safetensors", fingerprint(tmp_path / "base.safetensors"))
    assert adapters.record_base(tmp_path / "old", tmp_path / "base.safetensors") == fingerprint(tmp_path / "base.safetensors")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stamped: it loads on its base without a word...
        load_adapter(MaskedTransformer(CFG), tmp_path / "old.safetensors", fingerprint(tmp_path / "base.safetensors"))
    with pytest.raises(CheckpointError, match="tuned on base model"):  # ...and is refused on another
        load_adapter(MaskedTransformer(CFG), tmp_path / "old.safetensors", "0123456789abcdef")


def test_guidance_weights_must_be_finite_and_sane():
    for bad in (float("nan"), float("inf"), -1e6, 1e3, "2"):
        with pytest.raises(ValueError, match="lambda_A must lie in"):
            AdapterGuidance(bad, 3.0)
        with pytest.raises(ValueError, match="lambda_B must lie in"):
            AdapterGuidance(1.0, bad)
    with pytest.raises(ValueError, match="gamma must lie in"):
        check_gamma(float("nan"))
    # the forms a run manifest or a caller may hold all become the same record
    assert AdapterGuidance.of([2.0, 3.0]) == AdapterGuidance.of({"lambda_a": 2.0, "lambda_b": 3.0}) == AdapterGuidance(2.0)
    assert GUIDANCE == AdapterGuidance(1.0, 3.0)
