"""Checkers for the notebooks' exercises: `check("00.count_seen_combinations", answer)`.

A checker explains what is wrong in words (the most likely mistake first), so a student learns
from a wrong answer instead of staring at `False`. Each notebook's exercises register here under
"NN.name"; `check` raises `ExerciseError` for a wrong answer and prints a line for a right one.
"""
from __future__ import annotations

from pathlib import Path

from . import world

CHECKS = {}


class ExerciseError(AssertionError):
    """A wrong answer; the message says what is wrong and how to look for the mistake."""


def exercise(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def check(name: str, answer) -> str:
    """Check `answer` to exercise `name`; raise ExerciseError explaining a wrong answer."""
    if name not in CHECKS:
        raise KeyError(f"no exercise called {name!r}; known: {', '.join(sorted(CHECKS))}")
    if answer is NotImplemented or answer is None:
        raise ExerciseError(f"{name}: no answer yet; fill in the cell above and run it")
    message = CHECKS[name](answer)
    print(f"✓ {name}: {message}")
    return message


# ---------------------------------------------------------------------------------------------
# 00_mini_world
# ---------------------------------------------------------------------------------------------
@exercise("00.count_seen_combinations")
def _count_seen(answer) -> str:
    n_c, n_k = len(world.CONTENTS), len(world.COLOURS)
    seen, held, every = len(world.SEEN_STYLES), len(world.HELD_OUT_STYLES), len(world.STYLES)
    if not isinstance(answer, int):
        raise ExerciseError(f"expected a whole number, got {type(answer).__name__} {answer!r}")
    right = n_c * n_k * seen
    if answer == right:
        return f"{right} = {n_c} contents x {n_k} colours x {seen} seen styles"
    hints = {
        n_c * n_k * every: "you counted the held-out styles too: the base generator never sees them",
        n_c * n_k * held: "that is the held-out part; the question asks for the seen styles",
        n_c * seen: "you left out the colours: each content comes in every colour",
        n_k * seen: "you left out the contents",
        len(world.SHAPES) * n_k * seen: "you left out the 26 letters: they are contents too",
        n_c + n_k + seen: "combinations multiply: each content goes with each colour and each style",
    }
    raise ExerciseError(hints.get(answer, f"{answer} is not it; multiply the number of choices for each "
                                          "label, using only the styles the base generator sees"))


@exercise("00.caption_to_labels")
def _caption_to_labels(answer) -> str:
    if not callable(answer):
        raise ExerciseError("expected a function caption -> (content, colour, style)")
    tried = 0
    for content in world.CONTENTS:
        for colour in world.COLOURS:
            for style in world.STYLES:
                text = world.caption(content, colour, style)
                try:
                    got = answer(text)
                except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
                    raise ExerciseError(f"your function raised {type(exc).__name__}: {exc} on {text!r}") from exc
                want = (content, colour, style)
                if tuple(got) != want:
                    hint = ""
                    if len(tuple(got)) == 3 and tuple(got)[2] == world.STYLES[style] != style:
                        hint = (" - the caption holds the style's *descriptor*; map it back to the style "
                                "name with world.STYLES")
                    elif " " in content and tuple(got)[0] != content:
                        hint = " - some contents are two words ('letter A', 'lightning bolt')"
                    raise ExerciseError(f"{text!r} gave {tuple(got)!r}, expected {want!r}{hint}")
                tried += 1
    return f"all {tried} canonical captions parsed back to their labels"


@exercise("00.held_out_folder")
def _held_out_folder(answer) -> str:
    from .datasets import ImageFolder  # late import: keeps `check` light for other notebooks

    folder = Path(answer)
    data = ImageFolder(folder)  # its own errors already name the file and line
    styles = [row.get("style", "") for row in data.rows]
    if len(data) < 12:
        raise ExerciseError(f"{folder} holds {len(data)} images; export at least 12")
    wrong = sorted({s for s in styles if s not in world.HELD_OUT_STYLES})
    if wrong:
        raise ExerciseError(f"{folder} has images in seen styles {wrong}; use MiniWorld(styles='held_out')")
    missing = sorted(set(world.HELD_OUT_STYLES) - set(styles))
    if missing:
        raise ExerciseError(f"{folder} has no image in {missing}; every held-out style should appear")
    image = data[0]["image"]
    return f"{len(data)} held-out images, {image.shape[-1]}x{image.shape[-2]} px, all {len(set(styles))} styles"
