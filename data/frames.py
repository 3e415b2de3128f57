"""Frames put together the same way everywhere reads are combined."""

from __future__ import annotations

import pandas as pd


def stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other with every column of any: a column all empty in one
    frame takes its type from the others (what pandas will stop doing by itself)."""
    columns = list(dict.fromkeys(column for frame in frames for column in frame.columns))
    kept = [frame.dropna(axis=1, how="all") for frame in frames if not frame.empty]
    if not kept:
        return frames[0].reindex(columns=columns)
    return pd.concat(kept, ignore_index=True).reindex(columns=columns)
