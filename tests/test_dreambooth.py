import pytest
import torch

from styledrop_mini import dreambooth
from styledrop_mini.adapters import AdapterConfig, attach
from styledrop_mini.sampling import GUIDANCE, adapter_guided_logits, mixed_logits
from styledrop_mini.text_encoder import TextFeatures
from styledrop_mini.transformer import MaskedTransformer, TransformerConfig

CFG = TransformerConfig(codebook_size=16, grid=4, width=64, layers=2, heads=2, text_width=8)


def text(seed):
    g = torch.Generator().manual_seed(seed)
    return TextFeatures(torch.randn(2, 5, 8, generator=g), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, 8, generator=g))


def adapted(seed):
    torch.manual_seed(0)
    model = MaskedTransformer(CFG).eval()  # the same base weights for both adapters
    torch.manual_seed(seed)
    attach(model, AdapterConfig(d_prj=2))
    for m in model.modules():
        if hasattr(m, "up") and isinstance(m.up, torch.nn.Linear):
            torch.nn.init.normal_(m.up.weight, std=0.5)
    return model


def test_mixing_is_style_at_gamma_0_content_at_gamma_1_and_linear_between():
    style, content = adapted(1), adapted(2)
    t, c, n = text(1), text(2), text(3)
    tokens = torch.randint(0, 17, (2, 16), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        l_style = adapter_guided_logits(style, t, n, GUIDANCE)(tokens)
        l_content = adapter_guided_logits(content, c, n, GUIDANCE)(tokens)
        assert torch.equal(mixed_logits(style, content, t, c, n, GUIDANCE, 0.0)(tokens), l_style)
        assert torch.equal(mixed_logits(style, content, t, c, n, GUIDANCE, 1.0)(tokens), l_content)
        half = mixed_logits(style, content, t, c, n, GUIDANCE, 0.6)(tokens)
        assert torch.allclose(half, 0.4 * l_style + 0.6 * l_content, atol=1e-4)
        assert not torch.allclose(l_style, l_content, atol=1e-3)
    with pytest.raises(ValueError, match="gamma"):
        mixed_logits(style, content, t, c, n, GUIDANCE, 1.5)


class FakePipe:
    """Just what class_tokens needs: a generator of images and a tokenizer."""
    device = torch.device("cpu")
    base_fingerprint = None
    calls = 0

    def generate(self, prompts, seed=0, progress=False):
        FakePipe.calls += 1
        g = torch.Generator().manual_seed(seed)
        return torch.rand(len(prompts), 3, 8, 8, generator=g)

    class tokenizer:
        @staticmethod
        def encode(images):
            return (images[:, 0, ::2, ::2] * 15).long()


def test_class_images_are_drawn_once_then_read_from_the_cache(tmp_path, monkeypatch):
    pipe = FakePipe()
    pipe.base_fingerprint = "base123"  # what MusePipeline.load records of its base file
    first = dreambooth.class_tokens(pipe, "an orange star in flat style", n=6, cache_dir=tmp_path)
    assert first.shape == (6, 16) and FakePipe.calls == 1
    cached = list(tmp_path.glob("class_an_orange_star_in_flat_style_*_6_0_base123.safetensors"))
    assert len(cached) == 1
    again = dreambooth.class_tokens(pipe, "an orange star in flat style", n=6, cache_dir=tmp_path)
    assert torch.equal(again, first) and FakePipe.calls == 1  # reused, not redrawn
    dreambooth.class_tokens(pipe, "an orange star in flat style", n=6, seed=1, cache_dir=tmp_path)
    assert FakePipe.calls == 2  # another seed is another set
    dreambooth.class_tokens(pipe, "a star", n=6, cache_dir=tmp_path)
    assert FakePipe.calls == 3  # another class prompt too
    # a caption is a user's text: it never makes a file outside the cache folder, and prompts that
    # differ only in punctuation get files of their own
    dreambooth.class_tokens(pipe, "../../escaped /x", n=6, cache_dir=tmp_path / "cache")
    dreambooth.class_tokens(pipe, "escaped x", n=6, cache_dir=tmp_path / "cache")
    assert FakePipe.calls == 5 and not list(tmp_path.glob("escaped*")) and not list(tmp_path.parent.glob("escaped*"))
    assert len(list((tmp_path / "cache").glob("class_escaped_x_*.safetensors"))) == 2


def test_prior_preservation_adds_the_class_loss():
    class Encoder:
        def __call__(self, prompts):
            g = torch.Generator().manual_seed(len(prompts[0]))
            n = len(prompts)
            return TextFeatures(torch.randn(n, 5, 8, generator=g), torch.ones(n, 5, dtype=torch.bool),
                                torch.randn(n, 8, generator=g))

    torch.manual_seed(0)
    model = MaskedTransformer(CFG)
    batch = {"tokens": torch.randint(0, 16, (4, 16)), "text": ["a sks star"] * 4}
    prior = torch.randint(0, 16, (10, 16)).short()
    torch.manual_seed(5)
    with_prior, metrics = dreambooth.prior_loss_fn(Encoder(), prior, "a star", 1.0)(model, batch)
    torch.manual_seed(5)
    alone, _ = dreambooth.prior_loss_fn(Encoder(), prior, "a star", 0.0)(model, batch)
    assert "prior_loss" in metrics and torch.allclose(with_prior, alone + metrics["prior_loss"], atol=1e-4)


def test_the_bundled_subject_loads_with_its_caption_class_and_identifier(tmp_path):
    images, meta = dreambooth.load_subject()
    assert images.shape == (5, 3, 64, 64)
    assert meta == {"class_noun": "star", "identifier": "sks", "prompt": "an orange sks star in flat style"}
    assert dreambooth.class_prompt(meta["prompt"], "sks") == "an orange star in flat style"
    assert dreambooth.subject_prompt("star") == "a sks star"
    assert dreambooth.renamed(meta, "zwx", "shape") == {"prompt": "an orange zwx shape in flat style",
                                                         "identifier": "zwx", "class_noun": "shape"}
    assert dreambooth.renamed(meta) == meta
    with pytest.raises(ValueError, match="must be one word"):
        dreambooth.renamed(meta, "two words")
    with pytest.raises(ValueError, match="identifier 'xyz'"):
        dreambooth.class_prompt("a sks star", "xyz")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "class_noun": "star", "text": "a red star"}\n')
    with pytest.raises(ValueError, match="metadata.jsonl.*must contain the identifier 'sks'"):
        dreambooth.load_subject(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere: no such subject folder"):
        dreambooth.load_subject(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty has no metadata.jsonl"):
        dreambooth.load_subject(tmp_path / "empty")


def test_a_broken_subject_folder_is_named_line_by_line(tmp_path):
    from PIL import Image

    from styledrop_mini.files import MetadataError

    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    meta = tmp_path / "metadata.jsonl"
    meta.write_text('{"file_name": "a.png", "text": "a sks star"}\n')  # no class_noun: a KeyError once
    with pytest.raises(MetadataError, match=r"metadata.jsonl, line 1: needs a 'class_noun' string"):
        dreambooth.load_subject(tmp_path)
    meta.write_text('{"file_name": "a.png", "class_noun": "star", "text": "a sks star"}\n{"file_name": "a.png",\n')
    with pytest.raises(MetadataError, match=r"metadata.jsonl, line 2: not valid JSON"):
        dreambooth.load_subject(tmp_path)
    meta.write_text('{"file_name": "a.png", "class_noun": "star", "text": "a sks star"}\n'
                    '{"file_name": "../../etc/passwd", "class_noun": "star"}\n')
    with pytest.raises(MetadataError, match=r"metadata.jsonl, line 2: the path '../../etc/passwd' leaves"):
        dreambooth.load_subject(tmp_path)
    meta.write_text('{"file_name": "/etc/hostname", "class_noun": "star", "text": "a sks star"}\n')
    with pytest.raises(MetadataError, match="line 1: the path '/etc/hostname' leaves"):
        dreambooth.load_subject(tmp_path)


def test_cli_dreambooth_then_mixed_generation(tmp_path, capsys):
    from styledrop_mini.cli import main
    from styledrop_mini.settings import STYLES_DIR

    star, glass = tmp_path / "star.safetensors", tmp_path / "glass.safetensors"
    assert main(["dreambooth", str(dreambooth.SUBJECT_DIR), "-o", str(star), "--steps", "2", "--n-class", "2"]) == 0
    assert "'an orange sks star in flat style'" in capsys.readouterr().out
    assert list((tmp_path / "class_images").glob("class_an_orange_star_in_flat_style_*.safetensors"))
    renamed = tmp_path / "zwx.safetensors"  # --identifier renames the identifier in the photos' caption
    assert main(["dreambooth", str(dreambooth.SUBJECT_DIR), "-o", str(renamed), "--steps", "1", "--n-class", "2",
                 "--identifier", "zwx"]) == 0
    assert "'an orange zwx star in flat style'" in capsys.readouterr().out
    assert main(["style-tune", str(STYLES_DIR / "stained_glass.png"), "--content", "a yellow house",
                 "--style", "stained glass", "-o", str(glass), "--steps", "2"]) == 0
    grid = tmp_path / "mixed.png"
    assert main(["generate", "an orange sks star", "--adapter", str(glass), "--content-adapter", str(star),
                 "--gamma", "0.6", "-n", "2", "--steps", "3", "-o", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "'an orange sks star in stained glass style'" in out and "gamma 0.6" in out and grid.exists()
    assert "content adapter" in out and "prompt 'an orange sks star in flat style'" in out
    assert main(["generate", "a sks star", "--content-adapter", str(star), "-o", str(grid)]) == 2
    assert "give --adapter too" in capsys.readouterr().err
