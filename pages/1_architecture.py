"""Architecture page: shape, parameters, MACs, memory and the width profile of one or two WRNs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import formatting, launch_checks, messages
from wrn_core.errors import one_line
from wrn_core.config import OPTIMIZERS, ConfigError, WRNConfig, blocks_from_depth, depth_from_blocks, nearest_depth
from wrn_core.plots import width_figure
from wrn_core.model.tables import block_table, group_table, layer_table, totals, training_memory_mb

# Defaults: the single view shows the paper's WRN-16-8; compare mode starts A as the model set there (else the seed
# article's N=1, k=8) against the paper's best CIFAR model, WRN-28-10.
DEFAULTS = {
    "arch_by": "blocks per group N",
    "arch_n": 2,
    "arch_depth": 16,
    "arch_k": 8,
    "arch_dropout": 0.0,
    "arch_a_by": "blocks per group N",
    "arch_a_n": 1,
    "arch_a_depth": 10,
    "arch_a_k": 8,
    "arch_a_dropout": 0.0,
    "arch_b_by": "blocks per group N",
    "arch_b_n": 4,
    "arch_b_depth": 28,
    "arch_b_k": 10,
    "arch_b_dropout": 0.3,
    "arch_classes": 10,
    "arch_image_size": 32,
    "arch_batch_size": 128,
    "arch_optimizer": "sgd-nesterov",
    "arch_amp": True,
    "arch_compare": False,
}
for key, value in DEFAULTS.items():
    if key not in st.session_state:
        st.session_state[key] = value


def _depth_typed(prefix: str) -> None:
    """on_change of the depth box: a depth that is not 6N+4 is said, as typed, with what is valid, and the box
    moves to the nearest valid depth, so the page shows a model and + and − step between valid depths."""
    s = st.session_state
    messages.clear_flash(f"{prefix}depth")
    depth = int(s[f"{prefix}depth"])
    try:
        blocks_from_depth(depth)
    except ConfigError as exc:
        shown = nearest_depth(depth)
        s[f"{prefix}depth"] = shown
        messages.flash(f"{prefix}depth", messages.WARNING, f"{one_line(exc)}: showing depth {shown}", about=str(shown))


def model_controls(prefix: str, title: str | None = None) -> WRNConfig | None:
    """N (or depth), k and dropout inputs; returns the config or shows a one-line error about the value typed.

    The boxes set no bounds: the browser would refuse an out-of-range value without telling the server, which
    would go on showing the last valid model. WRNConfig refuses it instead, in one line that says what is valid
    (a depth is moved to the nearest valid one, and the line says so).
    """
    if title:
        st.markdown(f"**{title}**")
    st.radio(
        "Set the depth by",
        ("blocks per group N", "depth d = 6N+4"),
        key=f"{prefix}by",
        horizontal=True,
    )
    c1, c2, c3 = st.columns(3)
    with c1:
        if st.session_state[f"{prefix}by"] == "blocks per group N":
            st.number_input("N (blocks per group)", step=1, key=f"{prefix}n")
        else:
            # The box only ever holds a valid depth (6N+4), so + and − step between valid depths.
            st.number_input("depth d", step=6, key=f"{prefix}depth", on_change=_depth_typed, args=(prefix,),
                            help="d = 6N+4: 10, 16, 22, 28, …")
            messages.show_flash(f"{prefix}depth", about=str(st.session_state[f"{prefix}depth"]))
    with c2:
        st.number_input("k (widen factor)", step=1, key=f"{prefix}k")
    with c3:
        st.number_input("dropout", step=0.05, format="%.2f", key=f"{prefix}dropout")
    try:
        common = {
            "widen_factor": int(st.session_state[f"{prefix}k"]),
            "dropout": float(st.session_state[f"{prefix}dropout"]),
            "num_classes": int(st.session_state["arch_classes"]),
        }
        if st.session_state[f"{prefix}by"] == "blocks per group N":
            config = WRNConfig.from_blocks(int(st.session_state[f"{prefix}n"]), **common)
        else:
            config = WRNConfig(depth=int(st.session_state[f"{prefix}depth"]), **common)
    except ConfigError as exc:
        messages.show_error(exc)
        return None
    # Keep the hidden input in step so switching between N and depth shows the same model.
    if st.session_state[f"{prefix}by"] == "blocks per group N":
        st.session_state[f"{prefix}depth"] = depth_from_blocks(config.blocks)
    else:
        st.session_state[f"{prefix}n"] = config.blocks
    return config


MODEL_FIELDS = ("by", "n", "depth", "k", "dropout")  # the inputs model_controls draws, after its prefix


def start_compare() -> None:
    """on_change of the compare toggle: turned on, config A starts as the model the user has just set."""
    if st.session_state["arch_compare"]:
        for name in MODEL_FIELDS:
            st.session_state[f"arch_a_{name}"] = st.session_state[f"arch_{name}"]


def describe(config: WRNConfig) -> str:
    widths = " → ".join(str(w) for w in config.widths)
    return (
        f"### {config.name}\nN={config.blocks} blocks per group, k={config.widen_factor}, "
        f"widths {widths} channels, dropout {config.dropout:g}, {config.num_classes} classes"
    )


def analyse(config: WRNConfig):
    """(layer table, totals, memory) or None after showing a one-line error."""
    try:
        table = layer_table(config, int(st.session_state["arch_image_size"]))
        total = totals(config, int(st.session_state["arch_image_size"]), table)
        memory = training_memory_mb(
            total,
            int(st.session_state["arch_batch_size"]),
            optimizer=st.session_state["arch_optimizer"],
            amp=bool(st.session_state["arch_amp"]),
        )
    except ConfigError as exc:
        messages.show_error(exc)
        return None
    return table, total, memory


def memory_help(memory: dict[str, float]) -> str:
    parts = ", ".join(
        f"{name.replace('_', ' ')} {formatting.fmt_mib(memory[name])}"
        for name in ("weights", "gradients", "optimizer_state", "activations", "workspace")
    )
    return f"Estimate for batch {st.session_state['arch_batch_size']}: {parts}."


def show_measured(config: WRNConfig, memory: dict[str, float]) -> None:
    """The predicted training memory beside what runs of this model measured, once there are any."""
    batch = int(st.session_state["arch_batch_size"])
    runs = [r for r in launch_checks.measured_memory(config) if r["batch_size"] == batch]
    gpu = [r for r in runs if r["peak_cuda_mb"] is not None]
    if gpu:
        best = max(gpu, key=lambda r: r["peak_cuda_mb"])
        st.caption(
            f"Measured: **{formatting.fmt_mib(best['peak_cuda_mb'])}** peak CUDA memory allocated by run `{best['run']}` "
            f"(batch {batch}, {best['optimizer']}{', per process' if best['world_size'] > 1 else ''}) against the "
            f"{formatting.fmt_mib(memory['total'])} predicted."
        )
    elif runs:
        best = max(runs, key=lambda r: r["peak_rss_mb"] or 0)
        st.caption(
            f"Measured on the CPU: {formatting.fmt_mib(best['peak_rss_mb'])} peak process memory in run `{best['run']}` "
            f"(batch {batch}; includes the Python and torch runtime, so it is not comparable with the GPU prediction)."
        )


def compare_table(name_a: str, a, name_b: str, b) -> pd.DataFrame:
    """Both models' figures side by side, each in its own unit as the metrics above show it, and B / A."""
    rows = (
        ("parameters", lambda t, m: t.total_params, formatting.fmt_count),
        ("MACs / image", lambda t, m: t.total_macs, formatting.fmt_si),
        ("model size (fp32)", lambda t, m: t.model_size_mb, formatting.fmt_mib),
        ("activations / image", lambda t, m: t.activation_mb_per_image, formatting.fmt_mib),
        ("training memory (GPU)", lambda t, m: m["total"], formatting.fmt_mib),
    )
    return pd.DataFrame({
        "": [label for label, _, _ in rows],
        name_a: [fmt(value(*a)) for _, value, fmt in rows],
        name_b: [fmt(value(*b)) for _, value, fmt in rows],
        "B / A": [value(*b) / value(*a) for _, value, _ in rows],
    })


def show_metrics(total, memory, columns: int = 5) -> None:
    cols = st.columns(columns)
    items = [
        ("Parameters", formatting.fmt_count(total.total_params), None),
        ("MACs / image", formatting.fmt_si(total.total_macs), f"{formatting.fmt_count(total.total_macs)} multiply-accumulates"),
        ("Model size (fp32)", formatting.fmt_mib(total.model_size_mb), None),
        ("Activations / image", formatting.fmt_mib(total.activation_mb_per_image), "what autograd saves for the backward pass, fp32"),
        ("Training memory (GPU)", formatting.fmt_mib(memory["total"]), memory_help(memory)),
    ]
    for i, (label, value, help_text) in enumerate(items):
        with cols[i % columns]:
            st.metric(label, value, help=help_text)


# Column headers and formats of the group, layer and block tables (counts with thousands separators).
TABLE_COLUMNS = {
    "in_channels": st.column_config.NumberColumn("in ch"),
    "out_channels": st.column_config.NumberColumn("out ch"),
    "output_shape": st.column_config.TextColumn("output"),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "macs": st.column_config.NumberColumn("MACs", format="localized"),
}


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """A layer or block table as shown: the stem and head, in no block, read "—" there (not None)."""
    if "block" not in table.columns:
        return table
    return table.assign(block=["—" if pd.isna(b) else str(int(b)) for b in table["block"]])


def tables(table: pd.DataFrame) -> None:
    groups = group_table(table)
    st.dataframe(
        groups,
        hide_index=True,
        column_config={
            **TABLE_COLUMNS,
            "params_pct": st.column_config.NumberColumn("params %", format="%.1f"),
            "macs_pct": st.column_config.NumberColumn("MACs %", format="%.1f"),
        },
    )
    layers_tab, blocks_tab = st.tabs(["Layers", "Blocks"])
    with layers_tab:
        st.dataframe(readable(table.drop(columns=["out_c", "out_h", "out_w"])), hide_index=True, height=360,
                     column_config=TABLE_COLUMNS)
    with blocks_tab:
        st.dataframe(readable(block_table(table)), hide_index=True, height=300, column_config=TABLE_COLUMNS)


st.title("Architecture")
st.caption(
    "A WRN-d-k has 3 groups of N pre-activation basic blocks (d = 6N+4); group widths are 16k, 32k, 64k. "
    "Everything below updates as you change the controls."
)

with st.container(border=True):
    s1, s2, s3, s4, s5 = st.columns([1, 1, 1, 1.3, 0.8])
    s1.number_input("classes", step=1, key="arch_classes")
    s2.number_input("image size (px)", step=1, key="arch_image_size")
    s3.number_input("batch size", step=1, key="arch_batch_size", help="for the memory estimate")
    s4.selectbox(
        "optimizer", OPTIMIZERS, format_func=formatting.OPTIMIZER_LABELS.get, key="arch_optimizer", help="for the memory estimate"
    )
    s5.checkbox("AMP", key="arch_amp", help="bf16/fp16 activations (halves activation memory)")
# On its own line, so its label is never cut short.
st.toggle("Compare two configs", key="arch_compare", on_change=start_compare,
          help="A starts as the model set here; B as the paper's WRN-28-10")

if not st.session_state["arch_compare"]:
    with st.container(border=True):
        config = model_controls("arch_")
    if config is not None:
        result = analyse(config)
        if result is not None:
            table, total, memory = result
            st.markdown(describe(config))
            show_metrics(total, memory)
            show_measured(config, memory)
            st.markdown("**Feature-map width per layer** — the width jumps at the first block of each group")
            st.plotly_chart(width_figure(table), key="arch_width_chart")
            tables(table)
else:
    left, right = st.columns(2)
    configs: list[WRNConfig | None] = []
    for column, prefix, title in ((left, "arch_a_", "Config A"), (right, "arch_b_", "Config B")):
        with column:
            with st.container(border=True):
                configs.append(model_controls(prefix, title))
    results = []
    for column, config in zip((left, right), configs):
        with column:
            result = analyse(config) if config is not None else None
            results.append(result)
            if result is not None:
                table, total, memory = result
                st.markdown(describe(config))
                show_metrics(total, memory, columns=2)
    if all(r is not None for r in results):
        (table_a, total_a, memory_a), (table_b, total_b, memory_b) = results
        name_a, name_b = configs[0].name, configs[1].name
        if name_a == name_b:
            name_b = f"{name_b} (B)"
        st.markdown("**Feature-map width per layer** — both configs overlaid")
        st.plotly_chart(width_figure([(name_a, table_a), (name_b, table_b)]), key="arch_width_compare")
        st.dataframe(compare_table(name_a, (total_a, memory_a), name_b, (total_b, memory_b)), hide_index=True,
                     column_config={"B / A": st.column_config.NumberColumn("B / A", format="%.2f×")})
        tab_a, tab_b = st.tabs([f"A: {name_a}", f"B: {name_b}"])
        with tab_a:
            tables(table_a)
        with tab_b:
            tables(table_b)
