"""tennis-assets: trains, evaluates and (with the Dagster layer) promotes agents for two-player
Tennis.

The RL core (``sim``, ``agents``, ``training``) is plain Python and imports no Dagster, so a
notebook can use it directly.
"""

__version__ = "0.1.0"
