"""Human feedback: a picker for the pool of a feedback run (ipywidgets 8, JupyterLab 4).

    picker = Picker("runs/feedback/stained_glass")   # the pool as a grid of thumbnails
    picker                                           # show it; click images to select them

Every click is written to RUN/selections/human.json at once (atomically), so a crashed kernel or a
closed tab loses nothing, and a picker made again from the same folder shows the same selection.
A cell cannot wait for clicks: the next cell reads `run.selection("human")` from disk.

Chapter 07: tutorials/07_human_feedback.ipynb.
"""
from __future__ import annotations

import html

import ipywidgets as widgets

from .feedback import Run
from .files import MetadataError, keep_bad_copy

PAPER_HF = 10  # the paper's people picked about 10 images per style
SORTS = {"pool order": None, "CLIP text score": "clip_text", "CLIP style score": "clip_style"}
PICKED_COLOUR = "#1a73e8"
# A photo app's tick in the thumbnail's corner; the frame (a layout border) shows even where CSS is stripped.
PICKED_CSS = f"""<style>
.sdm-picked {{ position: relative; background: #e8f0fe; }}
.sdm-picked::after {{ content: "\\2713"; position: absolute; top: 6px; right: 6px; width: 22px; height: 22px;
  border-radius: 50%; background: {PICKED_COLOUR}; color: white; font: bold 14px/22px sans-serif;
  text-align: center; box-shadow: 0 0 0 2px white; }}
</style>"""


class Picker:
    """A run's pool as thumbnails, a labelled row per prompt, each with its CLIP text (T) and style (S)
    scores; a click toggles an image, and a picked one shows a frame and a tick. `on_train(picker)` runs
    when "train round 2" is pressed."""

    def __init__(self, run, name: str = "human", columns: int = 8, thumb: int = 96, on_train=None):
        self.run = run if isinstance(run, Run) else Run.open(run)
        self.name, self.on_train = name, on_train
        self.run.selection_path(name)  # a bad name fails here, not at the first click
        try:
            saved, problem = set(self.run.selection(name)), ""
        except MetadataError as exc:  # a broken selection file must not lock the picker: keep it aside, start empty
            aside = keep_bad_copy(self.run.selection_path(name))
            saved, problem = set(), f"{exc}. The broken file was kept as {aside.name}; starting with an empty selection."
        self.notice = widgets.HTML(f"<b style='color:#b00020'>{html.escape(problem)}</b>" if problem else "")
        self.toggles, self.tiles = {}, {}
        for item in self.run.pool:
            toggle = widgets.ToggleButton(value=item["id"] in saved, description=f"#{item['id']}",
                                          tooltip=f"{item['prompt']} (CLIP text {item['clip_text']:.3f}, "
                                                  f"style {item['clip_style']:.3f})",
                                          layout=widgets.Layout(width=f"{thumb}px"))
            toggle.observe(lambda _change, i=item["id"]: self._clicked(i), names="value")
            image = widgets.Image(value=self.run.image_path(item["id"]).read_bytes(), format="png",
                                  layout=widgets.Layout(width=f"{thumb}px", height=f"{thumb}px"))
            scores = widgets.HTML(f"<span style='font-size:11px' title='CLIP text score / CLIP style score'>"
                                  f"T {item['clip_text']:.2f} · S {item['clip_style']:.2f}</span>")
            self.toggles[item["id"]] = toggle
            self.tiles[item["id"]] = widgets.VBox([image, toggle, scores], layout=widgets.Layout(padding="2px"))
            self._show_picked(item["id"])
        prompts = list(dict.fromkeys(item["prompt"] for item in self.run.pool))
        # One row per prompt, labelled, as the pool was drawn: a person compares images of one prompt.
        self.row_labels = {prompt: widgets.HTML(layout=widgets.Layout(width="150px")) for prompt in prompts}
        self.rows = {prompt: widgets.HBox([self.row_labels[prompt], widgets.HBox(
            layout=widgets.Layout(flex_flow="row wrap", width=f"{columns * (thumb + 20)}px"))]) for prompt in prompts}
        self.filter = widgets.Dropdown(options=["all prompts"] + prompts, description="show")
        self.sort = widgets.Dropdown(options=list(SORTS), description="sort by")
        self.counter = widgets.HTML()
        self.train_button = widgets.Button(description="train round 2", button_style="primary",
                                           disabled=on_train is None)
        self.output = widgets.Output()  # callbacks' prints and errors show here, not in the log
        self.grid = widgets.VBox()
        self.filter.observe(lambda _: self._layout(), names="value")
        self.sort.observe(lambda _: self._layout(), names="value")
        self.train_button.on_click(self._train)
        self.widget = widgets.VBox([widgets.HTML(PICKED_CSS), self.notice, widgets.HBox([self.filter, self.sort]),
                                    widgets.HBox([self.counter, self.train_button]), self.grid, self.output])
        self._layout()
        self._count()

    # --- state --------------------------------------------------------------------------------
    @property
    def selected(self) -> list[int]:
        return [i for i, toggle in self.toggles.items() if toggle.value]

    def set_selection(self, ids) -> list[int]:
        """Select exactly `ids` (pool ids or file names), as clicks would; saved at once."""
        wanted = set(self.run.select(self.name, ids))  # validates, and saves even if nothing toggles
        for i, toggle in self.toggles.items():
            toggle.value = i in wanted
        return self.selected

    def _clicked(self, i: int) -> None:
        with self.output:
            self.run.select(self.name, self.selected, rule="human")
            self._show_picked(i)
            self._count()

    def _count(self) -> None:
        n = len(self.selected)
        picked = [self.run.pool[i]["prompt"] for i in self.selected]
        self.counter.value = (f"<b>{n} selected</b> over {len(set(picked))} prompts; the paper's people picked about "
                              f"{PAPER_HF}. Saved in {self.run.selection_path(self.name)}")
        for prompt, label in self.row_labels.items():
            mark = f"<br><span style='color:{PICKED_COLOUR}'>{picked.count(prompt)} picked</span>" if prompt in picked else ""
            label.value = f"<div style='font-size:12px;line-height:1.3'><b>{html.escape(prompt)}</b>{mark}</div>"

    def _show_picked(self, i: int) -> None:
        """A picked image wears a coloured frame and a tick on the thumbnail itself (PICKED_CSS)."""
        tile, picked = self.tiles[i], self.toggles[i].value
        tile.layout.border = f"3px solid {PICKED_COLOUR}" if picked else "3px solid transparent"
        (tile.add_class if picked else tile.remove_class)("sdm-picked")
        self.toggles[i].icon = "check" if picked else ""

    # --- view ---------------------------------------------------------------------------------
    def _layout(self) -> None:
        """The rows of the prompts shown, each row's images in pool order or by a CLIP score."""
        key = SORTS[self.sort.value]
        for prompt, row in self.rows.items():
            items = [it for it in self.run.pool if it["prompt"] == prompt]
            if key:
                items = sorted(items, key=lambda it: -it[key])
            row.children[1].children = [self.tiles[it["id"]] for it in items]
        shown = list(self.rows) if self.filter.value == "all prompts" else [self.filter.value]
        self.grid.children = [self.rows[prompt] for prompt in shown]

    @property
    def shown(self) -> list[int]:
        """The pool ids on screen, row by row."""
        id_of = {id(tile): i for i, tile in self.tiles.items()}
        return [id_of[id(tile)] for row in self.grid.children for tile in row.children[1].children]

    def _train(self, _button) -> None:
        with self.output:
            self.output.clear_output()
            print(f"training round 2 on {len(self.selected)} images ...")
            self.on_train(self)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
