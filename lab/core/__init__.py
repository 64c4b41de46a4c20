"""The base layer: what every other layer of the lab may import, and which imports nothing of the lab above it.

geometry (the sphere, the center vector), nn (seeded layers), dist (guarded collectives), schedules, seeds,
checks (validation at the edges), vocab (the metric vocabulary), metrics (kNN, linear probe, readings on the
sphere), runlog (JSON-lines logs), clitools, collapse (collapse signatures), pull (the center pull), experiments
(the paper's experiments, each declared once).
"""
