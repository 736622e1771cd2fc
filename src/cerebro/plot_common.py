"""What the two ``cerebro plot`` figures share: their size, how a direction is worded, and
which configs a ``--top`` keeps. Its own module so the figure modules (``plot_curves``,
``plot_parallel``) share it without importing each other or the command (``plot``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FIGSIZE = (12.0, 8.0)  # inches; at the default 125 dpi: 1500 x 1000 px
DEFAULT_DPI = 125


def better(direction: str) -> str:
    """The direction in words, for titles and the colorbar: a reader of a pasted image
    cannot look up whether a loss or an accuracy is plotted."""
    return "higher is better" if direction == "max" else "lower is better"


def chosen(configs: Sequence[dict[str, Any]], top: int | None) -> list[dict[str, Any]]:
    """The configs drawn: the first ``top`` by leaderboard rank (rows come rank-ordered)."""
    return list(configs[:top]) if top else list(configs)


def which_configs(shown: int, total: int, top: int | None) -> str:
    """The subtitle's count: ``top 2 of 5 configs`` or ``all 5 configs``."""
    return f"top {shown} of {total} configs" if top else f"all {total} configs"


def headline(fig: Any, title: str, subtitle: str, subtitle_y: float) -> None:
    """The bold title and the grey subtitle both figures open with, left-aligned alike."""
    fig.suptitle(title, x=0.07, ha="left", fontsize=15, fontweight="bold")
    fig.text(0.07, subtitle_y, subtitle, fontsize=10, color="dimgray")
