"""styledrop_mini: StyleDrop rebuilt end to end in a procedural mini world.

One module per idea, in the order the notebooks (tutorials/NN_*.ipynb) introduce them; each imports
only modules above it in the import tree (tests/test_imports.py):

  00 the world      `world` (renderer, named and held-out styles), `styles` (the style space),
                    `datasets` (data sets, image folders, banks, style references), `images`
                    (image I/O and grids), `files` (paths and outputs), `settings`, `exercises`
                    (the checkers), `assignments` (student copies of the notebooks, for nbgrader)
  01 tokenizer      `tokenizer` (VQ), `training` (the resumable loop), `checkpoints`, `devices`,
                    `metrics` (the measurements behind every figure)
  02 measuring      `clip` (the mini CLIP), `judges` (ground truth per attribute; the subject judge)
  03 generator      `text_encoder` (T), `transformer` (G), `sampling` (S, guidance), `pipeline`
                    (I = D(S(G, T(t)))), `recipes` (how each bundled model is trained)
  04 adapters       `adapters` (StyleDrop's tuning), `demo` (the main job)
  05 prompts        `prompts` (templated captions)
  06-07 feedback    `feedback` (round 2), `widgets` (the picker)
  08 mixing         `dreambooth` (content adapters, mixing)
  09 evaluation     `paper_table` (the paper's Table 2: every method, CLIP beside the truth),
                    `textual_inversion` (one learnt word: a baseline)
  10 editing        `styleclip` (text-guided edits of an image: StyleCLIP, and re-masking)
  11 tuning-free     `instantstyle` (an image-prompt adapter, and InstantStyle on it)
  measuring runs    `diagnostics` (can the base learn a held-out style?), `evaluation` (`evaluate`)
  the command       `cli` (`styledrop-mini`; parses and prints only)
"""
__version__ = "0.1.0"
