"""Per-turn reasoning signals: what Claude did in a turn (tools, order, depth, failures) and how it
reasoned (plans, constraints, pruning, self-corrections), each with its evidence.

`extract` is pure (plain data in, `TurnSignals` out); `store` reads turns from the database and
keeps the `signals` table current; `cra signals` runs it.
"""

from .config import DepthThresholds, SignalConfig
from .extract import Message, ToolCall, Turn, TurnSignals, extract

__all__ = ["DepthThresholds", "SignalConfig", "Message", "ToolCall", "Turn", "TurnSignals", "extract"]
