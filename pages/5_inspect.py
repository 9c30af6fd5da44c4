"""Inspect page: a trained run's checkpoint — what it gets wrong, how much of its width it uses, ask it, take it away."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import cached_reads, formatting, jobs, messages, widgets, width_view
from wrn_core.analysis.checkpoint_health import evaluation_findings, mistakes
from wrn_core.errors import DataError
from wrn_core.inspect import FORMATS, MAX_UPLOAD_BYTES, ask, checkpoint_step, evaluate_run, export_bytes, load_network, read_cached, top_classes
from wrn_core.inspect.evaluate import cache_path
from wrn_core.plots.inspect import confusion_figure, per_class_figure, reliability_figure, top_classes_figure, width_use_figure
from wrn_core.store import Run, RunStore, RunStoreError
from wrn_core.store.records import RunStatus

VIEWS = ("Confusions", "Mistakes", "Calibration", "Width use", "Ask the model", "Export")
GALLERY_SIZE = 24  # most confident mistakes shown
GALLERY_COLUMNS = 6
ANY = "any"
ERRORS = (RunStoreError, DataError, ValueError, OSError)  # one line each: corrupt files, moved data, bad choices


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_evaluation(path: str, tta: str, step: int, stamp: int) -> dict[str, Any] | None:
    """The evaluation cache file's contents for this step (stamp: the file's mtime, so a rewrite is read again)."""
    return read_cached(Run(Path(path)), "test", tta, step)


@st.cache_resource(show_spinner=False, max_entries=4)
def _network(path: str, step: int):
    """(Network, Dataset) of a run's checkpoint at this step: shared by every session, never mutated."""
    return load_network(Run(Path(path)))


def _stamp(run: Run, tta: str) -> int:
    try:
        return cache_path(run, "test", tta).stat().st_mtime_ns
    except OSError:
        return 0


def evaluation_of(run: Run, tta: str) -> dict[str, Any]:
    """The cached evaluation when current, else evaluated now with a progress bar (and cached on disk)."""
    step = checkpoint_step(run)
    cached = _cached_evaluation(str(run.path), tta, step, _stamp(run, tta))
    if cached is not None:
        return cached
    bar = st.progress(0.0, text=f"Evaluating {run.name}'s checkpoint…")
    evaluation = evaluate_run(run, "test", tta, device="auto",
                              progress=lambda done, total: bar.progress(done / max(1, total), text=f"Evaluating: {done:,}/{total:,} images"))
    bar.empty()
    return evaluation


def runs_with_checkpoints(store: RunStore) -> list[str]:
    """Run names, newest first, that have a checkpoint to inspect."""
    return [name for name in cached_reads.recent_run_names(store) if store.get(name).checkpoint_path.exists()]


def headline(run: Run, ev: dict[str, Any]) -> None:
    written, _ = run.read_status_file()  # as written: the lock of a training run is not touched
    status = RunStatus.from_dict(written) if written is not None else None
    cols = st.columns(4)
    cols[0].metric("test accuracy", formatting.fmt_pct(ev["accuracy"]), help=f"{ev['images']:,} test images")
    cols[1].metric("with flip TTA", formatting.fmt_pct(ev["tta_accuracy"]) if "tta_accuracy" in ev else "—",
                   delta=f"{(ev['tta_accuracy'] - ev['accuracy']) * 100:+.2f} pts" if "tta_accuracy" in ev else None)
    cols[2].metric("ECE", f"{ev['ece']:.3f}", help="expected calibration error, 15 equal-width confidence bins")
    cols[3].metric("epoch", f"{ev['epoch']}", help=f"the checkpoint's epoch (step {ev['step']:,})")
    if status is not None and status.active:
        st.info(f"{formatting.plain(run.name)} is {status.status}: this is its latest checkpoint, epoch {ev['epoch']}.")
    widgets.show_findings(evaluation_findings(ev), healthy="Predictions are spread over the classes")


def show_confusions(ev: dict[str, Any]) -> None:
    normalise = st.toggle("normalise per true class", key="inspect_normalise")
    st.plotly_chart(confusion_figure(ev, normalise), width="stretch", key="inspect_confusion")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Precision and recall per class**")
        st.plotly_chart(per_class_figure(ev), width="stretch", key="inspect_per_class")
    with right:
        st.markdown("**Top confusions**")
        if ev["top_confusions"]:
            st.table([{"true": c["true"], "predicted": c["pred"], "images": c["count"]} for c in ev["top_confusions"]])
        else:
            st.caption("No mistakes.")


def _top_table(top: list[tuple[str, float]]) -> None:
    st.table([{"class": name, "probability": f"{p:.1%}"} for name, p in top])


def show_mistakes(run: Run, ev: dict[str, Any]) -> None:
    classes = list(ev["classes"])
    c1, c2 = st.columns(2)
    true_class = c1.selectbox("true class", [ANY] + classes, key="inspect_true")
    pred_class = c2.selectbox("predicted class", [ANY] + classes, key="inspect_pred")
    frame = mistakes(ev, None if true_class == ANY else true_class, None if pred_class == ANY else pred_class)
    st.caption(f"{len(frame):,} mistakes; the {min(len(frame), GALLERY_SIZE)} most confident shown.")
    if frame.empty:
        return
    network, data = _network(str(run.path), ev["step"])
    shown = frame.head(GALLERY_SIZE)
    for start in range(0, len(shown), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, row in zip(cols, shown.iloc[start : start + GALLERY_COLUMNS].itertuples()):
            image = data.test_images[int(row.index)].permute(1, 2, 0).numpy()
            col.image(image, width=96, caption=f"#{row.index}: {row.true} → {row.predicted} ({row.confidence:.0%})")
    picked = st.selectbox("Ask the model about test image", shown["index"].tolist(), key="inspect_pick",
                          format_func=lambda i: f"#{i}")
    _top_table(top_classes(network, data.test_images[int(picked)].unsqueeze(0))[0])


def show_width(store: RunStore, run: Run, ev: dict[str, Any], names: list[str], tta: str) -> None:
    from wrn_core.model.tables import layer_table

    others = [n for n in names if n != run.name]
    other = st.selectbox("beside it (e.g. k = 2 against k = 8)", ["none"] + others, key="inspect_other")
    pairs = [(run.name, layer_table(run.read_config().model, ev["image_shape"][1]), ev["width_use"])]
    if other != "none":
        second = store.get(other)
        other_ev = evaluation_of(second, tta)
        pairs.append((other, layer_table(second.read_config().model, other_ev["image_shape"][1]), other_ev["width_use"]))
    end, over = st.columns(2, gap="medium")
    with end:
        st.markdown(f"**At the checkpoint (epoch {ev['epoch']})**")
        st.plotly_chart(width_use_figure(pairs), width="stretch", key="inspect_width")
        st.caption("Effective width: the participation ratio (Σe)²/Σe² of each channel's mean squared activation — how "
                   "many channels carry the signal. Dead: zero at ≥ 99% of positions over the test images.")
    with over:
        st.markdown(f"**Over training: {formatting.plain(run.name)}, epoch by epoch**")
        width_view.width_map_view(run, run.read_config().epochs, key="inspect_width_map")
    st.dataframe(ev["width_groups"], hide_index=True, column_config={
        "effective_width": st.column_config.NumberColumn(format="%.1f"),
        "active_fraction": st.column_config.NumberColumn("active", format="percent", help="channels not dead"),
        "effective_fraction": st.column_config.NumberColumn("effective / allocated", format="percent",
                                                            help="the mean over the group's ReLUs"),
    })


def show_ask(run: Run, ev: dict[str, Any]) -> None:
    network, _ = _network(str(run.path), ev["step"])
    _, h, w = network.image_shape
    uploads = st.file_uploader(f"PNG or JPEG images (made RGB and {w}×{h})", type=["png", "jpg", "jpeg"],
                               accept_multiple_files=True, key="inspect_upload",
                               max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024) + 1)
    if not uploads:
        return
    for (name, answer), upload in zip(ask(network, [(u.name, u.getvalue()) for u in uploads]), uploads):
        if isinstance(answer, str):
            messages.show_error(answer)
            continue
        left, right = st.columns([1, 3])
        left.image(upload.getvalue(), caption=name, width=128)
        with right:
            _top_table(answer)
            st.plotly_chart(top_classes_figure(answer), width="stretch", key=f"inspect_top_{name}")


def show_export(run: Run, ev: dict[str, Any]) -> None:
    network, _ = _network(str(run.path), ev["step"])
    st.caption("Each takes float32 images in [0, 1], N×3×H×W (any batch), normalises inside and returns logits; "
               "class names, config and normalisation travel in the file's metadata.")
    onnx_ready = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))
    cols = st.columns(len(FORMATS))
    for col, (fmt, ext) in zip(cols, FORMATS.items()):
        if fmt == "onnx" and not onnx_ready:
            col.caption("ONNX needs: pip install onnx onnxscript onnxruntime")
            continue
        col.download_button(f"Download {fmt}", data=lambda fmt=fmt: export_bytes(network, fmt),
                            file_name=f"{run.name}{ext}", key=f"inspect_download_{fmt}", on_click="ignore")


st.title("Inspect")
store = RunStore(jobs.runs_dir())
names = runs_with_checkpoints(store)
if not names:
    st.info("No run has a checkpoint yet: a run writes one at the end of its first epoch.")
    st.stop()
top = st.columns([3, 1])
name = top[0].selectbox("run", names, key="inspect_run", help="newest first; only runs with a checkpoint")
tta = "flip" if top[1].toggle("flip TTA", key="inspect_tta", help="average each image's logits with its mirror's") else "none"
run = store.get(name)
try:
    evaluation = evaluation_of(run, tta)
except ERRORS as exc:
    messages.show_error(exc)
    st.stop()
headline(run, evaluation)
view = st.segmented_control("view", VIEWS, default=VIEWS[0], key="inspect_view", label_visibility="collapsed") or VIEWS[0]
try:
    if view == "Confusions":
        show_confusions(evaluation)
    elif view == "Mistakes":
        show_mistakes(run, evaluation)
    elif view == "Calibration":
        st.plotly_chart(reliability_figure(evaluation), width="stretch", key="inspect_reliability")
    elif view == "Width use":
        show_width(store, run, evaluation, names, tta)
    elif view == "Ask the model":
        show_ask(run, evaluation)
    else:
        show_export(run, evaluation)
except ERRORS as exc:
    messages.show_error(exc)
