import math

import pytest
import torch

from styledrop_mini.checkpoints import CheckpointError
from styledrop_mini.clip import ClipConfig, MiniClip
from styledrop_mini.sampling import SamplerSettings, conditional_logits, decode, decode_one_at_a_time, guided_logits, masked_after
from styledrop_mini.text_encoder import ClipTextEncoder, HFTextEncoder, TextFeatures
from styledrop_mini import world
from styledrop_mini.transformer import (Block, MaskedTransformer, TransformerConfig, base_loss_fn, from_patches,
                                        mask_ratio, masked_loss, random_mask, to_patches, training_prompt)

TINY = TransformerConfig(codebook_size=16, grid=4, width=32, layers=2, heads=2, text_width=8)


def tiny_text(batch=2, length=5, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, 3:] = False  # padding
    return TextFeatures(torch.randn(batch, length, width, generator=g), mask, torch.randn(batch, width, generator=g))


@pytest.fixture(scope="module")
def tiny_clip_encoder():
    torch.manual_seed(0)
    clip = MiniClip(ClipConfig(resnet_width=8, text_width=32, text_layers=1, text_heads=2, embed_dim=16))
    return ClipTextEncoder(clip)


def test_logits_shape_and_errors():
    model = MaskedTransformer(TINY)
    text = tiny_text()
    tokens = torch.randint(0, 16, (2, 16))
    assert model(tokens, text.tokens, text.mask).shape == (2, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        model(tokens[:, :5], text.tokens, text.mask)
    with pytest.raises(ValueError, match="multiple of heads"):
        MaskedTransformer(TransformerConfig(width=30, heads=4))


def test_padding_in_the_prompt_is_ignored():
    model = MaskedTransformer(TINY).eval()
    text = tiny_text()
    tokens = torch.randint(0, 17, (2, 16))
    changed = text.tokens.clone()
    changed[:, 3:] += 100.0  # only padded positions change
    assert torch.allclose(model(tokens, text.tokens, text.mask), model(tokens, changed, text.mask), atol=1e-5)
    changed[:, 0] = torch.randn(2, 8)  # a real prompt token changes: the output must too
    assert not torch.allclose(model(tokens, text.tokens, text.mask), model(tokens, changed, text.mask), atol=1e-4)


def test_pooled_prompt_modulates_the_norms_from_zero():
    """The pooled embedding sets every norm's scale and shift (adaLN): zero at the start, so the
    untrained model equals the plain one; trained, it changes the logits; missing, a clear error."""
    torch.manual_seed(0)
    modulated = MaskedTransformer(TransformerConfig(**{**TINY.__dict__, "pooled_width": 8})).eval()
    plain = MaskedTransformer(TINY).eval()
    plain.load_state_dict({k: v for k, v in modulated.state_dict().items() if not k.startswith("modulation.")})
    text, tokens = tiny_text(), torch.randint(0, 17, (2, 16))
    assert torch.equal(modulated(tokens, text.tokens, text.mask, text.pooled), plain(tokens, text.tokens, text.mask))
    torch.nn.init.normal_(modulated.modulation[1].weight, std=0.5)  # as if trained
    other = text.pooled.flip(0)
    assert not torch.allclose(modulated(tokens, text.tokens, text.mask, text.pooled),
                              modulated(tokens, text.tokens, text.mask, other), atol=1e-4)
    with pytest.raises(ValueError, match=r"pooled embedding \(width 8\), got none"):
        modulated(tokens, text.tokens, text.mask)
    with pytest.raises(ValueError, match="got width 3"):
        modulated(tokens, text.tokens, text.mask, torch.zeros(2, 3))


def test_blocks_have_named_adapter_places_that_are_identities():
    block = MaskedTransformer(TINY).blocks[0]
    assert Block.ADAPTER_PLACES == ("after_attn", "after_cross", "after_mlp")
    for place in Block.ADAPTER_PLACES:
        assert isinstance(getattr(block, place), torch.nn.Identity)


def test_mask_schedule():
    assert float(mask_ratio(torch.tensor(0.0))) == pytest.approx(1.0)
    assert float(mask_ratio(torch.tensor(1.0))) == pytest.approx(0.0, abs=1e-6)
    r = torch.linspace(0, 1, 11)
    assert (mask_ratio(r)[1:] <= mask_ratio(r)[:-1]).all()  # decreasing
    mask = random_mask(4000, 64, torch.Generator().manual_seed(0))
    counts = mask.sum(1).float()
    assert counts.min() >= 1 and counts.max() <= 64
    # E[cos(pi r / 2)] = 2 / pi for r ~ U(0, 1): about 64% of the tokens masked on average
    assert counts.mean() / 64 == pytest.approx(2 / math.pi, abs=0.03)
    # the steps of decoding follow the same curve and end with nothing masked
    assert [masked_after(k, 8, 64) for k in range(8)] == [math.floor(64 * math.cos(math.pi / 2 * (k + 1) / 8))
                                                          for k in range(8)]
    assert masked_after(7, 8, 64) == 0


def test_loss_only_counts_masked_positions():
    torch.manual_seed(0)
    model = MaskedTransformer(TINY)
    text = tiny_text()
    tokens = torch.randint(0, 16, (2, 16))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :5] = True
    loss, logits = masked_loss(model, tokens, text.tokens, text.mask, mask)
    expected = torch.nn.functional.cross_entropy(logits[:, :5].reshape(-1, 16), tokens[:, :5].reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # no gradient reaches the logits of unmasked positions: they are not predicted
    logits.retain_grad()
    loss.backward()
    assert logits.grad[:, 5:].abs().max() == 0 and logits.grad[:, :5].abs().max() > 0


@pytest.mark.parametrize("patch", [1, 2])
def test_a_few_steps_of_training_fit_one_batch(tiny_clip_encoder, patch):
    torch.manual_seed(0)
    model = MaskedTransformer(TransformerConfig(codebook_size=16, grid=4, patch=patch, width=32, layers=2, heads=2,
                                                text_width=tiny_clip_encoder.width))
    loss_fn = base_loss_fn(tiny_clip_encoder, cond_dropout=0.0)
    colours = list(world.COLOURS)
    batch = {"tokens": torch.randint(0, 16, (8, 16)), "colour_id": torch.arange(8),
             "text": [world.caption(world.CONTENTS[i], colours[i], "flat") for i in range(8)]}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        torch.manual_seed(step)
        loss, _ = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


def test_a_patch_of_tokens_per_position_keeps_every_token_its_own_logits():
    tokens = torch.arange(2 * 256).view(2, 256)
    patches = to_patches(tokens, 16, 2)
    assert patches.shape == (2, 64, 4) and patches[0, 0].tolist() == [0, 1, 16, 17]  # a 2x2 block of the grid
    assert torch.equal(from_patches(patches[..., None], 16, 2)[..., 0], tokens)
    torch.manual_seed(0)
    model = MaskedTransformer(TransformerConfig(codebook_size=16, grid=8, patch=2, width=32, layers=1, heads=2,
                                                text_width=8)).eval()
    tokens, text, mask = torch.randint(0, 16, (1, 64)), torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    assert model(tokens, text, mask).shape == (1, 64, 16) and model.config.n_positions == 16
    with pytest.raises(ValueError, match="patch 3 must divide grid 8"):
        MaskedTransformer(TransformerConfig(grid=8, patch=3))


def test_training_prompts():
    assert training_prompt("a red star in pencil sketch style", "red", 0.1) == "a red star in pencil sketch style"
    assert training_prompt("a red arrow in flat style", "red", 0.9) == "an arrow in flat style"
    assert training_prompt("an orange star with a thin outline", "orange", 0.9) == "a star with a thin outline"
    assert training_prompt("a nice orange letter A", "orange", 0.9) == "a nice letter A"


def test_text_encoders(tiny_clip_encoder):
    feats = tiny_clip_encoder(["a red star", ""])
    assert feats.tokens.shape == (2, 24, 32) and feats.pooled.shape == (2, 16)  # ClipConfig.context_length
    with torch.no_grad():  # one pass gives both; the pooled one is open_clip's own text embedding
        ids = tiny_clip_encoder.clip.token_ids(["a red star", ""])
        assert torch.allclose(feats.pooled, tiny_clip_encoder.model.encode_text(ids), atol=1e-6)
    assert feats.mask[0].sum() == 5 and feats.mask[1].sum() == 2  # start, 3 words, end / start, end
    # The seam also fits a transformers text model, built offline from a tiny config.
    from transformers import CLIPTextConfig, CLIPTextModel

    hf = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=32))

    def tokenizer(prompts, padding, truncation, max_length, return_tensors):
        ids = tiny_clip_encoder.clip.tokenizer(prompts, context_length=max_length)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    out = HFTextEncoder(hf, tokenizer, max_length=16)(["a red star", "a blue moon in flat style"])
    assert out.tokens.shape == (2, 16, 24) and out.pooled.shape == (2, 24) and out.mask.dtype == torch.bool
    model = MaskedTransformer(TransformerConfig(codebook_size=16, grid=4, width=32, layers=1, heads=2, text_width=24))
    assert model(torch.randint(0, 16, (2, 16)), out.tokens, out.mask).shape == (2, 16, 16)
    # T5 has no pooled output: the encoder averages the real tokens instead
    from transformers import T5Config, T5EncoderModel

    t5 = T5EncoderModel(T5Config(vocab_size=49408, d_model=24, d_kv=12, d_ff=48, num_layers=1, num_heads=2))
    out = HFTextEncoder(t5, tokenizer, max_length=16)(["a red star"])
    real = out.mask[0]
    assert torch.allclose(out.pooled[0], out.tokens[0][real].mean(0), atol=1e-5)


def test_sampler_fills_every_token_and_is_deterministic():
    model = MaskedTransformer(TINY).eval()
    text = tiny_text(batch=3)
    fn = conditional_logits(model, text)
    settings = SamplerSettings(steps=5, choice_temperature=2.0)
    a, history = decode(fn, [0, 1, 2], 16, TINY.mask_id, settings, keep_steps=True)
    assert a.shape == (3, 16) and (a != TINY.mask_id).all() and a.max() < 16
    masked = [int((h == TINY.mask_id).sum(1)[0]) for h in history]
    assert masked == [masked_after(k, 5, 16) for k in range(5)]  # the cosine schedule, step by step
    assert torch.equal(a, decode(fn, [0, 1, 2], 16, TINY.mask_id, settings))
    assert not torch.equal(a, decode(fn, [3, 4, 5], 16, TINY.mask_id, settings))
    # image i depends on its own seed, not on the rest of the batch
    one = decode(conditional_logits(model, text[1:2]), [1], 16, TINY.mask_id, settings)
    assert torch.equal(one[0], a[1])
    slow = decode_one_at_a_time(fn, [0, 1, 2], 16, TINY.mask_id)
    assert (slow != TINY.mask_id).all()


def test_guidance_scale_zero_is_the_unconditional_model_and_one_the_conditional():
    model = MaskedTransformer(TINY).eval()
    cond, uncond = tiny_text(seed=1), tiny_text(seed=2)
    tokens = torch.randint(0, 17, (2, 16))
    with torch.no_grad():
        l_u = model(tokens, uncond.tokens, uncond.mask)
        l_c = model(tokens, cond.tokens, cond.mask)
        assert torch.allclose(guided_logits(model, cond, uncond, 0.0)(tokens), l_u, atol=1e-5)
        assert torch.allclose(guided_logits(model, cond, uncond, 1.0)(tokens), l_c, atol=1e-5)
        assert torch.allclose(guided_logits(model, cond, uncond, 3.0)(tokens), l_u + 3 * (l_c - l_u), atol=1e-4)


def test_sampler_settings_are_checked():
    for bad in (dict(steps=0), dict(temperature=0), dict(choice_temperature=-1), dict(guidance_scale=100)):
        with pytest.raises(ValueError):
            SamplerSettings(**bad).check()


def test_checkpoint_round_trip(tmp_path):
    model = MaskedTransformer(TINY).eval()
    path = model.save(tmp_path / "g.safetensors")
    loaded = MaskedTransformer.load(path)
    text = tiny_text()
    tokens = torch.randint(0, 17, (2, 16))
    assert torch.equal(model(tokens, text.tokens, text.mask), loaded(tokens, text.tokens, text.mask))
    with pytest.raises(CheckpointError, match="holds a 'transformer' model, expected 'tokenizer'"):
        from styledrop_mini.tokenizer import VQTokenizer
        VQTokenizer.load(path)


def test_a_bank_with_reconstructions_holds_each_image_twice_with_its_labels():
    from styledrop_mini.tokenizer import VQTokenizer
    from styledrop_mini.datasets import ImageBank, training_world

    images = ImageBank.render(training_world("all", 4, seed=1), workers=0)
    tokenizer = VQTokenizer().eval()
    both = images.with_reconstructions(tokenizer)
    assert len(both) == 8 and torch.equal(both.images[:4], images.images)
    decoded = (tokenizer.decode(tokenizer.encode(images.images.float() / 255)) * 255 + 0.5).to(torch.uint8)
    assert torch.equal(both.images[4:], decoded)
    batch = both.batch(torch.tensor([1, 5]))
    assert batch["fill_id"][0] == batch["fill_id"][1] == images.primitive_ids["fill"][1]


def test_token_bank_encodes_once_and_serves_batches():
    from styledrop_mini.datasets import MiniWorld
    from styledrop_mini.tokenizer import VQTokenizer
    from styledrop_mini.datasets import ImageBank, TokenBank

    images = ImageBank.render(MiniWorld(n=6, split="train", styles="seen", seed=0), workers=0)
    tokenizer = VQTokenizer().eval()
    bank = TokenBank.encode(images, tokenizer)
    assert len(bank) == 6 and bank.tokens.shape == (6, 256)  # a 16x16 grid
    expected = tokenizer.encode(images.images[:2].float() / 255).flatten(1)
    batch = bank.batch(torch.tensor([0, 1]))
    assert batch["tokens"].dtype == torch.long and torch.equal(batch["tokens"], expected)
    assert batch["text"] == images.texts[:2] and torch.equal(batch["style_id"], images.style_ids[:2])


def test_math_attention_kernel_trains_the_same_model():
    """The CPU-fast "math" SDPA kernel changes speed, not the loss or the gradients."""
    import torch

    from styledrop_mini.training import attention_kernel
    from styledrop_mini.transformer import MaskedTransformer, TransformerConfig, masked_loss, random_mask

    torch.manual_seed(0)
    model = MaskedTransformer(TransformerConfig(codebook_size=16, grid=4, width=32, layers=2, heads=2, text_width=8))
    tokens = torch.randint(0, 16, (3, 16))
    text, text_mask = torch.randn(3, 5, 8), torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    mask = random_mask(3, 16, torch.Generator().manual_seed(1))
    results = []
    for kernel in ("auto", "math"):
        model.zero_grad()
        with attention_kernel(kernel):
            loss, _ = masked_loss(model, tokens, text, text_mask, mask)
            loss.backward()
        results.append((loss.detach(), model.head.weight.grad.clone()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)
    with pytest.raises(ValueError, match="attention"):
        attention_kernel("flash")
