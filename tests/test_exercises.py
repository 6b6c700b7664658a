import math

import pytest
import torch

from styledrop_mini import world
from styledrop_mini.datasets import MiniWorld, export_image_folder
from styledrop_mini.exercises import ExerciseError, _image_branch_case, check


def test_right_count_passes_and_common_mistakes_are_explained(capsys):
    from styledrop_mini.styles import all_looks

    n = len(world.CONTENTS) * len(world.COLOURS)
    check("00.count_seen_combinations", n * len(world.training_looks()))
    assert "✓" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="held-out looks too"):
        check("00.count_seen_combinations", n * len(all_looks()))
    with pytest.raises(ExerciseError, match="only the named seen styles"):
        check("00.count_seen_combinations", n * len(world.SEEN_STYLES))
    with pytest.raises(ExerciseError, match="letters"):
        check("00.count_seen_combinations", len(world.SHAPES) * len(world.COLOURS) * len(world.training_looks()))
    with pytest.raises(ExerciseError, match="no answer yet"):
        check("00.count_seen_combinations", None)


def test_caption_parser_checker():
    names = {d: s for s, d in world.STYLES.items()}

    def good(text):
        body = text.split(" ", 1)[1][:-len(" style")]
        left, descriptor = body.split(" in ", 1)
        colour, content = left.split(" ", 1)
        return content, colour, names[descriptor]

    def returns_descriptor(text):
        content, colour, style = good(text)
        return content, colour, world.STYLES[style]

    def one_word_content(text):
        content, colour, style = good(text)
        return content.split(" ")[-1], colour, style

    check("00.caption_to_labels", good)
    with pytest.raises(ExerciseError, match="descriptor"):
        check("00.caption_to_labels", returns_descriptor)
    with pytest.raises(ExerciseError, match="two words"):
        check("00.caption_to_labels", one_word_content)


def test_held_out_folder_checker(tmp_path):
    export_image_folder(MiniWorld(n=12, styles="held_out"), tmp_path / "ok")
    check("00.held_out_folder", tmp_path / "ok")
    export_image_folder(MiniWorld(n=12, styles="seen"), tmp_path / "seen")
    with pytest.raises(ExerciseError, match="seen styles"):
        check("00.held_out_folder", tmp_path / "seen")


def test_unknown_exercise():
    with pytest.raises(KeyError, match="no exercise"):
        check("99.nothing", 1)


def test_masked_schedule_checker_explains_off_by_one_and_linear():
    import math

    check("03.tokens_still_masked", lambda k, K, N: math.floor(N * math.cos(math.pi / 2 * (k + 1) / K)))
    with pytest.raises(ExerciseError, match="before"):
        check("03.tokens_still_masked", lambda k, K, N: math.floor(N * math.cos(math.pi / 2 * k / K)))
    with pytest.raises(ExerciseError, match="linear"):
        check("03.tokens_still_masked", lambda k, K, N: round(N * (1 - (k + 1) / K)))


def test_guidance_checker():
    check("03.guidance", lambda c, u, s: u + s * (c - u))
    with pytest.raises(ExerciseError, match="unconditional"):
        check("03.guidance", lambda c, u, s: c + s * (c - u))
    with pytest.raises(ExerciseError, match="wrong way"):
        check("03.guidance", lambda c, u, s: u + s * (u - c))


def test_adapter_params_checker_explains_missing_biases():
    check("04.adapter_params", lambda w, layers, d: layers * 2 * (2 * w * d + d + w))
    with pytest.raises(ExerciseError, match="biases"):
        check("04.adapter_params", lambda w, layers, d: layers * 2 * 2 * w * d)
    with pytest.raises(ExerciseError, match="TWO adapters"):
        check("04.adapter_params", lambda w, layers, d: layers * (2 * w * d + d + w))


def test_prompt_checkers():
    check("05.descriptor", lambda p: p.rpartition(" in ")[2].removesuffix(" style"))
    with pytest.raises(ExerciseError, match="style"):
        check("05.descriptor", lambda p: p.rpartition(" in ")[2])
    with pytest.raises(ExerciseError, match="LAST"):
        check("05.descriptor", lambda p: p.split(" in ")[0])
    check("05.leakage", lambda labels, ref: sum(x == ref for x in labels) / len(labels))
    with pytest.raises(ExerciseError, match="share"):
        check("05.leakage", lambda labels, ref: sum(x == ref for x in labels))


def test_feedback_checkers():
    import json
    from pathlib import Path

    def top_k(pool, k):
        out = []
        for prompt in dict.fromkeys(it["prompt"] for it in pool):
            out += [it["id"] for it in sorted((it for it in pool if it["prompt"] == prompt), key=lambda it: -it["clip_text"])[:k]]
        return out

    check("06.top_k", top_k)
    with pytest.raises(ExerciseError, match="EACH prompt"):
        check("06.top_k", lambda pool, k: [it["id"] for it in sorted(pool, key=lambda it: -it["clip_text"])][:3 * k])

    def read(folder):
        path = Path(folder) / "selections" / "human.json"
        return json.loads(path.read_text())["ids"] if path.exists() else []

    check("07.read_selection", read)
    with pytest.raises(ExerciseError, match="not an error"):
        check("07.read_selection", lambda folder: json.loads((Path(folder) / "selections" / "human.json").read_text())["ids"])


def test_a_stub_that_still_raises_is_explained_not_a_traceback():
    def stub(*args):
        raise NotImplementedError()
    with pytest.raises(ExerciseError, match="not written yet.*NotImplementedError"):
        check("04.adapter_guidance", stub)


# The five core exercises: the right answer passes, each usual mistake gets its explanation.
def test_adapter_guidance_checker():
    check("04.adapter_guidance", lambda a, b, u, la, lb: a + la * (a - b) + lb * (b - u))
    with pytest.raises(ExerciseError, match="swapped"):
        check("04.adapter_guidance", lambda a, b, u, la, lb: a + lb * (a - b) + la * (b - u))
    with pytest.raises(ExerciseError, match="BASE model's guidance"):
        check("04.adapter_guidance", lambda a, b, u, la, lb: a + la * (a - b) + lb * (a - u))
    with pytest.raises(ExerciseError, match="start from the ADAPTED"):
        check("04.adapter_guidance", lambda a, b, u, la, lb: b + la * (a - b) + lb * (b - u))


def _step(peek=False, everywhere=False, zero_grad=True, update=True):
    import torch.nn.functional as F

    def step(model, optimizer, tokens, text, mask):
        inputs = tokens if peek else tokens.masked_fill(mask, model.config.mask_id)
        logits = model(inputs, text.tokens, text.mask, text.pooled)
        loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten()) if everywhere else F.cross_entropy(
            logits[mask], tokens[mask])
        if update:
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()
    return step


def test_tuning_step_checker():
    check("04.tuning_step", _step())
    with pytest.raises(ExerciseError, match="EVERY token"):
        check("04.tuning_step", _step(everywhere=True))
    with pytest.raises(ExerciseError, match="saw the answers"):
        check("04.tuning_step", _step(peek=True))
    with pytest.raises(ExerciseError, match="zero_grad"):
        check("04.tuning_step", _step(zero_grad=False))
    with pytest.raises(ExerciseError, match="did not change"):
        check("04.tuning_step", _step(update=False))


def test_cf_rule_checker():
    def cf(pool, min_style=None, floor_ignored=False):
        chosen = []
        for prompt in dict.fromkeys(it["prompt"] for it in pool):
            ok = [it for it in pool if it["prompt"] == prompt
                  and (min_style is None or floor_ignored or it["clip_style"] >= min_style)]
            if ok:
                chosen.append(max(ok, key=lambda it: it["clip_text"])["id"])
        return chosen

    check("06.cf_rule", cf)
    with pytest.raises(ExerciseError, match="floor was ignored"):
        check("06.cf_rule", lambda pool, min_style=None: cf(pool, min_style, floor_ignored=True))
    with pytest.raises(ExerciseError, match="LOWEST"):
        check("06.cf_rule", lambda pool, min_style=None: [
            min((it for it in pool if it["prompt"] == p), key=lambda it: it["clip_text"])["id"]
            for p in dict.fromkeys(it["prompt"] for it in pool)])


def test_mixing_step_checker():
    def eq4(a, b, u, la, lb):
        return a + la * (a - b) + lb * (b - u)

    check("08.mixing_step", lambda s, c, la, lb, g: (1 - g) * eq4(*s, la, lb) + g * eq4(*c, la, lb))
    with pytest.raises(ExerciseError, match="weighs the CONTENT"):
        check("08.mixing_step", lambda s, c, la, lb, g: g * eq4(*s, la, lb) + (1 - g) * eq4(*c, la, lb))
    with pytest.raises(ExerciseError, match="raw adapted logits"):
        check("08.mixing_step", lambda s, c, la, lb, g: (1 - g) * s[0] + g * c[0])


def test_prior_loss_checker():
    from styledrop_mini.transformer import masked_loss

    def loss(model, t, feats, m):
        return masked_loss(model, t, feats.tokens, feats.mask, m, feats.pooled)[0]

    check("08.prior_loss", lambda model, t, x, m, ct, cx, cm, w: loss(model, t, x, m) + w * loss(model, ct, cx, cm))
    with pytest.raises(ExerciseError, match="PRIOR term"):
        check("08.prior_loss", lambda model, t, x, m, ct, cx, cm, w: w * loss(model, t, x, m) + loss(model, ct, cx, cm))
    with pytest.raises(ExerciseError, match="CLASS prompt"):
        check("08.prior_loss", lambda model, t, x, m, ct, cx, cm, w: loss(model, t, x, m) + w * loss(model, ct, x, cm))
    with pytest.raises(ExerciseError, match="missing"):
        check("08.prior_loss", lambda model, t, x, m, ct, cx, cm, w: loss(model, t, x, m))


def test_perplexity_and_recall_checkers():
    import torch

    def perplexity(tokens, k):
        p = torch.bincount(tokens.flatten(), minlength=k).float() / tokens.numel()
        return torch.exp(-(p[p > 0] * p[p > 0].log()).sum())

    check("01.codebook_perplexity", perplexity)
    with pytest.raises(ExerciseError, match="is the entropy"):
        check("01.codebook_perplexity", lambda t, k: perplexity(t, k).log())
    with pytest.raises(ExerciseError, match="NaN"):
        check("01.codebook_perplexity", lambda t, k: torch.tensor(float("nan")))

    def recall(a, b, k):
        return float((a @ b.T).topk(k, dim=1).indices.eq(torch.arange(len(a))[:, None]).any(1).float().mean())

    check("02.recall_at_k", recall)
    with pytest.raises(ExerciseError, match="text-to-image"):
        check("02.recall_at_k", lambda a, b, k: recall(b, a, k))
    with pytest.raises(ExerciseError, match="off by one"):
        check("02.recall_at_k", lambda a, b, k: recall(a, b, k + 1))


def test_image_branch_checker():
    def right(x, image_tokens, q_proj, kv, out_weight, scale, heads):
        B, N, C = x.shape
        n = image_tokens.shape[1]
        q = q_proj(x).view(B, N, heads, C // heads).transpose(1, 2)
        k, v = kv(image_tokens).view(B, n, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
        y = torch.softmax(q @ k.transpose(-1, -2) / (C // heads) ** 0.5, -1) @ v
        return scale.view(B, 1, 1) * (y.transpose(1, 2).reshape(B, N, C) @ out_weight.T)

    assert "DecoupledCrossAttention" in check("11.image_branch", right)
    no_scale = lambda x, c, q, kv, w, scale, h: right(x, c, q, kv, w, torch.ones_like(scale), h)  # noqa: E731
    with pytest.raises(ExerciseError, match="λ .* is missing"):
        check("11.image_branch", no_scale)

    def with_bias(x, c, q, kv, w, scale, h):
        bias = _image_branch_case()[1].text.out.bias.detach()
        return right(x, c, q, kv, w, scale, h) + scale.view(-1, 1, 1) * bias
    with pytest.raises(ExerciseError, match="bias is already added once"):
        check("11.image_branch", with_bias)


def test_subtract_content_checker():
    assert "style_embedding" in check("11.subtract_content", lambda e, t, s: e - s * t)
    with pytest.raises(ExerciseError, match="SUBTRACT"):
        check("11.subtract_content", lambda e, t, s: e + s * t)
    with pytest.raises(ExerciseError, match="do not re-normalise"):
        check("11.subtract_content", lambda e, t, s: torch.nn.functional.normalize(e - s * t, dim=-1))


def test_styleclip_loss_checker():
    right = lambda e, t, z, zs, l2: 1 - (e * t).sum(-1) + l2 * (z - zs).pow(2).flatten(1).sum(-1)  # noqa: E731
    assert "optimise_latent" in check("10.styleclip_loss", right)
    with pytest.raises(ExerciseError, match="1 − cos"):
        check("10.styleclip_loss", lambda e, t, z, zs, l2: (e * t).sum(-1) + l2 * (z - zs).pow(2).flatten(1).sum(-1))
    with pytest.raises(ExerciseError, match="SQUARED"):
        check("10.styleclip_loss", lambda e, t, z, zs, l2: 1 - (e * t).sum(-1) + l2 * (z - zs).pow(2).flatten(1).sum(-1).sqrt())
    with pytest.raises(ExerciseError, match="one loss per image"):
        check("10.styleclip_loss", lambda e, t, z, zs, l2: (1 - (e * t).sum(-1)).mean() + l2 * (z - zs).pow(2).sum())


def test_text_direction_checker():
    right = lambda t, n: (t - n.mean(0)) / (t - n.mean(0)).norm()  # noqa: E731
    assert "text_direction" in check("10.text_direction", right)
    with pytest.raises(ExerciseError, match="unit length"):
        check("10.text_direction", lambda t, n: t - n.mean(0))
    with pytest.raises(ExerciseError, match="neutral"):
        check("10.text_direction", lambda t, n: t)
    with pytest.raises(ExerciseError, match="wrong way"):
        check("10.text_direction", lambda t, n: -right(t, n))


def test_the_evaluation_checkers_explain_wrong_auc_and_disagreement_rules():
    def auc(p, n):
        return (p[:, None] > n[None]).float().mean() + 0.5 * (p[:, None] == n[None]).float().mean()
    assert "metrics.pair_auc" in check("09.pair_auc", auc)
    with pytest.raises(ExerciseError, match="ties: .* counts half"):
        check("09.pair_auc", lambda p, n: (p[:, None] > n[None]).float().mean())
    with pytest.raises(ExerciseError, match="the other way round"):
        check("09.pair_auc", lambda p, n: 1 - auc(p, n))

    def rule(ca, ja, cb, jb, se=lambda x, y: math.hypot(x["se"], y["se"]), k=2):
        clip_gap, judge_gap = ca["mean"] - cb["mean"], ja["mean"] - jb["mean"]
        return abs(clip_gap) > k * se(ca, cb) and abs(judge_gap) > k * se(ja, jb) and clip_gap * judge_gap < 0
    assert "paper_table.disagreements" in check("09.disagreement", rule)
    with pytest.raises(ExerciseError, match="case 2: expected False: CLIP and the judges both prefer a"):
        check("09.disagreement", lambda ca, ja, cb, jb: rule(ca, ja, cb, jb) or abs(ca["mean"] - cb["mean"]) > 0.05)
    with pytest.raises(ExerciseError, match="case 3: expected False: .*inside the noise"):
        check("09.disagreement", lambda ca, ja, cb, jb: (ca["mean"] - cb["mean"]) * (ja["mean"] - jb["mean"]) < 0)
    with pytest.raises(ExerciseError, match="case 3: .*under two standard errors"):
        check("09.disagreement", lambda *cells: rule(*cells, k=1))
    with pytest.raises(ExerciseError, match=r"case 6: .*not se_a \+ se_b"):
        check("09.disagreement", lambda *cells: rule(*cells, se=lambda x, y: x["se"] + y["se"]))
