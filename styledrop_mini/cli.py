"""The `styledrop-mini` command line (also `python -m styledrop_mini`).

It parses, checks and prints; the work lives in the library. Every option and input file is checked
before a model is loaded or a step is run. An expected failure (a bad option, a missing or broken
file) is one line on stderr and exit status 2; Ctrl-C is one line and status 130 (training saves its
state for --resume first). Only a real bug shows a traceback (STYLEDROP_MINI_DEBUG=1 shows them all).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__, world
from .files import check_output, save_or_rescue

MAX_IMAGES = 64  # per prompt in one `generate` call


# ----------------------------------------------------------------------------------------------
# Option types: bad values are refused while parsing, before anything slow
# ----------------------------------------------------------------------------------------------
def number(kind, low=None, high=None):
    """An argparse type: an int or a finite float in [low, high]."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high}], got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


POSITIVE = number(int, 1)
LR = number(float, 1e-8, 1.0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag) or the help says it."""

    def _get_help_string(self, action):
        if any(action.default is v for v in (None, False, argparse.SUPPRESS)) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_compute_options(parser, device: str = "cpu") -> None:
    parser.add_argument("--device", default=device, help="cpu, cuda or auto (cuda when there is one)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="training autocast: auto = bf16 on a GPU or a CPU with native bf16 "
                             "(AVX-512 BF16, AMX), fp32 elsewhere (emulated bf16 is ~30x slower)")


def checkpoints_option(parser) -> None:
    parser.add_argument("--checkpoints", help="folder with the checkpoints (default: the bundled data/checkpoints)")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def cmd_world_sheet(args) -> int:
    from .styles import all_looks

    out = check_output(args.out, "image")
    start = time.perf_counter()
    sheet = world.contact_sheet(seed=args.seed, tile=args.tile)
    save_or_rescue(sheet.save, out, "contact sheet")
    print(f"the mini world: {len(world.CONTENTS)} contents, {len(world.COLOURS)} colours, "
          f"{len(all_looks()):,} looks ({len(world.training_looks()):,} for the base generator), {len(world.STYLES)} "
          f"named (held out: {', '.join(world.HELD_OUT_STYLES)}; hard: {world.HARD_STYLE})")
    print(f"wrote contact sheet {out.resolve()} ({sheet.width}x{sheet.height} px) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_world_export(args) -> int:
    from .datasets import MiniWorld, export_image_folder

    data = MiniWorld(n=args.n, split=args.split, styles=args.styles, size=args.size, seed=args.seed,
                     paraphrase=args.paraphrase)
    folder = export_image_folder(data, args.folder, overwrite=args.overwrite)
    print(f"wrote {len(data)} images and {folder / 'metadata.jsonl'}")
    return 0


def cmd_demo(args) -> int:
    """The main job: learn a held-out style from its one bundled reference image, then draw new content."""
    from . import adapters, metrics, prompts
    from .clip import MiniClip
    from .datasets import style_references
    from .devices import describe, pick_device
    from .images import image_grid, tensor_to_pil
    from .judges import Judges
    from .pipeline import MusePipeline

    start = time.perf_counter()
    refs = style_references()
    if args.style not in refs:
        raise ValueError(f"no bundled reference for style {args.style!r}; choose from {', '.join(refs)}")
    out = check_output(args.out, "image")
    device = pick_device(args.device)
    ref = refs[args.style]
    pipe = MusePipeline.load(device=device)
    caption = prompts.styled(ref["reference_content"], ref["descriptor"])
    print(f"running on {describe(device, args.precision)}")
    print(f"1/3 style tuning on ONE image, {ref['file_name']}, captioned {caption!r}")
    settings = {**adapters.TUNING, **({"steps": args.steps} if args.steps else {})}
    model, _ = adapters.tune(pipe, ref["image"], [caption], seed=args.seed, device=device, precision=args.precision,
                             **settings)
    n_adapter, n_base = adapters.count(model)
    print(f"    {n_adapter:,} adapter parameters ({100 * n_adapter / n_base:.2f} % of the base model) "
          f"in {time.perf_counter() - start:.0f} s")

    contents = metrics.style_eval_contents(exclude=ref["content"], n=args.n)
    print(f"2/3 drawing {len(contents)} new contents in {ref['descriptor']!r} style, with StyleDrop and "
          "with the base model given the same prompt, and measuring them")
    judges = Judges.load(pipe.folder / "judges.safetensors")
    clip = MiniClip.load(pipe.folder / "clip.safetensors")
    runs = {name: metrics.style_transfer_report(pipe, judges, clip, ref, m, seeds=1, n_contents=args.n, seed=args.seed)
            for name, m in (("StyleDrop", model), ("base model", None))}
    print("3/3 scores (judges know the truth; CLIP gives StyleDrop's text and style scores)")
    print(f"    {'':12s} {'style right':>11s} {'content right':>13s} {'CLIP style':>10s} {'CLIP text':>9s}")
    for name, (r, _, _) in runs.items():
        print(f"    {name:12s} {r['judge_style']:11.0%} {r['judge_content']:13.0%} {r['clip_style']:10.3f} "
              f"{r['clip_text']:9.3f}")
    ref_tile = tensor_to_pil(ref["image"])
    grid = image_grid([[ref_tile] + [tensor_to_pil(i) for i in images] for _, images, _ in runs.values()],
                      row_labels=list(runs), col_labels=["reference"] + contents, tile=96,
                      title=f"{ref['descriptor']} style, learnt from one image ({caption!r})")
    out = save_or_rescue(grid.save, out, "demo grid")
    print(f"wrote {out.resolve()} in {time.perf_counter() - start:.0f} s in all")
    return 0


def cmd_train(args) -> int:
    import torch

    from .training import train

    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
    train(args.model, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, bank_size=args.bank_size,
          seed=args.seed, device=args.device, run_dir=args.run_dir or Path("runs") / args.model,
          resume=args.resume, workers=args.workers, command="styledrop-mini " + " ".join(sys.argv[1:]),
          save_dtype=dtype, precision=args.precision, attention=args.attention, overwrite=args.overwrite,
          preset=args.preset)
    return 0


def cmd_evaluate(args) -> int:
    import json

    from . import metrics
    from .devices import pick_device
    from .settings import CHECKPOINT_DIR

    unknown = sorted(set(args.models) - {"tokenizer", "judges", "clip", "base", "style-prior"})
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from tokenizer, judges, clip, base, style-prior")
    held_out = world.HELD_OUT_STYLES + (world.HARD_STYLE,)
    bad_styles = [s for s in args.styles if s not in held_out]
    if "style-prior" in args.models and bad_styles:
        raise ValueError(f"--styles {bad_styles}: style-prior measures held-out styles: {', '.join(held_out)}")
    if args.png and "style-prior" not in args.models:
        raise ValueError("--png is measured by 'style-prior': add it to the models")
    for path, _ in args.png:
        from .images import load_image
        load_image(path)  # a missing or broken picture fails now, before any slow work
    json_out = check_output(args.json, "file", "--json") if args.json else None
    settings = None
    if "base" in args.models:
        from .sampling import SamplerSettings
        settings = SamplerSettings(steps=args.steps, guidance=args.guidance, temperature=args.temperature).check()
    folder = Path(args.checkpoints) if args.checkpoints else CHECKPOINT_DIR
    device = pick_device(args.device)
    measuring = [m for m in args.models if m not in ("base", "style-prior")]
    bank = metrics.look_test_bank(n=args.n, seed=args.seed, workers=args.workers) if measuring else None
    report = {"test_images": len(bank) if bank else 0, "seed": args.seed}
    judges = None
    if "judges" in args.models or "tokenizer" in args.models:
        from .tokenizer import VQTokenizer
        tokenizer = VQTokenizer.load(folder / "tokenizer.safetensors", device)
    if "judges" in args.models:
        from .judges import Judges
        judges = Judges.load(folder / "judges.safetensors", device)
        report["judges"] = metrics.judges_on_renders_and_reconstructions(judges, tokenizer, bank)
    if "tokenizer" in args.models:
        report["tokenizer"] = metrics.tokenizer_report(tokenizer, bank)
        report["tokenizer"]["looks"] = metrics.look_reconstruction_report(tokenizer, n=args.n, seed=args.seed,
                                                                          per_style=max(4, args.n // 16))
    if "clip" in args.models:
        from .clip import MiniClip
        report["clip"] = metrics.clip_report(MiniClip.load(folder / "clip.safetensors", device), bank)
    if "base" in args.models:  # the generator: seen styles (what it learnt) and held-out names (what it cannot)
        from .clip import MiniClip
        from .judges import Judges
        from .pipeline import MusePipeline
        pipe = MusePipeline.load(folder, device)
        judges = judges or Judges.load(folder / "judges.safetensors", device)
        clip = MiniClip.load(folder / "clip.safetensors", device)
        report["base"] = {styles: metrics.generator_report(pipe, judges, clip, n=args.prompts, seed=args.seed,
                                                          styles=styles, settings=settings, workers=args.workers)
                          for styles in ("seen", "held_out")}
        report["base"]["sampler"] = settings.__dict__
    if "style-prior" in args.models:  # can the base learn a held-out style at all, and from one image?
        from . import diagnostics
        from .clip import MiniClip
        from .datasets import style_references
        from .judges import Judges
        from .pipeline import MusePipeline
        pipe = MusePipeline.load(folder, device)
        judges = judges or Judges.load(folder / "judges.safetensors", device)
        clip = MiniClip.load(folder / "clip.safetensors", device)
        start = time.perf_counter()
        report["style_prior"] = diagnostics.style_prior_report(
            pipe, judges, clip, style_references(), args.styles, seeds=args.seeds, n_prompts=args.prompts,
            precision=args.precision, outside=args.png)
        report["style_prior"]["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(diagnostics.table(report["style_prior"]))
    text = json.dumps(report, indent=2)
    print(text)
    if json_out:
        save_or_rescue(lambda path: path.write_text(text), json_out, "report")
    return 0


def cmd_style_tune(args) -> int:
    from . import adapters, prompts
    from .checkpoints import fingerprint
    from .devices import describe, pick_device
    from .images import fit_square, load_image, pil_to_tensor
    from .pipeline import MusePipeline

    raw = load_image(args.reference)  # any mode (RGBA, greyscale, palette, 16-bit) comes back as RGB
    out = check_output(args.out, "checkpoint")
    descriptor = prompts.descriptor_of(args.style)
    config = adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj, shared=args.shared).check()
    prompts.styled(args.content or "a thing", descriptor, args.template)  # a bad template fails now
    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    size = pipe.tokenizer.config.image_size
    if raw.size != (size, size):
        print(f"note: {args.reference} is {raw.width}x{raw.height}; centre-cropped and resized to {size}x{size}")
    tensor = pil_to_tensor(fit_square(raw, size))
    content = args.content
    if not content:
        from .clip import MiniClip
        content, confidence = prompts.propose_content(MiniClip.load(pipe.folder / "clip.safetensors", device), tensor)
        print(f"no --content given: the mini CLIP proposes {content!r} (confidence {confidence:.0%}); "
              "pass --content to choose it yourself")
    caption = prompts.styled(content, descriptor, args.template)
    print(f"tuning on {describe(device, args.precision)}")
    start = time.perf_counter()
    model, history = adapters.tune(pipe, tensor, [caption], config, steps=args.steps, batch_size=args.batch_size,
                                   lr=args.lr, seed=args.seed, device=device, precision=args.precision)
    seconds = time.perf_counter() - start
    n_adapter, n_base = adapters.count(model)
    info = {"base_fingerprint": fingerprint(pipe.transformer_file), "descriptor": descriptor,
            "template": args.template, "reference_caption": caption, "reference": str(Path(args.reference).resolve()),
            "style": args.style, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "train_seconds": round(seconds, 1), "final_loss": history[-1]["loss"] if history else None,
            "command": "styledrop-mini " + " ".join(sys.argv[1:])}
    out = save_or_rescue(lambda path: adapters.save_adapter(model, path, info), out, "tuned adapter")
    print(f"tuned {n_adapter:,} adapter parameters ({100 * n_adapter / n_base:.2f} % of the base model's "
          f"{n_base:,}) on {caption!r} in {seconds:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_feedback_pool(args) -> int:
    """Round 2, step 1: draw the pool with a round-1 adapter, scored by the mini CLIP."""
    from . import feedback, world
    from .adapters import read_info
    from .checkpoints import find_checkpoint
    from .clip import MiniClip
    from .devices import pick_device
    from .images import fit_square, load_image, pil_to_tensor
    from .pipeline import MusePipeline
    from .sampling import check_guidance

    adapter = find_checkpoint(args.adapter)
    info = read_info(adapter)
    check_guidance(args.lambda_a, args.lambda_b)
    settings = feedback.FeedbackSettings(per_prompt=args.per_prompt, n_prompts=args.prompts, seed=args.seed,
                                         guidance=(args.lambda_a, args.lambda_b)).check()
    feedback.check_new_run(args.out, args.overwrite)
    reference = args.reference or info.get("reference")
    if not reference or not Path(reference).is_file():
        raise FileNotFoundError(f"the style reference {reference!r} is not there; pass --reference")
    reference_image = load_image(reference)
    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    adapted, info = pipe.with_adapter(adapter)
    descriptor, caption = info.get("descriptor", ""), info.get("reference_caption", "")
    ref_content = caption.removesuffix(f" in {descriptor} style")
    content = max((c for c in world.CONTENTS if c in ref_content), key=len, default="")
    ref = {"style": info.get("style", descriptor), "descriptor": descriptor, "reference_content": ref_content,
           "content": content, "file_name": str(reference),
           "image": pil_to_tensor(fit_square(reference_image, pipe.tokenizer.config.image_size))}
    clip = MiniClip.load(pipe.folder / "clip.safetensors", device)
    run = feedback.make_pool(pipe, adapted, ref, args.out, clip, settings, round1_file=str(adapter),
                             overwrite=args.overwrite)
    print(f"wrote a pool of {len(run.pool)} images ({settings.n_prompts} prompts x {settings.per_prompt}) "
          f"to {Path(args.out).resolve()}")
    return 0


def cmd_feedback_select(args) -> int:
    from . import feedback

    if (args.ids is None) == (args.rule is None):
        raise ValueError("give either --ids (ids or pool file names) or --rule clip|random")
    run = feedback.Run.open(args.run)
    if args.ids is not None:
        ids = args.ids
    elif args.rule == "clip":
        ids = feedback.select_clip(run.pool, args.min_style)
    else:
        ids = feedback.select_random(run.pool, args.seed)
    name = args.name or args.rule or "human"
    chosen = run.select(name, ids, rule=args.rule or "ids")
    print(f"selection {name!r}: {len(chosen)} images {chosen}; saved in {run.selection_path(name)}")
    return 0


def cmd_feedback_train(args) -> int:
    from . import feedback
    from .devices import describe, pick_device
    from .pipeline import MusePipeline

    run = feedback.Run.open(args.run)
    if not run.selection(args.selection):
        raise ValueError(f"selection {args.selection!r} of {run.folder} is empty or missing: "
                         "select images first (`styledrop-mini feedback select`)")
    settings = feedback.FeedbackSettings(**{**run.manifest["settings"], "steps": args.steps, "d_prj": args.d_prj,
                                            "include_reference": not args.no_reference}).check()
    device = pick_device(args.device)
    print(f"tuning on {describe(device, args.precision)}")
    _, path = feedback.train_round(MusePipeline.load(args.checkpoints, device), run, args.selection, settings=settings,
                                   seed=args.seed, device=device, precision=args.precision)
    print(f"round 2 on selection {args.selection!r}: wrote {path.resolve()}")
    return 0


def cmd_dreambooth(args) -> int:
    """A DreamBooth content adapter from a folder of subject images (with prior preservation)."""
    from . import adapters, dreambooth
    from .checkpoints import fingerprint
    from .devices import describe, pick_device
    from .pipeline import MusePipeline

    images, meta = dreambooth.load_subject(args.subject)
    out = check_output(args.out, "checkpoint")
    if args.identifier is not None and len(args.identifier.split()) != 1:
        raise ValueError(f"--identifier must be one word, got {args.identifier!r}")
    prompt, identifier = meta["prompt"], args.identifier or meta["identifier"]
    words = [identifier if w == meta["identifier"] else w for w in prompt.split()]  # --identifier renames it
    if args.class_noun:  # --class renames the class noun in the caption
        words = [args.class_noun if w == meta["class_noun"] else w for w in words]
    prompt = " ".join(words)
    class_noun = args.class_noun or meta["class_noun"]
    config = adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj).check()
    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    print(f"tuning on {describe(device, args.precision)}")
    start = time.perf_counter()
    model, history = dreambooth.tune_subject(
        pipe, images, prompt, identifier, config, steps=args.steps, lr=args.lr, prior_weight=args.prior_weight,
        n_class=args.n_class, cache_dir=args.cache or out.parent / "class_images", seed=args.seed, device=device,
        precision=args.precision)
    seconds = time.perf_counter() - start
    info = {"base_fingerprint": fingerprint(pipe.transformer_file), "role": "content", "prompt": prompt,
            "class_prompt": dreambooth.class_prompt(prompt, identifier), "class_noun": class_noun,
            "identifier": identifier, "descriptor": "", "images": len(images), "prior_weight": args.prior_weight,
            "steps": args.steps, "lr": args.lr, "seed": args.seed, "train_seconds": round(seconds, 1),
            "command": "styledrop-mini " + " ".join(sys.argv[1:])}
    out = save_or_rescue(lambda path: adapters.save_adapter(model, path, info), out, "content adapter")
    print(f"tuned a content adapter on {len(images)} images of {prompt!r} (prior weight {args.prior_weight}) in "
          f"{seconds:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_generate(args) -> int:
    from . import prompts as templates
    from .adapters import read_info
    from .checkpoints import find_checkpoint
    from .devices import pick_device
    from .images import image_grid, tensor_to_pil
    from .pipeline import MusePipeline
    from .sampling import SamplerSettings, check_guidance

    empty = [i for i, p in enumerate(args.prompt) if not p.strip()]
    if empty:
        raise ValueError(f"prompt {empty[0] + 1} is empty; describe what to draw, e.g. \"a red star in flat style\"")
    settings = SamplerSettings(steps=args.steps, temperature=args.temperature, guidance=args.guidance).check()
    if args.content_adapter and not args.adapter:
        raise ValueError("--content-adapter mixes with a style adapter: give --adapter too")
    check_guidance(args.lambda_a, args.lambda_b, args.gamma if args.content_adapter else None)
    style_file = find_checkpoint(args.adapter) if args.adapter else None
    content_file = find_checkpoint(args.content_adapter) if args.content_adapter else None
    for file in (style_file, content_file):
        if file:
            read_info(file)  # a broken or diverged adapter is named now, not after loading the models
    out = check_output(args.out, "image")
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    prompt_list, make = list(args.prompt), None
    if style_file:
        adapted, info = pipe.with_adapter(style_file)
        if not args.no_template:
            prompt_list = [templates.styled(p, info["descriptor"], info.get("template", templates.TEMPLATE))
                           for p in prompt_list]
        print(f"adapter {style_file}: prompts {prompt_list}, lambda_A {args.lambda_a}, lambda_B {args.lambda_b}")
        make = pipe.adapter_guided(adapted, args.lambda_a, args.lambda_b)
    if content_file:
        content_model, content_info = pipe.with_adapter(content_file)
        # The paper gives the content adapter the prompt without the style descriptor. Our base model
        # only draws well from captions that name a style, so it gets the caption it was tuned on.
        content_prompt = content_info.get("prompt") or args.prompt[0]
        print(f"content adapter {content_file}: prompt {content_prompt!r}, gamma {args.gamma}")
        make = pipe.mixed(adapted, content_model, content_prompt, args.lambda_a, args.lambda_b, args.gamma)
    start = time.perf_counter()
    images = pipe.generate([p for p in prompt_list for _ in range(args.n)], seed=args.seed, settings=settings,
                           logits_fn_for=make)
    tiles = [tensor_to_pil(im) for im in images]
    if len(prompt_list) == 1:  # one prompt: rows of 8, the prompt as the title
        grid = image_grid([tiles[i:i + 8] for i in range(0, len(tiles), 8)], tile=64 * args.scale,
                          title=prompt_list[0])
    else:  # a row per prompt, labelled
        grid = image_grid([tiles[i:i + args.n] for i in range(0, len(tiles), args.n)], tile=64 * args.scale,
                          row_labels=prompt_list, label_width=min(420, 12 + 6 * max(map(len, prompt_list))))
    out = save_or_rescue(grid.save, out, "grid")
    rows = len(prompt_list)
    print(f"wrote {len(tiles)} image{'s' * (len(tiles) > 1)} ({rows} prompt{'s' * (rows > 1)} x {args.n}) "
          f"to {out.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


# ----------------------------------------------------------------------------------------------
# The parser
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .adapters import GUIDANCE, TUNING, AdapterConfig
    from .dreambooth import PRIOR
    from .dreambooth import TUNING as DREAMBOOTH
    from .feedback import POOL_CONTENTS, FeedbackSettings
    from .metrics import STYLE_EVAL_CONTENTS
    from .prompts import TEMPLATE
    from .sampling import LAMBDA_RANGE, SamplerSettings

    lam = number(float, *LAMBDA_RANGE)
    parser = argparse.ArgumentParser(prog="styledrop-mini", formatter_class=HelpFormatter,
                                     description="StyleDrop rebuilt end to end in a procedural mini world.")
    parser.add_argument("--version", action="version", version=f"styledrop-mini {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name, help_text):
        return parent.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)

    demo = command(sub, "demo", "the main job: learn a held-out style from one image, draw new content")
    demo.add_argument("--style", default="stained glass", help="a held-out style with a bundled reference")
    demo.add_argument("--out", "-o", default="styledrop_mini_demo.png", help="PNG to write")
    demo.add_argument("--seed", type=int, default=0, help="seed of the tuning and of the images")
    demo.add_argument("-n", type=number(int, 1, len(STYLE_EVAL_CONTENTS)), default=len(STYLE_EVAL_CONTENTS),
                      help="new contents to draw")
    demo.add_argument("--steps", type=number(int, 1, 100_000),
                      help=f"style-tuning steps (default: {TUNING['steps']}, adapters.TUNING)")
    add_compute_options(demo)
    demo.set_defaults(func=cmd_demo)

    world_cmd = command(sub, "world", "the mini world data set")
    world_sub = world_cmd.add_subparsers(dest="world_command", required=True, metavar="COMMAND")
    export = command(world_sub, "export", "render images into a folder with metadata.jsonl")
    export.add_argument("folder", help="folder to write (PNGs and metadata.jsonl)")
    export.add_argument("-n", type=number(int, 1, 10_000_000), default=100, help="number of images")
    export.add_argument("--split", choices=["train", "test"], default="train", help="train: even seeds, test: odd")
    export.add_argument("--styles", default="seen", help="'seen', 'held_out', 'all' or one style name")
    export.add_argument("--size", type=number(int, 16, 1024), default=world.IMAGE_SIZE, help="image size in pixels")
    export.add_argument("--seed", type=int, default=0, help="seed of the order and of the renders")
    export.add_argument("--paraphrase", action="store_true", help="vary the caption templates")
    export.add_argument("--overwrite", action="store_true", help="replace a folder's existing metadata.jsonl")
    export.set_defaults(func=cmd_world_export)
    sheet = command(world_sub, "sheet", "a contact sheet: one row per style, one column per content")
    sheet.add_argument("--out", "-o", default="mini_world.png", help="PNG to write")
    sheet.add_argument("--seed", type=int, default=0, help="render seed")
    sheet.add_argument("--tile", type=number(int, 8, 512), default=64, help="pixels per tile in the sheet")
    sheet.set_defaults(func=cmd_world_sheet)

    train = command(sub, "train", "train a model on the mini world (recipes in training.RECIPES)")
    train.add_argument("model", choices=["tokenizer", "clip", "judges", "base"],
                       help="base = the masked transformer (needs the tokenizer and clip checkpoints)")
    train.add_argument("--preset", choices=["tiny", "cpu", "gpu"],
                       help="size of the base generator: tiny (tests), cpu (the bundled one), gpu (default: cpu)")
    train.add_argument("--steps", type=POSITIVE, help="optimiser steps (default: the recipe's)")
    train.add_argument("--batch-size", type=POSITIVE, help="images per step (default: the recipe's)")
    train.add_argument("--lr", type=LR, help="peak learning rate (default: the recipe's)")
    train.add_argument("--bank-size", type=POSITIVE, help="number of pre-rendered training images (default: the recipe's)")
    train.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the batches")
    add_compute_options(train)
    train.add_argument("--out", help="checkpoint to write (default: RUN_DIR/MODEL.safetensors; the bundled "
                                     "data/checkpoints/MODEL.safetensors only with --overwrite)")
    train.add_argument("--overwrite", action="store_true",
                       help="write the bundled data/checkpoints/MODEL.safetensors (says what that makes stale)")
    train.add_argument("--run-dir", help="where the resumable state goes (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's saved state")
    train.add_argument("--workers", type=number(int, 0, 256),
                       help="processes that render the training images (default: one per core, at most 16)")
    train.add_argument("--attention", choices=["auto", "math"],
                       help="SDPA kernel in training: math is faster on CPU for short sequences "
                            "(default: the recipe's; base uses math)")
    train.add_argument("--save-dtype", choices=["fp32", "fp16", "bf16"], default="fp16",
                       help="precision of the saved weights (fp16 halves the bundle)")
    train.set_defaults(func=cmd_train)

    generate = command(sub, "generate", "draw images for one or more prompts (a grid row per prompt)")
    generate.add_argument("prompt", nargs="+", help='one or more prompts, e.g. "a red star in pencil sketch style"')
    generate.add_argument("-n", type=number(int, 1, MAX_IMAGES), default=8, help="images per prompt")
    generate.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    generate.add_argument("--steps", type=number(int, 1, 256), default=SamplerSettings.steps, help="decoding steps")
    generate.add_argument("--guidance", type=number(float, -10, 50), default=SamplerSettings.guidance,
                          help="classifier-free guidance scale (base model only)")
    generate.add_argument("--temperature", type=number(float, 1e-3, 100), default=SamplerSettings.temperature,
                          help="sampling temperature")
    generate.add_argument("--scale", type=number(int, 1, 16), default=2, help="pixel upscaling of the grid")
    generate.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    checkpoints_option(generate)
    generate.add_argument("--out", "-o", default="generated.png", help="PNG (or JPEG, WebP) to write")
    generate.add_argument("--adapter", help="a style adapter from `styledrop-mini style-tune`, .safetensors optional "
                               "(default: none, the base model alone)")
    generate.add_argument("--no-template", action="store_true",
                          help="use the prompts as they are (default: append the adapter's style descriptor)")
    generate.add_argument("--lambda-a", type=lam, default=GUIDANCE[0], help="adapter guidance λ_A (paper Eq. 4)")
    generate.add_argument("--lambda-b", type=lam, default=GUIDANCE[1], help="base guidance λ_B (paper Eq. 4)")
    generate.add_argument("--content-adapter", help="a DreamBooth content adapter (`styledrop-mini dreambooth`) "
                                                     "mixed with --adapter at every decoding step (default: none)")
    generate.add_argument("--gamma", type=number(float, 0, 1), default=0.6,
                          help="mixing weight of the content adapter: 0 = style only, 1 = content only")
    generate.set_defaults(func=cmd_generate)

    tune = command(sub, "style-tune", "learn a style from ONE reference image (StyleDrop adapters)")
    tune.add_argument("reference", help="the style reference image (any size; RGBA, greyscale, 16-bit are fine)")
    tune.add_argument("--style", required=True, help='the style descriptor, e.g. "stained glass" (required)')
    tune.add_argument("--content", help='what the reference shows, e.g. "a yellow house" (default: CLIP proposes)')
    tune.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors is added if missing)")
    tune.add_argument("--template", default=TEMPLATE, help="the caption template")
    tune.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck", help="adapter kind")
    tune.add_argument("--d-prj", type=number(int, 1, 1024), default=AdapterConfig.d_prj,
                      help="bottleneck width (LoRA: rank)")
    tune.add_argument("--shared", action="store_true",
                      help="share the bottleneck matrices across layers, with per-layer bias offsets (paper, round 1)")
    tune.add_argument("--steps", type=number(int, 1, 100_000), default=TUNING["steps"], help="tuning steps")
    tune.add_argument("--batch-size", type=number(int, 1, 4096), default=TUNING["batch_size"],
                      help="copies of the reference per step (each masked differently)")
    tune.add_argument("--lr", type=LR, default=TUNING["lr"], help="peak learning rate")
    tune.add_argument("--seed", type=int, default=0, help="seed of the adapters' initialisation and the masks")
    add_compute_options(tune)
    checkpoints_option(tune)
    tune.set_defaults(func=cmd_style_tune)

    db = command(sub, "dreambooth", "a content adapter for one subject (DreamBooth, prior preservation)")
    db.add_argument("subject", help="folder of 3-5 subject images with metadata.jsonl (e.g. data/subjects/sks_star)")
    db.add_argument("--class", dest="class_noun", help="the subject's class noun (default: from metadata.jsonl)")
    db.add_argument("--identifier", help="the rare identifier (default: from metadata.jsonl, else 'sks')")
    db.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors is added if missing)")
    db.add_argument("--steps", type=number(int, 1, 100_000), default=DREAMBOOTH["steps"], help="tuning steps")
    db.add_argument("--lr", type=LR, default=DREAMBOOTH["lr"], help="peak learning rate")
    db.add_argument("--prior-weight", type=number(float, 0, 100), default=PRIOR["weight"],
                    help="w of the class prior loss (0: none)")
    db.add_argument("--n-class", type=number(int, 1, 100_000), default=PRIOR["n_class"],
                    help="class images drawn once by the base model")
    db.add_argument("--cache", help="where class images are cached (default: class_images/ beside --out)")
    db.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck", help="adapter kind")
    db.add_argument("--d-prj", type=number(int, 1, 1024), default=DREAMBOOTH["d_prj"], help="adapter width (LoRA: rank)")
    db.add_argument("--seed", type=int, default=0, help="seed of the class images, initialisation and masks")
    add_compute_options(db)
    checkpoints_option(db)
    db.set_defaults(func=cmd_dreambooth)

    fb = command(sub, "feedback", "StyleDrop round 2: pool, select (CLIP, random or you), train")
    fb_sub = fb.add_subparsers(dest="step", required=True, metavar="STEP")
    pool = command(fb_sub, "pool", "draw the pool with a round-1 adapter into a run folder")
    pool.add_argument("adapter", help="the round-1 adapter file (from style-tune; .safetensors optional)")
    pool.add_argument("--out", "-o", required=True, help="the run folder to write (a new one)")
    pool.add_argument("--overwrite", action="store_true",
                      help="replace the run already in --out, with its selections and round-2 adapters")
    pool.add_argument("--reference", help="the style reference image (default: the one the adapter records)")
    pool.add_argument("--per-prompt", "-m", type=number(int, 1, 1024), default=FeedbackSettings.per_prompt,
                      help="images per prompt")
    pool.add_argument("--prompts", "-p", type=number(int, 1, len(POOL_CONTENTS)), default=FeedbackSettings.n_prompts,
                      help="number of prompts")
    pool.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    pool.add_argument("--lambda-a", type=lam, default=GUIDANCE[0], help="adapter guidance λ_A of the pool")
    pool.add_argument("--lambda-b", type=lam, default=GUIDANCE[1], help="base guidance λ_B of the pool")
    pool.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    checkpoints_option(pool)
    pool.set_defaults(func=cmd_feedback_pool)
    select = command(fb_sub, "select", "save a selection of the pool (ids or file names, or a rule)")
    select.add_argument("run", help="the run folder")
    select.add_argument("--ids", nargs="*", help="pool ids or file names, e.g. 3 17 0042.png (default: none; give --ids or --rule)")
    select.add_argument("--rule", choices=["clip", "random"], help="CLIP feedback, or the random control (default: none; give --ids or --rule)")
    select.add_argument("--min-style", type=number(float, -1, 1),
                        help="CLIP rule: only images with at least this style score (default: no floor)")
    select.add_argument("--name", help="selection name (default: the rule, or 'human' for --ids)")
    select.add_argument("--seed", type=int, default=0, help="seed of the random rule")
    select.set_defaults(func=cmd_feedback_select)
    train2 = command(fb_sub, "train", "train a fresh round-2 adapter on a selection")
    train2.add_argument("run", help="the run folder")
    train2.add_argument("--selection", default="human", help="the selection's name")
    train2.add_argument("--steps", type=number(int, 1, 100_000), default=FeedbackSettings.steps, help="tuning steps")
    train2.add_argument("--d-prj", type=number(int, 1, 1024), default=FeedbackSettings.d_prj,
                        help="bottleneck width of the round-2 adapter")
    train2.add_argument("--no-reference", action="store_true", help="train on the selection only")
    train2.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the masks")
    add_compute_options(train2)
    checkpoints_option(train2)
    train2.set_defaults(func=cmd_feedback_train)

    evaluate = command(sub, "evaluate", "measure the bundled models on fresh test renders")
    evaluate.add_argument("models", nargs="*", default=["tokenizer", "judges", "clip"],
                          help="any of tokenizer, judges, clip, base, style-prior (diagnostics.py: can the base "
                               "learn each held-out style, from true renders and from one image?)")
    evaluate.add_argument("-n", type=POSITIVE, default=1000, help="number of fresh test renders")
    evaluate.add_argument("--seed", type=int, default=1, help="seed of the test renders")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    checkpoints_option(evaluate)
    evaluate.add_argument("--workers", type=number(int, 0, 256),
                          help="processes that render the test images (default: one per core, at most 16)")
    evaluate.add_argument("--prompts", type=POSITIVE, default=400,
                          help="prompts per style group for 'base' (and per test of the base for 'style-prior')")
    evaluate.add_argument("--steps", type=number(int, 1, 256), default=12, help="decoding steps for 'base'")
    evaluate.add_argument("--guidance", type=number(float, -10, 50), default=SamplerSettings.guidance,
                          help="guidance scale for 'base'")
    evaluate.add_argument("--temperature", type=number(float, 1e-3, 100), default=SamplerSettings.temperature,
                          help="sampling temperature for 'base'")
    evaluate.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES) + [world.HARD_STYLE],
                          help="held-out styles for 'style-prior'")
    evaluate.add_argument("--png", nargs=2, action="append", metavar=("FILE", "DESCRIPTOR"), default=[],
                          help="for 'style-prior': a picture drawn outside the world and words for its style; "
                               "reports the style similarity of new images to it before and after tuning on it "
                               "(repeatable)")
    evaluate.add_argument("--seeds", type=number(int, 1, 64), default=4,
                          help="images per test content for 'style-prior'")
    evaluate.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                          help="adapter tuning in 'style-prior' (auto: bf16 only where native)")
    evaluate.add_argument("--json", help="also write the report to this file (default: print only)")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    tqdm.write(f"styledrop-mini: warning: {message}", file=sys.stderr)  # on its own line, above any progress bar


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # warnings as one line each, not file:line plus source
        warnings.showwarning = _warning_line
        try:
            return args.func(args)
        except KeyboardInterrupt as exc:  # training.TrainingInterrupted says where it stopped and what it saved
            print(f"styledrop-mini: {exc or 'interrupted; nothing was written'}", file=sys.stderr)
            return 130
        except (ValueError, OSError) as exc:  # bad options and files: ImageLoadError, CheckpointError, ...
            if os.environ.get("STYLEDROP_MINI_DEBUG"):
                raise
            print(f"styledrop-mini: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
