"""argilla-campaign: community annotation campaigns for preference datasets on Argilla 2.x."""

from __future__ import annotations

__version__ = "0.1.0"
