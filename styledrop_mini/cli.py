"""The `styledrop-mini` command line (also `python -m styledrop_mini`).

It parses, checks and prints; each command calls one library function. Every option is checked while
parsing, and every input file by the library before a model is trained or an image drawn. An
expected failure (a bad option, a missing or broken file) is one line on stderr and exit status 2;
Ctrl-C is one line and status 130 (training saves its state for --resume first). Only a real bug
shows a traceback (STYLEDROP_MINI_DEBUG=1 shows them all).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from . import (__version__, adapters, assignments, demo, dreambooth, evaluation, feedback, instantstyle, metrics,
               paper_table, prompts, recipes, styleclip, world)
from .datasets import MiniWorld, StyleReference, export_image_folder
from .devices import describe, pick_device
from .files import check_output, save_or_rescue
from .images import load_image, pil_to_tensor, prompt_grid, tensor_to_pil
from .pipeline import MusePipeline, check_prompts
from .sampling import LAMBDA_RANGE, AdapterGuidance, SamplerSettings

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
STEPS = number(int, 1, 100_000)
WIDTH = number(int, 1, 1024)
LR = number(float, 1e-8, 1.0)
LAMBDA = number(float, *LAMBDA_RANGE)
WORKERS = number(int, 0, 256)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag) or the help says it."""

    def _get_help_string(self, action):
        if any(action.default is v for v in (None, False, argparse.SUPPRESS)) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def command_line() -> str:
    """How this run was started, for the files it writes."""
    return "styledrop-mini " + " ".join(sys.argv[1:])


def adapter_guidance(args) -> AdapterGuidance:
    return AdapterGuidance(args.lambda_a, args.lambda_b)


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def cmd_world_sheet(args) -> int:
    out, start = check_output(args.out, "image"), time.perf_counter()
    sheet = world.contact_sheet(seed=args.seed, tile=args.tile)
    save_or_rescue(sheet.save, out, "contact sheet")
    print(world.summary())
    print(f"wrote contact sheet {out.resolve()} ({sheet.width}x{sheet.height} px) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_world_export(args) -> int:
    data = MiniWorld(n=args.n, split=args.split, styles=args.styles, size=args.size, seed=args.seed,
                     paraphrase=args.paraphrase)
    folder = export_image_folder(data, args.folder, overwrite=args.overwrite)
    print(f"wrote {len(data)} images and {folder / 'metadata.jsonl'}")
    return 0


def cmd_demo(args) -> int:
    """The main job: learn each held-out style from its one bundled reference image, then draw new content."""
    out = check_output(args.out, "image")
    result = demo.run(args.styles, args.n, args.steps, args.seed, args.device, args.precision)
    print("scores (judges know the truth; CLIP gives StyleDrop's text and style scores)")
    print(f"    {'':28s} {'style right':>11s} {'content right':>13s} {'CLIP style':>10s} {'CLIP text':>9s}")
    for style, runs in result.scores.items():
        for name, r in runs.items():
            print(f"    {style + ', ' + name:28s} {r['judge_style']:11.0%} {r['judge_content']:13.0%} "
                  f"{r['clip_style']:10.3f} {r['clip_text']:9.3f}")
    print(f"    adapters: {result.adapter_parameters:,} parameters per style "
          f"({100 * result.adapter_parameters / result.base_parameters:.2f} % of the base model's)")
    out = save_or_rescue(result.grid.save, out, "demo grid")
    print(f"wrote {out.resolve()} in {result.seconds:.0f} s in all")
    return 0


def cmd_train(args) -> int:
    recipes.train(args.model, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  bank_size=args.bank_size, seed=args.seed, device=args.device,
                  run_dir=args.run_dir or Path("runs") / args.model, resume=args.resume, workers=args.workers,
                  command=command_line(), save_dtype=args.save_dtype, precision=args.precision,
                  attention=args.attention, overwrite=args.overwrite, preset=args.preset,
                  text_words=args.text_words, init_from=args.init_from)
    return 0


def cmd_evaluate(args) -> int:
    evaluation.check_request(args.models, args.styles, args.png, args.resume, args.work_dir)
    json_out = check_output(args.json, "file", "--json") if args.json else None
    settings = SamplerSettings(steps=args.steps, guidance_scale=args.guidance_scale, temperature=args.temperature)
    table = paper_table.settings_for(args.quick, args.tuning_seeds, args.seeds)
    report = evaluation.evaluate(args.models, args.checkpoints, args.device, n=args.n, seed=args.seed,
                                 workers=args.workers, prompts=args.prompts, settings=settings, styles=args.styles,
                                 seeds=args.seeds, precision=args.precision, png=args.png, table_settings=table,
                                 table_dir=args.table_dir, table_workdir=args.work_dir, resume=args.resume)
    text = json.dumps({"command": command_line(), **report}, indent=2)  # a results file says what made it
    print(text)
    if json_out:
        save_or_rescue(lambda path: path.write_text(text), json_out, "report")
    return 0


def cmd_style_tune(args) -> int:
    out = check_output(args.out, "checkpoint")
    reference = StyleReference.from_file(args.reference, prompts.descriptor_of(args.style), args.content or "",
                                         args.template, style=args.style)
    config = adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj, shared=args.shared).check()
    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    print(f"tuning on {describe(device, args.precision)}")
    model, info = adapters.tune_style(pipe, reference, config, steps=args.steps, batch_size=args.batch_size,
                                      lr=args.lr, seed=args.seed, device=device, precision=args.precision)
    info.tuning["command"] = command_line()
    out = save_or_rescue(lambda path: adapters.save_adapter(model, path, info), out, "tuned adapter")
    n_adapter, n_base = adapters.count(model)
    print(f"tuned {n_adapter:,} adapter parameters ({100 * n_adapter / n_base:.2f} % of the base model's "
          f"{n_base:,}) on {info.caption!r} in {info.tuning['train_seconds']:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_feedback_pool(args) -> int:
    """Round 2, step 1: draw the pool with a round-1 adapter, scored by the mini CLIP."""
    settings = feedback.FeedbackSettings(per_prompt=args.per_prompt, n_prompts=args.prompts, seed=args.seed,
                                         guidance=adapter_guidance(args)).check()
    adapters.read_info(args.adapter)  # a broken adapter is named before the models load
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    run = feedback.pool_from_adapter(pipe, args.adapter, args.out, settings, args.reference, args.overwrite)
    print(f"wrote a pool of {len(run.pool)} images ({settings.n_prompts} prompts x {settings.per_prompt}) "
          f"to {run.folder.resolve()}")
    return 0


def cmd_feedback_select(args) -> int:
    if (args.ids is None) == (args.rule is None):
        raise ValueError("give either --ids (ids or pool file names) or --rule clip|random")
    run = feedback.Run.open(args.run)
    rules = {"clip": lambda: feedback.select_clip(run.pool, args.min_style),
             "random": lambda: feedback.select_random(run.pool, args.seed), None: lambda: args.ids}
    name = args.name or args.rule or "human"
    chosen = run.select(name, rules[args.rule](), rule=args.rule or "ids")
    print(f"selection {name!r}: {len(chosen)} images {chosen}; saved in {run.selection_path(name)}")
    return 0


def cmd_feedback_train(args) -> int:
    run = feedback.Run.open(args.run)
    settings = run.settings(steps=args.steps, d_prj=args.d_prj, include_reference=not args.no_reference)
    device = pick_device(args.device)
    print(f"tuning on {describe(device, args.precision)}")
    _, path = feedback.train_round(MusePipeline.load(args.checkpoints, device), run, args.selection, settings=settings,
                                   seed=args.seed, device=device, precision=args.precision)
    print(f"round 2 on selection {args.selection!r}: wrote {path.resolve()}")
    return 0


def cmd_dreambooth(args) -> int:
    """A DreamBooth content adapter from a folder of subject images (with prior preservation)."""
    out = check_output(args.out, "checkpoint")
    dreambooth.renamed(dreambooth.load_subject(args.subject)[1], args.identifier, args.class_noun)  # fails now
    config = adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj).check()
    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    print(f"tuning on {describe(device, args.precision)}")
    model, info = dreambooth.tune_subject_folder(
        pipe, args.subject, args.identifier, args.class_noun, config, steps=args.steps, lr=args.lr,
        prior_weight=args.prior_weight, n_class=args.n_class, cache_dir=args.cache or out.parent / "class_images",
        seed=args.seed, device=device, precision=args.precision)
    info.tuning["command"] = command_line()
    out = save_or_rescue(lambda path: adapters.save_adapter(model, path, info), out, "content adapter")
    print(f"tuned a content adapter on {info.tuning['images']} images of {info.caption!r} (prior weight "
          f"{args.prior_weight}) in {info.tuning['train_seconds']:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_generate(args) -> int:
    if args.style_image:
        return _generate_from_style_image(args)
    if args.guidance_scale is not None and args.adapter:
        raise ValueError("--guidance-scale is the base model's classifier-free scale; with --adapter, "
                         "--lambda-a and --lambda-b guide the sampling (paper Eq. 4)")
    settings = SamplerSettings(steps=args.steps, temperature=args.temperature,
                               guidance_scale=args.guidance_scale or SamplerSettings.guidance_scale).check()
    if args.content_adapter and not args.adapter:
        raise ValueError("--content-adapter mixes with a style adapter: give --adapter too")
    prompt_list = check_prompts(args.prompt)
    for file in (args.adapter, args.content_adapter):
        if file:
            adapters.read_info(file)  # a broken or diverged adapter is named now, not after loading the models
    out = check_output(args.out, "image")
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    start = time.perf_counter()
    images, drawn = pipe.draw(prompt_list, args.n, args.seed, settings, args.adapter, args.content_adapter,
                              adapter_guidance(args), args.gamma, use_template=not args.no_template)
    out = save_or_rescue(prompt_grid(images, drawn, tile=64 * args.scale).save, out, "grid")
    print(f"wrote {len(images)} image{'s' * (len(images) > 1)} ({len(drawn)} prompt{'s' * (len(drawn) > 1)} x "
          f"{args.n}) to {out.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def _generate_from_style_image(args) -> int:
    """`generate --style-image`: InstantStyle, the style read from a picture with no tuning."""
    if args.adapter or args.content_adapter:
        raise ValueError("--style-image draws with no tuned adapter: leave out --adapter and --content-adapter")
    settings = instantstyle.InstantStyleSettings(
        scale=args.image_scale, subtract=args.subtract, blocks=instantstyle.parse_blocks(args.style_blocks),
        guidance_scale=args.guidance_scale or instantstyle.InstantStyleSettings.guidance_scale).check()
    prompt_list = check_prompts(args.prompt)
    adapter_file = args.image_adapter or instantstyle.DEFAULT_FILE
    instantstyle.check_request(settings, adapter_file)
    reference = pil_to_tensor(load_image(args.style_image, 64))
    out = check_output(args.out, "image")
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    start = time.perf_counter()
    images, drawn = instantstyle.draw(pipe, prompt_list, reference, args.n, args.seed, settings,
                                      args.image_content or "", adapter_file)
    out = save_or_rescue(prompt_grid(images, drawn, tile=64 * args.scale).save, out, "grid")
    print(f"wrote {len(images)} image{'s' * (len(images) > 1)} in the style of {args.style_image} (no tuning; "
          f"image scale {settings.scale}, content subtracted x{settings.subtract}, blocks "
          f"{args.style_blocks or 'all'}) to {out.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_edit(args) -> int:
    styleclip.parse_edit(args.edit)  # a misread edit or method is named before any model loads
    styleclip.check_method(args.method)
    image = pil_to_tensor(load_image(args.image, 64))
    out = check_output(args.out, "image")
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    start = time.perf_counter()
    edited, info = styleclip.edit_image(pipe, image, args.edit, args.method, args.seed, progress=True)
    picture = tensor_to_pil(edited)
    picture = picture.resize((picture.width * args.scale, picture.height * args.scale), Image.NEAREST)
    out = save_or_rescue(picture.save, out, "edited image")
    print(f"CLIP reads {args.image} as \"{info['source']}\"; edited ({args.method}) towards \"{info['target']}\": "
          f"wrote {out.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_assignments_build(args) -> int:
    made = assignments.build(args.notebooks, args.out, overwrite=args.overwrite)
    print(f"{'student notebook':40s} {'checked':>7s} {'open':>5s}")
    for path, checked, open_ in made:
        print(f"{str(path):40s} {checked:7d} {open_:5d}")
    print(f"wrote {len(made)} student notebooks to {Path(args.out).resolve()}: each solution replaced by "
          "`raise NotImplementedError()`, its outputs and its check's outputs cleared; nbgrader metadata kept")
    return 0


# ----------------------------------------------------------------------------------------------
# The parser: options shared by several commands come from parent parsers
# ----------------------------------------------------------------------------------------------
def _parent(*options) -> argparse.ArgumentParser:
    """A parent parser with `options`: (flags tuple, add_argument keywords) pairs."""
    parent = argparse.ArgumentParser(add_help=False)
    for flags, kwargs in options:
        parent.add_argument(*flags, **kwargs)
    return parent


DEVICE = (("--device",), dict(default="cpu", help="cpu, cuda or auto (cuda when there is one)"))
PRECISION = (("--precision",), dict(choices=["auto", "bf16", "fp32"], default="auto",
                                    help="autocast in training and tuning: auto = bf16 on a GPU or a CPU with native "
                                         "bf16 (AVX-512 BF16, AMX), fp32 elsewhere (emulated bf16 is ~30x slower)"))
CHECKPOINTS = (("--checkpoints",), dict(help="folder with the checkpoints (default: the bundled data/checkpoints)"))
LAMBDAS = ((("--lambda-a",), dict(type=LAMBDA, default=AdapterGuidance.lambda_a, help="adapter guidance λ_A (Eq. 4)")),
           (("--lambda-b",), dict(type=LAMBDA, default=AdapterGuidance.lambda_b, help="base guidance λ_B (Eq. 4)")))


def seed(help_text: str, default: int = 0):
    return (("--seed",), dict(type=int, default=default, help=help_text))


def _add_world(sub, command) -> None:
    world_sub = command(sub, "world", "the mini world data set").add_subparsers(dest="world_command", required=True,
                                                                                metavar="COMMAND")
    export = command(world_sub, "export", "render images into a folder with metadata.jsonl",
                     seed("seed of the order and of the renders"))
    export.add_argument("folder", help="folder to write (PNGs and metadata.jsonl)")
    export.add_argument("-n", type=number(int, 1, 10_000_000), default=100, help="number of images")
    export.add_argument("--split", choices=["train", "test"], default="train", help="train: even seeds, test: odd")
    export.add_argument("--styles", default="seen", help="'seen', 'held_out', 'all' or one style name")
    export.add_argument("--size", type=number(int, 16, 1024), default=world.IMAGE_SIZE, help="image size in pixels")
    export.add_argument("--paraphrase", action="store_true", help="vary the caption templates")
    export.add_argument("--overwrite", action="store_true", help="replace a folder's existing metadata.jsonl")
    export.set_defaults(func=cmd_world_export)
    sheet = command(world_sub, "sheet", "a contact sheet: one row per style, one column per content", seed("render seed"))
    sheet.add_argument("--out", "-o", default="mini_world.png", help="PNG to write")
    sheet.add_argument("--tile", type=number(int, 8, 512), default=64, help="pixels per tile in the sheet")
    sheet.set_defaults(func=cmd_world_sheet)


def _add_demo(sub, command) -> None:
    demo_cmd = command(sub, "demo", "the main job: learn each held-out style from one image, draw new content",
                       seed("seed of the tuning and of the images"), DEVICE, PRECISION)
    demo_cmd.add_argument("--styles", "--style", nargs="+", default=list(world.HELD_OUT_STYLES), metavar="STYLE",
                          help="styles with a bundled reference (data/styles/)")
    demo_cmd.add_argument("--out", "-o", default="styledrop_mini_demo.png", help="PNG to write")
    demo_cmd.add_argument("-n", type=number(int, 1, len(metrics.STYLE_EVAL_CONTENTS)),
                          default=demo.DEMO_CONTENTS, help="new contents to draw per style")
    demo_cmd.add_argument("--steps", type=STEPS, default=demo.DEMO_STEPS,
                          help=f"style-tuning steps, few for speed (round 1 as measured: {adapters.TUNING.steps}, adapters.TUNING)")
    demo_cmd.set_defaults(func=cmd_demo)


def _add_train(sub, command) -> None:
    train = command(sub, "train", "train a model on the mini world (recipes in recipes.RECIPES)",
                    seed("seed of the data, the initialisation and the batches"), DEVICE, PRECISION)
    train.add_argument("model", choices=list(recipes.RECIPES),
                       help="base = the masked transformer (needs the tokenizer and clip checkpoints)")
    train.add_argument("--preset", choices=list(recipes.BASE_PRESETS),
                       help="size of the base generator: tiny (tests), cpu (the bundled one), gpu (default: cpu)")
    train.add_argument("--steps", type=POSITIVE, help="optimiser steps (default: the recipe's)")
    train.add_argument("--batch-size", type=POSITIVE, help="images per step (default: the recipe's)")
    train.add_argument("--lr", type=LR, help="peak learning rate (default: the recipe's)")
    train.add_argument("--bank-size", type=POSITIVE, help="number of pre-rendered training images (default: the recipe's)")
    train.add_argument("--out", help="checkpoint to write (default: RUN_DIR/MODEL.safetensors; the bundled "
                                     "data/checkpoints/MODEL.safetensors only with --overwrite)")
    train.add_argument("--overwrite", action="store_true",
                       help="write the bundled data/checkpoints/MODEL.safetensors (says what that makes stale)")
    train.add_argument("--run-dir", help="where the resumable state goes (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's saved state")
    train.add_argument("--workers", type=WORKERS,
                       help="processes that render the training images (default: one per core, at most 16)")
    train.add_argument("--attention", choices=["auto", "math"],
                       help="SDPA kernel in training: math is faster on CPU for short sequences "
                            "(default: the recipe's; base uses math)")
    train.add_argument("--text-words", action="store_true",
                       help="base: read each prompt word's own embedding beside the text tower's features")
    train.add_argument("--init-from", metavar="FILE",
                       help="base: start from this generator's weights (same preset), e.g. to train the bundled one "
                            "longer (default: a fresh initialisation)")
    train.add_argument("--save-dtype", choices=["fp32", "fp16", "bf16"], default="fp16",
                       help="precision of the saved weights (fp16 halves the bundle)")
    train.set_defaults(func=cmd_train)


def _add_generate(sub, command) -> None:
    generate = command(sub, "generate", "draw images for one or more prompts (a grid row per prompt)",
                       seed("image i uses seed + i"), DEVICE, CHECKPOINTS, *LAMBDAS)
    generate.add_argument("prompt", nargs="+", help='one or more prompts, e.g. "a red star in pencil sketch style"')
    generate.add_argument("-n", type=number(int, 1, MAX_IMAGES), default=8, help="images per prompt")
    generate.add_argument("--steps", type=number(int, 1, 256), default=SamplerSettings.steps, help="decoding steps")
    generate.add_argument("--guidance-scale", type=number(float, -10, 50),
                          help=f"classifier-free guidance scale of the base model alone (default: "
                               f"{SamplerSettings.guidance_scale}; with --adapter use --lambda-a/--lambda-b)")
    generate.add_argument("--temperature", type=number(float, 1e-3, 100), default=SamplerSettings.temperature,
                          help="sampling temperature")
    generate.add_argument("--scale", type=number(int, 1, 16), default=2, help="pixel upscaling of the grid")
    generate.add_argument("--out", "-o", default="generated.png", help="PNG (or JPEG, WebP) to write")
    generate.add_argument("--adapter", help="a style adapter from `styledrop-mini style-tune`, .safetensors optional "
                               "(default: none, the base model alone)")
    generate.add_argument("--no-template", action="store_true",
                          help="use the prompts as they are (default: add the adapter's style descriptor)")
    generate.add_argument("--content-adapter", help="a DreamBooth content adapter (`styledrop-mini dreambooth`) "
                                                     "mixed with --adapter at every decoding step (default: none)")
    generate.add_argument("--gamma", type=number(float, 0, 1), default=0.6,
                          help="mixing weight of the content adapter: 0 = style only, 1 = content only")
    style = generate.add_argument_group("tuning-free style from a picture (InstantStyle, chapter 11)")
    style.add_argument("--style-image", metavar="PNG",
                       help="draw in the style of this picture, with no tuning (default: none, the prompts alone)")
    style.add_argument("--image-content", metavar="TEXT",
                       help='what the style image shows, e.g. "a yellow house", subtracted from its embedding '
                            "(default: the mini CLIP proposes it)")
    style.add_argument("--subtract", type=number(float, 0, 10), default=instantstyle.InstantStyleSettings.subtract,
                       help="weight of the content subtraction (0: IP-Adapter alone)")
    style.add_argument("--image-scale", type=number(float, 0, 10), default=instantstyle.InstantStyleSettings.scale,
                       help="strength of the image branch (IP-Adapter's scale)")
    style.add_argument("--style-blocks", metavar="I,J",
                       help="inject the picture only in these generator blocks, counted from 0 (default: "
                            f"{instantstyle.describe_blocks(instantstyle.InstantStyleSettings.blocks)})")
    style.add_argument("--image-adapter", metavar="FILE",
                       help="the image-prompt adapter (default: the bundled one, `train image_prompt` makes it)")
    generate.set_defaults(func=cmd_generate)


def _add_edit(sub, command) -> None:
    edit = command(sub, "edit", "edit an image with words: \"make it red\", \"make it a circle\", \"make it pixel art\" "
                   "(StyleCLIP and the MaskGIT re-mask edit, chapter 10)",
                   seed("seed of the re-decoding (and of the renders a mapper or global directions learn from)"),
                   DEVICE, CHECKPOINTS)
    edit.add_argument("image", help="the image to edit (any size; it is read at 64 x 64)")
    edit.add_argument("edit", help='what to change: "make it <colour>", "make it a <content>" or "make it <style>"')
    edit.add_argument("--method", choices=styleclip.METHODS, default="remask",
                      help="remask: re-mask the tokens the edit concerns and re-decode them (the one that works "
                           "here); latent: StyleCLIP's latent optimisation; mapper: StyleCLIP's mapper, trained "
                           "for this edit first (~15 s); global: StyleCLIP's global directions")
    edit.add_argument("--scale", type=number(int, 1, 16), default=1, help="pixel upscaling of the written image")
    edit.add_argument("--out", "-o", default="edited.png", help="PNG (or JPEG, WebP) to write")
    edit.set_defaults(func=cmd_edit)


def _add_style_tune(sub, command) -> None:
    tune = command(sub, "style-tune", "learn a style from ONE reference image (StyleDrop adapters)",
                   seed("seed of the adapters' initialisation and the masks"), DEVICE, PRECISION, CHECKPOINTS)
    tune.add_argument("reference", help="the style reference image (any size; RGBA, greyscale, 16-bit are fine)")
    tune.add_argument("--style", required=True, help='the style descriptor, e.g. "stained glass" (required)')
    tune.add_argument("--content", help='what the reference shows, e.g. "a yellow house" (default: CLIP proposes)')
    tune.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors is added if missing)")
    tune.add_argument("--template", default=prompts.TEMPLATE, help="the caption template")
    tune.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck", help="adapter kind")
    tune.add_argument("--d-prj", type=WIDTH, default=adapters.AdapterConfig.d_prj, help="bottleneck width (LoRA: rank)")
    tune.add_argument("--shared", action="store_true",
                      help="share the bottleneck matrices across layers, with per-layer bias offsets (paper, round 1)")
    tune.add_argument("--steps", type=STEPS, default=adapters.TUNING.steps, help="tuning steps")
    tune.add_argument("--batch-size", type=number(int, 1, 4096), default=adapters.TUNING.batch_size,
                      help="copies of the reference per step (each masked differently)")
    tune.add_argument("--lr", type=LR, default=adapters.TUNING.lr, help="peak learning rate")
    tune.set_defaults(func=cmd_style_tune)


def _add_dreambooth(sub, command) -> None:
    db = command(sub, "dreambooth", "a content adapter for one subject (DreamBooth, prior preservation)",
                 seed("seed of the class images, initialisation and masks"), DEVICE, PRECISION, CHECKPOINTS)
    db.add_argument("subject", help="folder of 3-5 subject images with metadata.jsonl (e.g. data/subjects/sks_star)")
    db.add_argument("--class", dest="class_noun", help="the subject's class noun (default: from metadata.jsonl)")
    db.add_argument("--identifier", help="the rare identifier (default: from metadata.jsonl, else 'sks')")
    db.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors is added if missing)")
    db.add_argument("--steps", type=STEPS, default=dreambooth.TUNING.steps, help="tuning steps")
    db.add_argument("--lr", type=LR, default=dreambooth.TUNING.lr, help="peak learning rate")
    db.add_argument("--prior-weight", type=number(float, 0, 100), default=dreambooth.PRIOR.weight,
                    help="w of the class prior loss (0: none)")
    db.add_argument("--n-class", type=number(int, 1, 100_000), default=dreambooth.PRIOR.n_class,
                    help="class images drawn once by the base model")
    db.add_argument("--cache", help="where class images are cached (default: class_images/ beside --out)")
    db.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck", help="adapter kind")
    db.add_argument("--d-prj", type=WIDTH, default=dreambooth.TUNING.d_prj, help="adapter width (LoRA: rank)")
    db.set_defaults(func=cmd_dreambooth)


def _add_feedback(sub, command) -> None:
    steps = command(sub, "feedback", "StyleDrop round 2: pool, select (CLIP, random or you), train")
    steps = steps.add_subparsers(dest="step", required=True, metavar="STEP")
    pool = command(steps, "pool", "draw the pool with a round-1 adapter into a run folder",
                   seed("image i uses seed + i"), DEVICE, CHECKPOINTS, *LAMBDAS)
    pool.add_argument("adapter", help="the round-1 adapter file (from style-tune; .safetensors optional)")
    pool.add_argument("--out", "-o", required=True, help="the run folder to write (a new one)")
    pool.add_argument("--overwrite", action="store_true",
                      help="replace the run already in --out, with its selections and round-2 adapters")
    pool.add_argument("--reference", help="the style reference image (default: the one the adapter records)")
    pool.add_argument("--per-prompt", "-m", type=number(int, 1, 1024), default=feedback.FeedbackSettings.per_prompt,
                      help="images per prompt")
    pool.add_argument("--prompts", "-p", type=number(int, 1, len(feedback.POOL_CONTENTS)),
                      default=feedback.FeedbackSettings.n_prompts, help="number of prompts")
    pool.set_defaults(func=cmd_feedback_pool)
    select = command(steps, "select", "save a selection of the pool (ids or file names, or a rule)",
                     seed("seed of the random rule"))
    select.add_argument("run", help="the run folder")
    select.add_argument("--ids", nargs="*", help="pool ids or file names, e.g. 3 17 0042.png (default: none; give --ids or --rule)")
    select.add_argument("--rule", choices=["clip", "random"], help="CLIP feedback, or the random control (default: none; give --ids or --rule)")
    select.add_argument("--min-style", type=number(float, -1, 1),
                        help="CLIP rule: only images with at least this style score (default: no floor)")
    select.add_argument("--name", help="selection name (default: the rule, or 'human' for --ids)")
    select.set_defaults(func=cmd_feedback_select)
    train2 = command(steps, "train", "train a fresh round-2 adapter on a selection",
                     seed("seed of the initialisation and the masks"), DEVICE, PRECISION, CHECKPOINTS)
    train2.add_argument("run", help="the run folder")
    train2.add_argument("--selection", default="human", help="the selection's name")
    train2.add_argument("--steps", type=STEPS, default=feedback.FeedbackSettings.steps, help="tuning steps")
    train2.add_argument("--d-prj", type=WIDTH, default=feedback.FeedbackSettings.d_prj,
                        help="bottleneck width of the round-2 adapter")
    train2.add_argument("--no-reference", action="store_true", help="train on the selection only")
    train2.set_defaults(func=cmd_feedback_train)


def _add_evaluate(sub, command) -> None:
    evaluate = command(sub, "evaluate", "measure the bundled models on fresh test renders",
                       seed("seed of the test renders", default=1), DEVICE, PRECISION, CHECKPOINTS)
    evaluate.add_argument("models", nargs="*", default=["tokenizer", "judges", "clip"],
                          help="any of tokenizer, judges, clip, base, style-prior (diagnostics.py: can the base "
                               "learn each held-out style, from true renders and from one image?), table (the "
                               "paper's Table 2: every method on every reference, paper_table.py)")
    evaluate.add_argument("-n", type=POSITIVE, default=1000, help="number of fresh test renders")
    evaluate.add_argument("--workers", type=WORKERS,
                          help="processes that render the test images (default: one per core, at most 16)")
    evaluate.add_argument("--prompts", type=POSITIVE, default=400,
                          help="prompts per style group for 'base' (and per test of the base for 'style-prior')")
    evaluate.add_argument("--steps", type=number(int, 1, 256), default=SamplerSettings.steps,
                          help="decoding steps for 'base'")
    evaluate.add_argument("--guidance-scale", type=number(float, -10, 50), default=SamplerSettings.guidance_scale,
                          help="classifier-free guidance scale for 'base'")
    evaluate.add_argument("--temperature", type=number(float, 1e-3, 100), default=SamplerSettings.temperature,
                          help="sampling temperature for 'base'")
    evaluate.add_argument("--styles", nargs="+", default=list(evaluation.HELD_OUT),
                          help="held-out styles for 'style-prior' and 'table'")
    evaluate.add_argument("--png", nargs=2, action="append", metavar=("FILE", "DESCRIPTOR"), default=[],
                          help="for 'style-prior': a picture drawn outside the world and words for its style; "
                               "reports the style similarity of new images to it before and after tuning on it "
                               "(repeatable)")
    evaluate.add_argument("--seeds", type=number(int, 1, 64),
                          help="images per test content for 'style-prior' and 'table' (default: 4; 2 with --quick)")
    evaluate.add_argument("--tuning-seeds", type=number(int, 1, 16), default=None,
                          help="tuning seeds per method for 'table' (default: 3, or 1 with --quick)")
    evaluate.add_argument("--quick", action="store_true",
                          help="'table' with few contents, images and steps (paper_table.QUICK_TABLE): a dry run")
    evaluate.add_argument("--table-dir", help="for 'table': write its CSV, markdown and pictures here, e.g. "
                                              "benchmarks/results (default: none, the table is printed)")
    evaluate.add_argument("--work-dir", help="for 'table': keep each finished row here (the full table is hours on "
                                             "2 CPU cores), e.g. /tmp/table_run (default: a temporary folder)")
    evaluate.add_argument("--resume", action="store_true",
                          help="for 'table': continue the run kept in --work-dir, reading its finished rows back")
    evaluate.add_argument("--json", help="also write the report to this file (default: print only)")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_assignments(sub, command) -> None:
    group = command(sub, "assignments", "student copies of the notebooks, for a class").add_subparsers(
        dest="assignments_command", required=True, metavar="COMMAND")
    build = command(group, "build", "write a student copy of every numbered notebook: solutions become stubs")
    build.add_argument("--notebooks", default="tutorials", help="folder of the solution notebooks (NN_topic.ipynb)")
    build.add_argument("--out", "-o", default="tutorials_student",
                       help="folder to write; beside the tutorials keeps their ../benchmarks paths working")
    build.add_argument("--overwrite", action="store_true", help="replace student copies already there")
    build.set_defaults(func=cmd_assignments_build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="styledrop-mini", formatter_class=HelpFormatter,
                                     description="StyleDrop rebuilt end to end in a procedural mini world.")
    parser.add_argument("--version", action="version", version=f"styledrop-mini {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name, help_text, *options):
        return parent.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter,
                                 parents=[_parent(*options)] if options else [])

    for add in (_add_demo, _add_world, _add_train, _add_generate, _add_edit, _add_style_tune, _add_dreambooth, _add_feedback,
                _add_evaluate, _add_assignments):
        add(sub, command)
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
