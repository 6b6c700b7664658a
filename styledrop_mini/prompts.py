"""Templated prompts: StyleDrop separates *what* is drawn from *how*.

The reference image is captioned "{content} in {style descriptor} style" — "a yellow house in
stained glass style" — and every new prompt reuses the descriptor: "a letter A in stained glass
style". Training on the full caption lets the adapter attach the style to the descriptor's words and
leave the content to the content words, so new content can be asked for at sampling time.

Chapter 05: tutorials/05_templated_prompts.ipynb.
"""
from __future__ import annotations

import re

from . import world
from .clip import read_attributes

TEMPLATE = "{content} in {descriptor} style"


def content_phrase(content: str) -> str:
    """'yellow house' -> 'a yellow house'; 'an arrow' and 'the moon' stay as they are."""
    text = " ".join(str(content).split())
    if not text:
        raise ValueError("the content is empty; describe what is drawn, e.g. 'a yellow house'")
    if not re.match(r"(a|an|the)\b", text, flags=re.I):
        text = f"a {text}"
    return world.with_articles(text)


def styled(content: str, descriptor: str, template: str = TEMPLATE) -> str:
    """The templated prompt: content, then the style descriptor."""
    descriptor = " ".join(str(descriptor).split())
    if not descriptor:
        raise ValueError("the style descriptor is empty; name the style, e.g. 'stained glass'")
    if "{content}" not in template or "{descriptor}" not in template:
        raise ValueError(f"a template needs {{content}} and {{descriptor}}, got {template!r}")
    return template.format(content=content_phrase(content), descriptor=descriptor)


def content_of(caption: str, descriptor: str, template: str = TEMPLATE) -> str:
    """The reverse of `styled`: the content phrase of a caption made with `template` and `descriptor`
    ("a yellow house in stained glass style" -> "a yellow house")."""
    pattern = re.escape(template).replace(re.escape("{content}"), "(?P<content>.+)", 1)
    pattern = pattern.replace(re.escape("{descriptor}"), re.escape(" ".join(str(descriptor).split())))
    match = re.fullmatch(pattern, caption.strip())
    if not match:
        raise ValueError(f"the caption {caption!r} does not follow the template {template!r} "
                         f"with the descriptor {descriptor!r}")
    return match["content"]


def descriptor_of(style: str) -> str:
    """A mini-world style name ('neon') -> its descriptor ('glowing neon'); other text is kept as is."""
    return world.STYLES.get(style, style)


def propose_content(clip, image) -> tuple[str, float]:
    """What the mini CLIP thinks the reference shows: ('a pink star', confidence), zero-shot over
    the mini world's contents and colours (clip.read_attributes)."""
    read = read_attributes(clip, image[None] if image.ndim == 3 else image)[0]
    (content, p_content), (colour, p_colour) = read["content"], read["colour"]
    return world.with_articles(f"a {colour} {content}"), p_content * p_colour
