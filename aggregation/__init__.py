"""Cost and usage aggregation: telemetry in, windowed usage per team/project/key/model/provider out."""

from aggregation.cell import Cell, CellKey
from shared.usage.windows import WINDOWS, window_bounds

__all__ = ["WINDOWS", "Cell", "CellKey", "window_bounds"]
