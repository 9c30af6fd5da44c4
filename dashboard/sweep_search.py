"""The Sweep page's search: the form's strategy, budget and pruning, what the budget buys, and the predicted map."""

from __future__ import annotations

import streamlit as st

from dashboard import messages
from wrn_core.config import ConfigError
from wrn_core.store import RunStore
from wrn_core.sweeps import Sweep, budget_forecast, predicted_seconds, save_predicted_seconds
from wrn_core.sweeps.cell_order import nothing_left
from wrn_core.sweeps.predict import SweepMap, sweep_map
from wrn_core.sweeps.search_plan import ASHA, BAYES, GRID, MEDIAN, NO_PRUNING, RANDOM, SearchPlan, require_optuna

STRATEGY_LABELS = {GRID: "grid (every cell)", BAYES: "Bayesian search", RANDOM: "random"}
BUDGET_LABELS = {"none": "no budget", "cells": "cells", "minutes": "minutes"}
PRUNE_LABELS = {NO_PRUNING: "none", MEDIAN: "median", ASHA: "ASHA (successive halving)"}
HEATMAP_NOTE = (" Pale, ≈: the map's prediction for a square with no result (a Gaussian process over the finished "
                "cells), the next cell's square framed red: {error}.")
TRADEOFF_NOTE = (" △ Open triangles: predicted by the map, not measured (± std), never on the front; red: the next "
                 "cell.")


def init(prefix: str) -> None:
    """The Search box's defaults: a plain grid."""
    for key, value in (("search", GRID), ("budget", "none"), ("budget_amount", 4.0), ("prune", NO_PRUNING)):
        st.session_state.setdefault(prefix + key, value)


def draw_form(prefix: str) -> None:
    """Which cells train: the strategy, a budget in cells or minutes, and pruning."""
    with st.container(border=True):
        st.markdown("**Search**")
        st.radio("strategy", list(STRATEGY_LABELS), key=prefix + "search", horizontal=True,
                 format_func=STRATEGY_LABELS.get,
                 help="grid: every cell in order; Bayesian: Optuna picks each next cell for accuracy against MACs; "
                      "random: a seeded random order (the baseline)")
        c1, c2 = st.columns(2)
        c1.radio("budget", list(BUDGET_LABELS), key=prefix + "budget", horizontal=True, format_func=BUDGET_LABELS.get,
                 help="cells: how many cells start; minutes: predicted plus measured training time (needs a "
                      "pre-flight)")
        if st.session_state[prefix + "budget"] != "none":
            c2.number_input(f"budget ({st.session_state[prefix + 'budget']})", min_value=0.0, step=1.0, format="%g",
                            key=prefix + "budget_amount")
        st.selectbox("pruning", list(PRUNE_LABELS), key=prefix + "prune", format_func=PRUNE_LABELS.get,
                     help="stop a cell early, from half its epochs on, when its test accuracy trails the others; it "
                          "keeps its checkpoint and curve and reads pruned")


def form_plan(prefix: str) -> SearchPlan:
    """The search plan the Search box describes (checked when the sweep is made)."""
    budget, amount = st.session_state[prefix + "budget"], st.session_state[prefix + "budget_amount"]
    return SearchPlan(strategy=st.session_state[prefix + "search"], prune=st.session_state[prefix + "prune"],
                      budget_cells=int(amount) if budget == "cells" else None,
                      budget_minutes=float(amount) if budget == "minutes" else None)


def keep_predicted_times(root, sweep: Sweep, key: tuple, stored: tuple | None) -> None:
    """Before a launch: optuna there if the plan needs it, and for a plan that counts or minimises time the
    pre-flight's predicted seconds kept beside the sweep file (`stored`: (what it measured, its frame), used when it
    measured `key`, this grid); ConfigError (one line) when there is none."""
    if sweep.search.needs_optuna:
        require_optuna(sweep.search)
    if not sweep.search.needs_time:
        return
    seconds = predicted_seconds(sweep, stored[1]) if stored is not None and stored[0] == key else {}
    if not seconds:
        raise ConfigError("a budget in minutes counts predicted training time: press Pre-flight for this grid "
                          "first, or give the budget in cells")
    save_predicted_seconds(root, sweep, seconds)


def draw_forecast(plan, current: Sweep | None) -> None:
    """What the form's budget buys by the pre-flight's predicted times."""
    forecast = budget_forecast(plan, current.search) if current is not None else None
    if forecast:
        st.markdown(f"Search: {forecast}.")


def plan_text(plan: SearchPlan) -> str:
    """' Search: Bayesian search, 8 cells, pruning ASHA.' for a sweep's caption; '' for a plain grid."""
    if plan.is_grid:
        return ""
    return f" Search: {STRATEGY_LABELS[plan.strategy]}, {plan.budget_text()}, pruning {PRUNE_LABELS[plan.prune]}."


@st.cache_data(show_spinner=False, max_entries=16)
def _outlook(root: str, _sweep: Sweep, key: tuple, _cells, state: str) -> tuple[SweepMap, bool]:
    return sweep_map(_sweep, _cells, root), nothing_left(RunStore(root), _sweep)


def outlook(root, sweep: Sweep, cells, state: str) -> tuple[SweepMap | None, bool | None]:
    """(the predicted map, whether nothing is left to train), once per state of the cells (fitting the GP and asking
    the search take seconds; the live view polls far more often); (None, None) with the one-line reason shown when
    the sweep's search cannot be read here (optuna missing)."""
    try:
        return _outlook(str(root), sweep, (sweep.name, sweep.created_at), cells, state)
    except ConfigError as exc:
        messages.show_error(exc)
        return None, None


def draw_next(shown: SweepMap | None) -> None:
    """The cell the search trains next and why (or why none)."""
    if shown is not None:
        st.markdown(f"**Next:** {shown.next.run or 'none'} — {shown.next.reason}")


def heatmap_note(shown: SweepMap | None) -> str:
    """What the heatmap's pale squares are, and how far off the map is."""
    return "" if shown is None else HEATMAP_NOTE.format(error=shown.prediction.error_text)

