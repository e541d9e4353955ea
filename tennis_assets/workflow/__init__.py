"""The candidate workflow in plain Python (no Dagster): train a candidate, evaluate it, decide
whether it replaces the champion, and monitor the champion for drift.

``tennis_assets.experiment`` (the CLI and notebooks) and the Dagster assets call the same
functions, so a report means the same thing wherever it was made.
"""
