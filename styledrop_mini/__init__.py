"""styledrop_mini: StyleDrop rebuilt end to end in a procedural mini world.

One module per idea: `world` (the renderer), `datasets` (torch data sets and image folders),
`images` (image I/O and grids), `exercises` (notebook checkers), `settings`, `cli`.
"""
__version__ = "0.1.0"
