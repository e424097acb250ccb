"""Progress reporting for long runs: jitted chunks driven from Python."""

from collections.abc import Callable

from tqdm.auto import tqdm


def run_chunks(
    chunk_fn: Callable,
    carry,
    n_chunks: int,
    *,
    desc: str = "",
    progress: bool = True,
):
    """Calls `carry, out = chunk_fn(carry, i)` for `i < n_chunks` with a progress bar.

    Returns the final carry and the list of per-chunk outputs. `chunk_fn` should be
    jitted once by the caller, so each chunk reuses one compiled program.
    """
    outs = []
    for i in tqdm(range(n_chunks), desc=desc, disable=not progress, leave=False):
        carry, out = chunk_fn(carry, i)
        outs.append(out)
    return carry, outs
