import csv
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from styledrop_mini import metrics, paper_table, world
from styledrop_mini.datasets import style_references
from styledrop_mini.feedback import FeedbackSettings
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.textual_inversion import PLACEHOLDER, InversionSettings, invert


@pytest.fixture(scope="module")
def pipe():
    return MusePipeline.load()


def test_textual_inversion_learns_its_word_and_nothing_else(pipe):
    ref = style_references()["neon"]
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    encoder, info = invert(pipe, ref.image, f"a pink star in {PLACEHOLDER} style",
                           InversionSettings(steps=8, batch_size=2, lr=5e-2), precision="fp32")
    assert info["trainable"] == encoder.vector.numel() == pipe.text_encoder.width
    start = pipe.text_encoder.model.token_embedding(torch.tensor(encoder.word_ids("style"))).mean(0)
    assert (encoder.vector - start).abs().max() > 1e-3  # the word moved
    assert all(torch.equal(v, pipe.transformer.state_dict()[k]) for k, v in before.items())  # G did not
    assert all(p.requires_grad for p in pipe.transformer.parameters())  # nor did its flags
    plain, with_word = ["a pink star in flat style"], [f"a pink star in {PLACEHOLDER} style"]
    assert torch.equal(encoder(plain).tokens, pipe.text_encoder(plain).tokens)  # other prompts read as before
    assert not torch.allclose(encoder(with_word).tokens, pipe.text_encoder(with_word).tokens)


def test_textual_inversion_needs_its_word_in_the_caption(pipe):
    with pytest.raises(ValueError, match=f"must contain the placeholder word '{PLACEHOLDER}'"):
        invert(pipe, style_references()["neon"].image, "a pink star in glowing neon style",
               InversionSettings(steps=1))


def test_descriptions_speak_the_world_words():
    references, descriptions = paper_table.table_references()
    assert set(references) == {*world.HELD_OUT_STYLES, world.HARD_STYLE, "mosaic", "crayon"}
    assert paper_table.description(references["neon"]) == "on a dark background with no fill with a glowing outline"
    every_phrase = {p for phrases in world.PHRASES.values() for p in phrases.values() if p}
    for style in ("mosaic", "crayon"):
        words = paper_table.description(references[style], descriptions)
        assert any(p in words for p in every_phrase)
    with pytest.raises(ValueError, match="no bundled reference for"):
        paper_table.table_references(("flat",))


def test_the_table_fills_every_row_and_writes_it(pipe, tmp_path):
    references, descriptions = paper_table.table_references(("neon",))
    references = {k: references[k] for k in ("neon", "mosaic")}
    tiny = replace(paper_table.QUICK_TABLE, contents=2, seeds=1, steps=3,
                   feedback=FeedbackSettings(per_prompt=2, n_prompts=2, steps=3))
    result = paper_table.run_table(pipe, pipe.judges(), references, tiny, outside=descriptions,
                                   workdir=tmp_path / "runs", say=lambda line: None)
    neon, mosaic = result["table"]["neon"], result["table"]["mosaic"]
    assert list(neon) == list(paper_table.METHODS)
    assert "R2 simulated HF" not in mosaic and "judge_style" not in mosaic["StyleDrop R1"]  # no truth outside
    assert all(row["clip_style"]["n"] == 2 for row in neon.values())  # 2 contents x 1 image x 1 tuning seed
    assert result["settings"] == {"contents": 2, "seeds": 1, "tuning_seeds": [0], "steps": 3}  # said in the report
    total = sum(p.numel() for p in pipe.transformer.parameters())
    trainable = {m: neon[m]["trainable"] for m in neon}
    assert trainable["base, style name"] == 0 and trainable["textual inversion"] == pipe.text_encoder.width
    assert 0 < trainable["StyleDrop R1"] < trainable["R2 CF"] < 0.05 * total  # round 2: d_prj 32
    assert trainable["full fine-tuning"] == total
    assert trainable["IP-Adapter"] == trainable["InstantStyle"] == 0 and "InstantStyle" in mosaic  # no tuning
    paths = paper_table.write_results(result, tmp_path)
    rows = list(csv.DictReader(open(paths[0])))
    assert len(rows) == len(neon) + len(mosaic) and rows[0]["method"] == "base, style name"
    assert "| StyleDrop R1 |" in paths[1].read_text()


def test_a_table_run_cut_short_continues_from_its_finished_rows(pipe, tmp_path):
    references, descriptions = paper_table.table_references(("neon",))
    references = {"neon": references["neon"]}
    tiny = replace(paper_table.QUICK_TABLE, contents=2, seeds=1)
    methods = ("base, style name", "base, description")
    first = paper_table.run_table(pipe, pipe.judges(), references, tiny, methods=methods[:1], outside=descriptions,
                                  workdir=tmp_path, say=lambda line: None)  # stopped after one row
    with pytest.raises(ValueError, match="holds an earlier table run .*--resume"):
        paper_table.run_table(pipe, pipe.judges(), references, tiny, methods=methods, workdir=tmp_path)
    with pytest.raises(ValueError, match="settings.json: the earlier run's settings differ"):
        paper_table.run_table(pipe, pipe.judges(), references, replace(tiny, seeds=2), methods=methods,
                              workdir=tmp_path, resume=True)
    said = []
    second = paper_table.run_table(pipe, pipe.judges(), references, tiny, methods=methods, outside=descriptions,
                                   workdir=tmp_path, resume=True, say=said.append)
    assert said[0] == f"neon: base, style name: kept from {tmp_path / 'rows'}" and "kept" not in said[1]
    assert second["table"]["neon"]["base, style name"] == first["table"]["neon"]["base, style name"]
    assert torch.equal(second["images"]["neon"]["base, style name"], first["images"]["neon"]["base, style name"])
    assert list(second["table"]["neon"]) == list(methods)
    assert second["wall_seconds"] > first["wall_seconds"] > 0  # the kept row's time counts in the total
    with pytest.raises(ValueError, match="--work-dir"):
        paper_table.run_table(pipe, pipe.judges(), references, tiny, resume=True)
    kept_images = tmp_path / "rows" / "neon" / "base_style_name.safetensors"
    kept_images.write_bytes(kept_images.read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match="base_style_name.safetensors: cannot read this row's images .*delete it"):
        paper_table.run_table(pipe, pipe.judges(), references, tiny, methods=methods, workdir=tmp_path, resume=True)


def test_the_style_embedding_ignores_content_and_clip_does_not(pipe):
    judges = pipe.judges()
    ours = metrics.content_invariance(judges.style_embedding, n_looks=10, n_contents=5)
    theirs = metrics.content_invariance(lambda x: F.normalize(pipe.clip.image_embeddings(x), dim=-1),
                                        n_looks=10, n_contents=5)
    assert ours["auc"] >= 0.95 and ours["same_look_other_content"] > ours["same_content_other_look"]
    assert theirs["auc"] < 0.5  # CLIP's image features say what is drawn before how


def test_orderings_and_disagreements_read_a_table_as_the_paper_would():
    def row(clip_style, judge_style, clip_text=0.3, judge_content=0.9):
        cell = lambda mean: {"mean": mean, "se": 0.01, "n": 100}  # noqa: E731
        return {"clip_style": cell(clip_style), "judge_style": cell(judge_style), "style_embedding": cell(clip_style),
                "clip_text": cell(clip_text), "judge_content": cell(judge_content)}

    table = {"neon": {"base, style name": row(0.50, 0.10), "StyleDrop R1": row(0.70, 0.05)}}
    found = paper_table.orderings(table)
    assert found["CLIP"]["R1 style > base"] == {"holds": 1, "of": 1}
    assert found["judges"]["R1 style > base"] == {"holds": 0, "of": 1}  # CLIP's reading, not the truth
    assert found["CLIP"]["CF text >= R1"] == {"holds": 0, "of": 0}  # no round 2 in this table
    assert "CF text >= R1" not in found["style embedding"]  # it measures style only
    (clash,) = paper_table.disagreements(table)
    assert clash["kind"] == "style" and clash["clip_prefers"] == "StyleDrop R1"
    assert clash["judges_prefer"] == "base, style name"
    table["neon"]["StyleDrop R1"]["judge_style"]["se"] = 0.5  # a gap inside the noise is no disagreement
    assert paper_table.disagreements(table) == []
