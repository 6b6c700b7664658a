"""The `styledrop-mini` command line."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import world


def cmd_world_sheet(args) -> int:
    start = time.perf_counter()
    sheet = world.contact_sheet(seed=args.seed, tile=args.tile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"the mini world: {len(world.CONTENTS)} contents, {len(world.COLOURS)} colours, "
          f"{len(world.STYLES)} styles (held out: {', '.join(world.HELD_OUT_STYLES)})")
    print(f"wrote contact sheet {out.resolve()} ({sheet.width}x{sheet.height} px) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_demo(args) -> int:
    """The main job: learn a held-out style from its one bundled reference image, then draw new content."""
    from . import adapters, metrics, prompts
    from .clip import MiniClip
    from .datasets import style_references
    from .images import image_grid, tensor_to_pil
    from .judges import Judges
    from .pipeline import MusePipeline

    start = time.perf_counter()
    refs = style_references()
    if args.style not in refs:
        raise ValueError(f"no bundled reference for style {args.style!r}; choose from {', '.join(refs)}")
    ref = refs[args.style]
    pipe = MusePipeline.load()
    caption = prompts.styled(ref["reference_content"], ref["descriptor"])
    print(f"1/3 style tuning on ONE image, {ref['file_name']}, captioned {caption!r}")
    settings = {**adapters.TUNING, **({"steps": args.steps} if args.steps else {})}
    model, _ = adapters.tune(pipe, ref["image"], [caption], seed=args.seed, **settings)
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    print(f"wrote {out.resolve()} in {time.perf_counter() - start:.0f} s in all")
    return 0


def cmd_world_export(args) -> int:
    from .datasets import MiniWorld, export_image_folder

    data = MiniWorld(n=args.n, split=args.split, styles=args.styles, size=args.size, seed=args.seed,
                     paraphrase=args.paraphrase)
    folder = export_image_folder(data, args.folder, overwrite=args.overwrite)
    print(f"wrote {len(data)} images and {folder / 'metadata.jsonl'}")
    return 0


def cmd_train(args) -> int:
    import torch

    from .settings import CHECKPOINT_DIR
    from .training import train

    out = Path(args.out) if args.out else CHECKPOINT_DIR / f"{args.model}.safetensors"
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
    train(args.model, out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, bank_size=args.bank_size,
          seed=args.seed, device=args.device, run_dir=args.run_dir or Path("runs") / args.model,
          resume=args.resume, workers=args.workers, command="styledrop-mini " + " ".join(sys.argv[1:]),
          save_dtype=dtype, precision=args.precision, attention=args.attention)
    return 0


def cmd_evaluate(args) -> int:
    import json

    from . import metrics
    from .settings import CHECKPOINT_DIR
    from .training import pick_device

    folder = Path(args.checkpoints) if args.checkpoints else CHECKPOINT_DIR
    device = pick_device(args.device)
    measuring = [m for m in args.models if m != "base"]
    bank = metrics.test_bank(n=args.n, seed=args.seed, workers=args.workers) if measuring else None
    report = {"test_images": len(bank) if bank else 0, "seed": args.seed}
    judges = None
    unknown = sorted(set(args.models) - {"tokenizer", "judges", "clip", "base"})
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from tokenizer, judges, clip, base")
    if "judges" in args.models or "tokenizer" in args.models:
        from .judges import Judges
        judges = Judges.load(folder / "judges.safetensors", device)
        report["judges"] = metrics.judges_report(judges, bank)
    if "tokenizer" in args.models:
        from .tokenizer import VQTokenizer
        report["tokenizer"] = metrics.tokenizer_report(VQTokenizer.load(folder / "tokenizer.safetensors", device),
                                                       bank, judges)
    if "clip" in args.models:
        from .clip import MiniClip
        report["clip"] = metrics.clip_report(MiniClip.load(folder / "clip.safetensors", device), bank)
    if "base" in args.models:  # the generator: seen styles (what it learnt) and held-out names (what it cannot)
        from .clip import MiniClip
        from .judges import Judges
        from .pipeline import MusePipeline
        from .sampling import SamplerSettings
        pipe = MusePipeline.load(folder, device)
        judges = judges or Judges.load(folder / "judges.safetensors", device)
        clip = MiniClip.load(folder / "clip.safetensors", device)
        settings = SamplerSettings(steps=args.steps, guidance=args.guidance, temperature=args.temperature)
        report["base"] = {styles: metrics.generator_report(pipe, judges, clip, n=args.prompts, seed=args.seed,
                                                          styles=styles, settings=settings, workers=args.workers)
                          for styles in ("seen", "held_out")}
        report["base"]["sampler"] = settings.__dict__
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def cmd_style_tune(args) -> int:
    from . import adapters, prompts
    from .checkpoints import fingerprint
    from .images import fit_square, load_image, pil_to_tensor
    from .pipeline import MusePipeline
    from .training import pick_device

    device = pick_device(args.device)
    pipe = MusePipeline.load(args.checkpoints, device)
    size = pipe.tokenizer.config.image_size
    raw = load_image(args.reference)  # any mode (RGBA, greyscale, palette, 16-bit) comes back as RGB
    if raw.size != (size, size):
        print(f"note: {args.reference} is {raw.width}x{raw.height}; centre-cropped and resized to {size}x{size}")
    tensor = pil_to_tensor(fit_square(raw, size))
    content = args.content
    if not content:
        from .clip import MiniClip
        content, confidence = prompts.propose_content(MiniClip.load(pipe.folder / "clip.safetensors", device), tensor)
        print(f"no --content given: the mini CLIP proposes {content!r} (confidence {confidence:.0%}); "
              "pass --content to choose it yourself")
    descriptor = prompts.descriptor_of(args.style)
    caption = prompts.styled(content, descriptor, args.template)
    config = adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj, shared=args.shared)
    start = time.perf_counter()
    model, history = adapters.tune(pipe, tensor, [caption], config, steps=args.steps, batch_size=args.batch_size,
                                   lr=args.lr, seed=args.seed, device=device)
    seconds = time.perf_counter() - start
    n_adapter, n_base = adapters.count(model)
    out = Path(args.out).with_suffix(".safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    adapters.save_adapter(model, out, {
        "base_fingerprint": fingerprint(pipe.folder / "base.safetensors"), "descriptor": descriptor,
        "template": args.template, "reference_caption": caption, "reference": str(Path(args.reference).resolve()),
        "style": args.style,
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "train_seconds": round(seconds, 1), "final_loss": history[-1]["loss"] if history else None,
        "command": "styledrop-mini " + " ".join(sys.argv[1:])})
    print(f"tuned {n_adapter:,} adapter parameters ({100 * n_adapter / n_base:.2f} % of the base model's "
          f"{n_base:,}) on {caption!r} in {seconds:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_feedback_pool(args) -> int:
    """Round 2, step 1: draw the pool with a round-1 adapter, scored by the mini CLIP."""
    from . import feedback, world
    from .clip import MiniClip
    from .images import fit_square, load_image, pil_to_tensor
    from .pipeline import MusePipeline

    pipe = MusePipeline.load(args.checkpoints)
    adapted, info = pipe.with_adapter(args.adapter)
    descriptor, caption = info.get("descriptor", ""), info.get("reference_caption", "")
    reference = args.reference or info.get("reference")
    if not reference or not Path(reference).is_file():
        raise FileNotFoundError(f"the style reference {reference!r} is not there; pass --reference")
    ref_content = caption.removesuffix(f" in {descriptor} style")
    content = max((c for c in world.CONTENTS if c in ref_content), key=len, default="")
    ref = {"style": info.get("style", descriptor), "descriptor": descriptor, "reference_content": ref_content,
           "content": content, "file_name": str(reference),
           "image": pil_to_tensor(fit_square(load_image(reference), pipe.tokenizer.config.image_size))}
    settings = feedback.FeedbackSettings(per_prompt=args.per_prompt, n_prompts=args.prompts, seed=args.seed,
                                         guidance=(args.lambda_a, args.lambda_b))
    clip = MiniClip.load(pipe.folder / "clip.safetensors")
    run = feedback.make_pool(pipe, adapted, ref, args.out, clip, settings, round1_file=str(args.adapter))
    print(f"wrote a pool of {len(run.pool)} images ({settings.n_prompts} prompts x {settings.per_prompt}) "
          f"to {Path(args.out).resolve()}")
    return 0


def cmd_feedback_select(args) -> int:
    from . import feedback

    run = feedback.Run.open(args.run)
    if (args.ids is None) == (args.rule is None):
        raise ValueError("give either --ids (ids or pool file names) or --rule clip|random")
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
    from .pipeline import MusePipeline

    run = feedback.Run.open(args.run)
    settings = feedback.FeedbackSettings(**{**run.manifest["settings"], "steps": args.steps, "d_prj": args.d_prj,
                                            "include_reference": not args.no_reference})
    _, path = feedback.train_round(MusePipeline.load(args.checkpoints), run, args.selection, settings=settings,
                                   seed=args.seed)
    print(f"round 2 on selection {args.selection!r}: wrote {path.resolve()}")
    return 0


def cmd_dreambooth(args) -> int:
    """A DreamBooth content adapter from a folder of subject images (with prior preservation)."""
    from . import adapters, dreambooth
    from .checkpoints import fingerprint
    from .pipeline import MusePipeline

    images, meta = dreambooth.load_subject(args.subject)
    prompt, identifier = meta["prompt"], args.identifier or meta["identifier"]
    words = [identifier if w == meta["identifier"] else w for w in prompt.split()]  # --identifier renames it
    if args.class_noun:  # --class renames the class noun in the caption
        words = [args.class_noun if w == meta["class_noun"] else w for w in words]
    prompt = " ".join(words)
    class_noun = args.class_noun or meta["class_noun"]
    pipe = MusePipeline.load(args.checkpoints)
    out = Path(args.out).with_suffix(".safetensors")
    start = time.perf_counter()
    model, history = dreambooth.tune_subject(
        pipe, images, prompt, identifier, adapters.AdapterConfig(kind=args.kind, d_prj=args.d_prj, lora_rank=args.d_prj),
        steps=args.steps, lr=args.lr, prior_weight=args.prior_weight, n_class=args.n_class,
        cache_dir=args.cache or out.parent / "class_images", seed=args.seed)
    seconds = time.perf_counter() - start
    adapters.save_adapter(model, out, {
        "base_fingerprint": fingerprint(pipe.transformer_file), "role": "content", "prompt": prompt,
        "class_prompt": dreambooth.class_prompt(prompt, identifier), "class_noun": class_noun,
        "identifier": identifier, "descriptor": "", "images": len(images), "prior_weight": args.prior_weight,
        "steps": args.steps, "lr": args.lr, "seed": args.seed, "train_seconds": round(seconds, 1),
        "command": "styledrop-mini " + " ".join(sys.argv[1:])})
    print(f"tuned a content adapter on {len(images)} images of {prompt!r} (prior weight {args.prior_weight}) in "
          f"{seconds:.0f} s; wrote {out.resolve()}")
    return 0


def cmd_generate(args) -> int:
    from .images import image_grid, tensor_to_pil
    from .pipeline import MusePipeline
    from .sampling import SamplerSettings
    from .training import pick_device

    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    settings = SamplerSettings(steps=args.steps, temperature=args.temperature, guidance=args.guidance).check()
    pipe = MusePipeline.load(args.checkpoints, pick_device(args.device))
    prompt, make = args.prompt, None
    if args.content_adapter and not args.adapter:
        raise ValueError("--content-adapter mixes with a style adapter: give --adapter too")
    if args.adapter:
        from . import prompts
        adapted, info = pipe.with_adapter(args.adapter)
        if not args.no_template:
            prompt = prompts.styled(prompt, info["descriptor"], info.get("template", prompts.TEMPLATE))
        print(f"adapter {args.adapter}: prompt {prompt!r}, lambda_A {args.lambda_a}, lambda_B {args.lambda_b}")
        make = pipe.adapter_guided(adapted, args.lambda_a, args.lambda_b)
    if args.content_adapter:
        content_model, content_info = pipe.with_adapter(args.content_adapter)
        # The paper gives the content adapter the prompt without the style descriptor. Our base model
        # only draws well from captions that name a style, so it gets the caption it was tuned on.
        content_prompt = content_info.get("prompt") or args.prompt
        print(f"content adapter {args.content_adapter}: prompt {content_prompt!r}, gamma {args.gamma}")
        make = pipe.mixed(adapted, content_model, content_prompt, args.lambda_a, args.lambda_b, args.gamma)
    start = time.perf_counter()
    images = pipe.generate([prompt] * args.n, seed=args.seed, settings=settings, logits_fn_for=make)
    tiles = [tensor_to_pil(im) for im in images]
    grid = image_grid([tiles[i:i + 8] for i in range(0, len(tiles), 8)], tile=64 * args.scale, title=prompt)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    print(f"wrote {args.n} images of {prompt!r} to {out.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .adapters import GUIDANCE, TUNING, AdapterConfig
    from .dreambooth import PRIOR
    from .dreambooth import TUNING as DREAMBOOTH
    from .feedback import FeedbackSettings
    from .prompts import TEMPLATE
    from .sampling import SamplerSettings

    parser = argparse.ArgumentParser(prog="styledrop-mini", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job: learn a held-out style from one image, draw new content")
    demo.add_argument("--style", default="stained glass", help="a held-out style with a bundled reference")
    demo.add_argument("--out", "-o", default="styledrop_mini_demo.png", help="PNG to write")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-n", type=int, default=12, help="new contents to draw")
    demo.add_argument("--steps", type=int, help="style-tuning steps (default: adapters.TUNING)")
    demo.set_defaults(func=cmd_demo)

    world_cmd = sub.add_parser("world", help="the mini world data set")
    world_sub = world_cmd.add_subparsers(dest="world_command", required=True)
    export = world_sub.add_parser("export", help="render images into a folder with metadata.jsonl")
    export.add_argument("folder")
    export.add_argument("-n", type=int, default=100, help="number of images")
    export.add_argument("--split", choices=["train", "test"], default="train")
    export.add_argument("--styles", default="seen", help="'seen', 'held_out', 'all' or one style name")
    export.add_argument("--size", type=int, default=world.IMAGE_SIZE)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--paraphrase", action="store_true", help="vary the caption templates")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(func=cmd_world_export)
    sheet = world_sub.add_parser("sheet", help="a contact sheet: one row per style, one column per content")
    sheet.add_argument("--out", "-o", default="mini_world.png", help="PNG to write")
    sheet.add_argument("--seed", type=int, default=0)
    sheet.add_argument("--tile", type=int, default=64, help="pixels per tile in the sheet")
    sheet.set_defaults(func=cmd_world_sheet)

    train = sub.add_parser("train", help="train a model on the mini world (recipes in training.RECIPES)")
    train.add_argument("model", choices=["tokenizer", "clip", "judges", "base"],
                       help="base = the masked transformer (needs the tokenizer and clip checkpoints)")
    train.add_argument("--steps", type=int, help="optimiser steps (default: the recipe's)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--bank-size", type=int, help="number of pre-rendered training images")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu", help="cpu (default), cuda (bf16 autocast) or auto")
    train.add_argument("--out", help="checkpoint to write (default: data/checkpoints/MODEL.safetensors)")
    train.add_argument("--run-dir", help="where the resumable state goes (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's saved state")
    train.add_argument("--workers", type=int, help="processes that render the training images")
    train.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                       help="autocast: auto = bf16 on cuda, fp32 on cpu (default: the recipe's; base uses bf16)")
    train.add_argument("--attention", choices=["auto", "math"],
                       help="SDPA kernel in training: math is faster on CPU for short sequences "
                            "(default: the recipe's; base uses math)")
    train.add_argument("--save-dtype", choices=["fp32", "fp16", "bf16"], default="fp16",
                       help="precision of the saved weights (fp16 halves the bundle)")
    train.set_defaults(func=cmd_train)

    generate = sub.add_parser("generate", help="draw images for a prompt with the base model")
    generate.add_argument("prompt", help='e.g. "a red star in pencil sketch style"')
    generate.add_argument("-n", type=int, default=8, help="number of images")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--steps", type=int, default=12, help="decoding steps")
    generate.add_argument("--guidance", type=float, default=SamplerSettings.guidance,
                          help="classifier-free guidance scale (base model only)")
    generate.add_argument("--temperature", type=float, default=SamplerSettings.temperature)
    generate.add_argument("--scale", type=int, default=2, help="pixel upscaling of the grid")
    generate.add_argument("--device", default="cpu")
    generate.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    generate.add_argument("--out", "-o", default="generated.png")
    generate.add_argument("--adapter", help="a style adapter from `styledrop-mini style-tune`")
    generate.add_argument("--no-template", action="store_true",
                          help="use the prompt as it is (default: append the adapter's style descriptor)")
    generate.add_argument("--lambda-a", type=float, default=GUIDANCE[0], help="adapter guidance λ_A (paper Eq. 4)")
    generate.add_argument("--lambda-b", type=float, default=GUIDANCE[1], help="base guidance λ_B (paper Eq. 4)")
    generate.add_argument("--content-adapter", help="a DreamBooth content adapter (`styledrop-mini dreambooth`) "
                                                     "mixed with --adapter at every decoding step")
    generate.add_argument("--gamma", type=float, default=0.6,
                          help="mixing weight of the content adapter: 0 = style only, 1 = content only")
    generate.set_defaults(func=cmd_generate)

    tune = sub.add_parser("style-tune", help="learn a style from ONE reference image (StyleDrop adapters)")
    tune.add_argument("reference", help="the style reference image (any size; RGBA, greyscale, 16-bit are fine)")
    tune.add_argument("--style", required=True, help='the style descriptor, e.g. "stained glass"')
    tune.add_argument("--content", help='what the reference shows, e.g. "a yellow house" (default: CLIP proposes)')
    tune.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors)")
    tune.add_argument("--template", default=TEMPLATE)
    tune.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck")
    tune.add_argument("--d-prj", type=int, default=AdapterConfig.d_prj, help="bottleneck width (LoRA: rank)")
    tune.add_argument("--shared", action="store_true",
                      help="share the bottleneck matrices across layers, with per-layer bias offsets (paper, round 1)")
    tune.add_argument("--steps", type=int, default=TUNING["steps"])
    tune.add_argument("--batch-size", type=int, default=TUNING["batch_size"])
    tune.add_argument("--lr", type=float, default=TUNING["lr"])
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--device", default="cpu")
    tune.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    tune.set_defaults(func=cmd_style_tune)

    db = sub.add_parser("dreambooth", help="a content adapter for one subject (DreamBooth, prior preservation)")
    db.add_argument("subject", help="folder of 3-5 subject images with metadata.jsonl (e.g. data/subjects/sks_star)")
    db.add_argument("--class", dest="class_noun", help="the subject's class noun (default: from metadata.jsonl)")
    db.add_argument("--identifier", help="the rare identifier (default: from metadata.jsonl, else 'sks')")
    db.add_argument("--out", "-o", required=True, help="adapter file to write (.safetensors)")
    db.add_argument("--steps", type=int, default=DREAMBOOTH["steps"])
    db.add_argument("--lr", type=float, default=DREAMBOOTH["lr"])
    db.add_argument("--prior-weight", type=float, default=PRIOR["weight"], help="w of the class prior loss (0: none)")
    db.add_argument("--n-class", type=int, default=PRIOR["n_class"], help="class images drawn once by the base model")
    db.add_argument("--cache", help="where class images are cached (default: class_images/ beside --out)")
    db.add_argument("--kind", choices=["bottleneck", "lora"], default="bottleneck")
    db.add_argument("--d-prj", type=int, default=DREAMBOOTH["d_prj"], help="adapter width (LoRA: rank)")
    db.add_argument("--seed", type=int, default=0)
    db.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    db.set_defaults(func=cmd_dreambooth)

    fb = sub.add_parser("feedback", help="StyleDrop round 2: pool, select (CLIP, random or you), train")
    fb_sub = fb.add_subparsers(dest="step", required=True)
    pool = fb_sub.add_parser("pool", help="draw the pool with a round-1 adapter into a run folder")
    pool.add_argument("adapter", help="the round-1 adapter file (from style-tune)")
    pool.add_argument("--out", "-o", required=True, help="the run folder to write")
    pool.add_argument("--reference", help="the style reference image (default: the one the adapter records)")
    pool.add_argument("--per-prompt", "-m", type=int, default=FeedbackSettings.per_prompt, help="images per prompt")
    pool.add_argument("--prompts", "-p", type=int, default=FeedbackSettings.n_prompts, help="number of prompts")
    pool.add_argument("--seed", type=int, default=0)
    pool.add_argument("--lambda-a", type=float, default=GUIDANCE[0])
    pool.add_argument("--lambda-b", type=float, default=GUIDANCE[1])
    pool.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    pool.set_defaults(func=cmd_feedback_pool)
    select = fb_sub.add_parser("select", help="save a selection of the pool (ids or file names, or a rule)")
    select.add_argument("run")
    select.add_argument("--ids", nargs="*", help="pool ids or file names, e.g. 3 17 0042.png")
    select.add_argument("--rule", choices=["clip", "random"], help="CLIP feedback, or the random control")
    select.add_argument("--min-style", type=float, help="CLIP rule: only images with at least this style score")
    select.add_argument("--name", help="selection name (default: the rule, or 'human' for --ids)")
    select.add_argument("--seed", type=int, default=0)
    select.set_defaults(func=cmd_feedback_select)
    train2 = fb_sub.add_parser("train", help="train a fresh round-2 adapter on a selection")
    train2.add_argument("run")
    train2.add_argument("--selection", default="human")
    train2.add_argument("--steps", type=int, default=FeedbackSettings.steps)
    train2.add_argument("--d-prj", type=int, default=FeedbackSettings.d_prj)
    train2.add_argument("--no-reference", action="store_true", help="train on the selection only")
    train2.add_argument("--seed", type=int, default=0)
    train2.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    train2.set_defaults(func=cmd_feedback_train)

    evaluate = sub.add_parser("evaluate", help="measure the bundled models on fresh test renders")
    evaluate.add_argument("models", nargs="*", default=["tokenizer", "judges", "clip"])
    evaluate.add_argument("-n", type=int, default=1000, help="number of fresh test renders")
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    evaluate.add_argument("--workers", type=int)
    evaluate.add_argument("--prompts", type=int, default=400, help="prompts per style group for 'base'")
    evaluate.add_argument("--steps", type=int, default=12, help="decoding steps for 'base'")
    evaluate.add_argument("--guidance", type=float, default=SamplerSettings.guidance, help="guidance scale for 'base'")
    evaluate.add_argument("--temperature", type=float, default=SamplerSettings.temperature,
                          help="sampling temperature for 'base'")
    evaluate.add_argument("--json", help="also write the report to this file")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"styledrop-mini: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
