import pytest
import torch

from styledrop_mini.datasets import MiniWorld
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.tokenizer import Quantizer, TokenizerConfig, VQTokenizer, psnr, tokenizer_loss

TINY = TokenizerConfig(channels=(8, 16, 16), codebook_size=32, code_dim=8)


def test_encode_decode_shapes():
    model = VQTokenizer(TINY).eval()
    tokens = model.encode(torch.rand(3, 3, 64, 64))
    assert tokens.shape == (3, 8, 8) and tokens.dtype == torch.long
    assert 0 <= tokens.min() and tokens.max() < 32
    images = model.decode(tokens)
    assert images.shape == (3, 3, 64, 64) and 0 <= images.min() and images.max() <= 1


def test_nearest_code_lookup_matches_brute_force():
    q = Quantizer(TINY)
    z = torch.randn(5, 8)
    brute = torch.stack([((q.codebook - v) ** 2).sum(1).argmin() for v in z])
    assert torch.equal(q.lookup(z), brute)


def test_straight_through_sends_gradients_to_the_encoder():
    model = VQTokenizer(TINY).train()
    loss, _ = tokenizer_loss(model, {"image": torch.rand(2, 3, 64, 64)})
    loss.backward()
    grad = model.encoder.net[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_dead_codes_are_restarted_on_encoder_outputs():
    cfg = TokenizerConfig(channels=(8, 16, 16), codebook_size=16, code_dim=4, dead_code_threshold=0.5)
    q = Quantizer(cfg).train()
    q.ema_count.fill_(0.1)  # every code looks unused
    z = torch.randn(1, 4, 2, 2) + 10  # far from every code
    q(z)
    vectors = z.permute(0, 2, 3, 1).reshape(-1, 4)
    # every restarted code now sits on one of the batch's vectors
    assert all(((vectors - c).abs().sum(1) < 1e-5).any() for c in q.codebook)


def test_bad_inputs_are_clear_errors():
    model = VQTokenizer(TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model.encode(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 32\)"):
        model.decode(torch.full((1, 8, 8), 40, dtype=torch.long))
    with pytest.raises(ValueError, match="LongTensor"):
        model.decode(torch.zeros(1, 8, 8))


def test_bundled_tokenizer_reconstructs_fresh_renders():
    model = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors")
    data = MiniWorld(n=48, split="test", styles="all", seed=5)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    recon = model.decode(model.encode(images))
    quality = psnr(recon, images).mean()
    # a baseline that knows only each image's mean colour scores far lower
    flat = images.mean((2, 3), keepdim=True).expand_as(images)
    assert quality > 24 and quality > psnr(flat, images).mean() + 8
