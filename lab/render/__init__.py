"""Pictures of runs: GIF frames drawn directly (frames), Plotly figures (interactive), Matplotlib figures (figures).

Every function returns bytes, a PIL image or a figure object, so pages, notebooks and the CLI share them.
Import from the submodules: `lab.render.frames`, `lab.render.interactive`, `lab.render.figures`.
"""
