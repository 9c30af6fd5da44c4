"""Train page: a run form (presets fill it), Launch, and a live view of the watched run."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

DASHBOARD_DIR = str(Path(__file__).resolve().parent.parent / "dashboard")
if DASHBOARD_DIR not in sys.path:
    sys.path.insert(0, DASHBOARD_DIR)

import lab_ui  # noqa: E402

from wrn_core.config import (  # noqa: E402
    DATASETS,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    DEVICES,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    WRNConfig,
)
from wrn_core.data import DEFAULT_DATA_DIR, DataError, download_cifar  # noqa: E402
from wrn_core.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from wrn_core.runstore import ACTIVE_STATUSES, RunStoreError  # noqa: E402

F = "train_f_"  # prefix of the form's value widgets (kept across page switches)


def config_to_form(config: TrainConfig) -> dict:
    """Widget values (by key) for a TrainConfig; 0 means 'all' / 'native' for optional sizes."""
    return {
        F + "dataset": config.dataset,
        F + "data_dir": config.data_dir or (DEFAULT_DATA_DIR if config.dataset != "folder" else ""),
        F + "synthetic_train": config.synthetic_train,
        F + "synthetic_test": config.synthetic_test,
        F + "subset_train": config.subset_train or 0,
        F + "subset_test": config.subset_test or 0,
        F + "image_size": config.image_size or 0,
        F + "n": config.model.blocks,
        F + "k": config.model.widen_factor,
        F + "dropout": config.model.dropout,
        F + "optimizer": config.optimizer,
        F + "lr": float(config.effective_lr),
        F + "momentum": float(config.momentum),
        F + "weight_decay": float(config.effective_weight_decay),
        F + "schedule": config.schedule,
        F + "warmup_epochs": float(config.warmup_epochs),
        F + "epochs": config.epochs,
        F + "batch_size": config.batch_size,
        F + "label_smoothing": float(config.label_smoothing),
        F + "augment": config.augment,
        F + "device": config.device,
        F + "seed": config.seed,
        F + "log_every": config.log_every,
        F + "compile": config.compile,
        F + "eval_batch_size": config.eval_batch_size,
    }


def form_to_config() -> TrainConfig:
    """Build the TrainConfig from the form; raises ConfigError with a one-line message."""
    s = st.session_state
    dataset = s[F + "dataset"]
    data_dir = (s[F + "data_dir"] or "").strip() or None
    model = WRNConfig.from_blocks(int(s[F + "n"]), int(s[F + "k"]), dropout=float(s[F + "dropout"]))
    return TrainConfig(
        model=model,
        dataset=dataset,
        data_dir=None if dataset == "synthetic" else data_dir,
        subset_train=int(s[F + "subset_train"]) or None,
        subset_test=int(s[F + "subset_test"]) or None,
        image_size=(int(s[F + "image_size"]) or None) if dataset == "folder" else None,
        synthetic_train=int(s[F + "synthetic_train"]),
        synthetic_test=int(s[F + "synthetic_test"]),
        optimizer=s[F + "optimizer"],
        lr=float(s[F + "lr"]),
        momentum=float(s[F + "momentum"]),
        weight_decay=float(s[F + "weight_decay"]),
        schedule=s[F + "schedule"],
        warmup_epochs=float(s[F + "warmup_epochs"]),
        epochs=int(s[F + "epochs"]),
        batch_size=int(s[F + "batch_size"]),
        label_smoothing=float(s[F + "label_smoothing"]),
        augment=bool(s[F + "augment"]),
        device=s[F + "device"],
        seed=int(s[F + "seed"]),
        log_every=int(s[F + "log_every"]),
        compile=bool(s[F + "compile"]),
        eval_batch_size=int(s[F + "eval_batch_size"]),
    )


def apply_preset() -> None:
    """on_change of the preset box: fill every form field from the preset."""
    preset = PRESETS.get(st.session_state[F + "preset"])
    if preset is not None:
        st.session_state.update(config_to_form(preset))


def optimizer_changed() -> None:
    """Switching optimizer resets lr and weight decay to that optimizer's usual values."""
    optimizer = st.session_state[F + "optimizer"]
    st.session_state[F + "lr"] = float(DEFAULT_LR[optimizer])
    st.session_state[F + "weight_decay"] = float(DEFAULT_WEIGHT_DECAY[optimizer])


def launch() -> None:
    """on_click of Launch: submit to the job manager; errors are kept for one line of st.error."""
    st.session_state.pop("train_launch_error", None)
    try:
        config = form_to_config()
        name = (st.session_state[F + "name"] or "").strip() or None
        name = lab_ui.get_job_manager().submit(config, name)
    except (ConfigError, RunStoreError, DataError) as exc:
        st.session_state["train_launch_error"] = lab_ui.one_line(exc)
        return
    st.session_state["train_run"] = name
    st.session_state["train_launched"] = name


def download() -> None:
    dataset = st.session_state[F + "dataset"]
    data_dir = (st.session_state[F + "data_dir"] or "").strip() or DEFAULT_DATA_DIR
    st.session_state.pop("train_download_msg", None)
    try:
        path = download_cifar(dataset, data_dir)
    except DataError as exc:
        st.session_state["train_download_msg"] = ("error", lab_ui.one_line(exc))
        return
    st.session_state["train_download_msg"] = ("ok", f"{lab_ui.DATASET_LABELS[dataset]} is ready in {path}")


# Defaults: the preset everyone can run (tiny model, synthetic data) fills the form once.
if F + "preset" not in st.session_state:
    st.session_state[F + "preset"] = DEFAULT_PRESET
    st.session_state[F + "name"] = ""
    st.session_state.update(config_to_form(PRESETS[DEFAULT_PRESET]))
for key, value in config_to_form(PRESETS[DEFAULT_PRESET]).items():
    st.session_state.setdefault(key, value)

st.title("Train")
form_col, live_col = st.columns([1, 2], gap="large")

with form_col:
    st.selectbox("Preset", list(PRESETS), key=F + "preset", on_change=apply_preset, help="fills the form below")
    with st.container(border=True):
        st.markdown("**Data**")
        st.selectbox("Dataset", DATASETS, format_func=lab_ui.DATASET_LABELS.get, key=F + "dataset")
        dataset = st.session_state[F + "dataset"]
        if dataset == "synthetic":
            c1, c2 = st.columns(2)
            c1.number_input("synthetic train images", min_value=10, step=100, key=F + "synthetic_train")
            c2.number_input("synthetic test images", min_value=10, step=100, key=F + "synthetic_test")
        elif dataset in ("cifar10", "cifar100"):
            st.text_input("data directory", key=F + "data_dir", help="where the extracted CIFAR files live")
            st.button(f"Download {lab_ui.DATASET_LABELS[dataset]}", key="train_download", on_click=download)
            message = st.session_state.get("train_download_msg")
            if message is not None:
                (st.error if message[0] == "error" else st.success)(message[1])
        else:
            st.text_input(
                "image folder", key=F + "data_dir", placeholder="/path/to/root with train/<class>/ and test/<class>/"
            )
            st.number_input("resize to (px, 0 = keep)", min_value=0, step=8, key=F + "image_size")
        c1, c2 = st.columns(2)
        c1.number_input("train subset (0 = all)", min_value=0, step=100, key=F + "subset_train")
        c2.number_input("test subset (0 = all)", min_value=0, step=100, key=F + "subset_test")
    with st.container(border=True):
        st.markdown("**Model**")
        c1, c2, c3 = st.columns(3)
        c1.number_input("N", min_value=1, step=1, key=F + "n", help="blocks per group; depth = 6N+4")
        c2.number_input("k", min_value=1, step=1, key=F + "k", help="widen factor; group widths 16k, 32k, 64k")
        c3.number_input("dropout", min_value=0.0, max_value=0.95, step=0.05, format="%.2f", key=F + "dropout")
        st.caption(f"WRN-{6 * int(st.session_state[F + 'n']) + 4}-{int(st.session_state[F + 'k'])}")
    with st.container(border=True):
        st.markdown("**Optimisation**")
        st.selectbox(
            "Optimizer", OPTIMIZERS, format_func=lab_ui.OPTIMIZER_LABELS.get, key=F + "optimizer", on_change=optimizer_changed
        )
        c1, c2 = st.columns(2)
        c1.number_input("learning rate", min_value=0.0, step=0.01, format="%.5f", key=F + "lr")
        c2.number_input("weight decay", min_value=0.0, step=1e-4, format="%.5f", key=F + "weight_decay")
        c1, c2 = st.columns(2)
        c1.selectbox("Schedule", SCHEDULES, format_func=lab_ui.SCHEDULE_LABELS.get, key=F + "schedule")
        c2.number_input("warm-up epochs", min_value=0.0, step=0.5, key=F + "warmup_epochs")
        c1, c2 = st.columns(2)
        c1.number_input("epochs", min_value=1, step=1, key=F + "epochs")
        c2.number_input("batch size", min_value=1, step=16, key=F + "batch_size")
        c1, c2 = st.columns(2)
        c1.number_input("momentum (β1)", min_value=0.0, max_value=0.999, step=0.01, key=F + "momentum")
        c2.number_input("label smoothing", min_value=0.0, max_value=0.99, step=0.05, key=F + "label_smoothing")
        st.checkbox("augmentation (pad-crop + flip)", key=F + "augment")
    with st.container(border=True):
        st.markdown("**Run**")
        c1, c2 = st.columns(2)
        c1.selectbox("Device", DEVICES, format_func=lab_ui.DEVICE_LABELS.get, key=F + "device")
        c2.number_input("seed", min_value=0, step=1, key=F + "seed")
        c1, c2 = st.columns(2)
        c1.number_input("log every (steps)", min_value=1, step=1, key=F + "log_every")
        c2.number_input("eval batch size", min_value=1, step=64, key=F + "eval_batch_size")
        st.checkbox("torch.compile (CUDA)", key=F + "compile")
        st.text_input("run name (optional)", key=F + "name", placeholder="auto: wrn-10-1-synthetic-<time>")
    st.button("Launch", type="primary", key="train_launch", on_click=launch, width="stretch")
    if st.session_state.get("train_launch_error"):
        st.error(st.session_state["train_launch_error"])
    elif st.session_state.get("train_launched"):
        st.success(f"Launched {st.session_state['train_launched']}")


def default_run(manager, names_by_recency: list[str]) -> str | None:
    """The run to watch when none is chosen: the running job, else the most recent run."""
    for job in manager.jobs():
        if job.state == "running":
            return job.name
    return names_by_recency[0] if names_by_recency else None


def stop_run(name: str) -> None:
    lab_ui.get_job_manager().stop(name)


def resume_run(name: str, target: int | None) -> None:
    st.session_state.pop("train_resume_error", None)
    try:
        lab_ui.get_job_manager().resume(name, target)
    except (ConfigError, RunStoreError, DataError) as exc:
        st.session_state["train_resume_error"] = lab_ui.one_line(exc)


@st.fragment(run_every=1.0)
def live_view() -> None:
    """Polls the job manager and the run store once a second; cheap when nothing runs."""
    manager = lab_ui.get_job_manager()
    names = lab_ui.recent_run_names(manager.store)
    if not names:
        st.info("No runs yet. Pick a preset (the Quick CPU demo runs anywhere) and press **Launch**.")
        return
    watched = st.session_state.get("train_run")
    if watched not in names:
        watched = default_run(manager, names)
    watched = st.selectbox("Watching run", names, index=names.index(watched), key=None)
    st.session_state["train_run"] = watched
    try:
        run = manager.store.get(watched)
    except RunStoreError as exc:
        st.error(lab_ui.one_line(exc))
        return
    status = run.read_status()
    state = status.get("status", "failed")
    progress = manager.progress(watched) if manager.is_active(watched) else None
    active = state in ACTIVE_STATUSES

    epochs = int(status.get("epochs") or 0)
    if progress is not None and progress.total_steps:
        fraction = min(1.0, progress.step / progress.total_steps)
        text = (
            f"{progress.phase} · epoch {progress.epoch}/{progress.epochs} · "
            f"step {progress.step}/{progress.total_steps} · {progress.device}"
        )
    else:
        done = int(status.get("epoch") or 0)
        fraction = min(1.0, done / epochs) if epochs else 0.0
        text = f"{state} · epoch {done}/{epochs}"
        if active and status.get("message"):
            text += f" · {status['message']}"  # e.g. "loading data" before the first step
    st.progress(fraction, text=text)

    m1, m2, m3, m4, m5 = st.columns(5)
    if progress is not None:
        m1.metric("Epoch", f"{progress.epoch}/{progress.epochs}")
        m2.metric("ETA", lab_ui.fmt_seconds(progress.eta_s))
        m3.metric("Images / s", f"{progress.images_per_s:,.0f}" if progress.images_per_s else "—")
        m4.metric("Elapsed", lab_ui.fmt_seconds(progress.elapsed_s))
    else:
        m1.metric("Epoch", f"{int(status.get('epoch') or 0)}/{epochs}")
        m2.metric("ETA", "—")
        m3.metric("Images seen", lab_ui.fmt_count(status.get("images_seen")))
        m4.metric("Training time", lab_ui.fmt_seconds(status.get("train_seconds")))
    m5.metric("Best test acc", lab_ui.fmt_pct(status.get("best_test_acc")))

    if state in ("failed", "diverged", "interrupted"):
        lab_ui.show_status(status)
    else:
        message = status.get("message") or ""
        st.caption(f"Status: **{state}**" + (f" — {message}" if message else ""))
    lab_ui.show_health(run, active)

    c1, c2, c3 = st.columns([1, 1, 2])
    if active:
        c1.button("Stop", key="train_stop", on_click=stop_run, args=(watched,), help="stops within one batch; a checkpoint is kept")
    else:
        extra = c2.number_input("extra epochs", min_value=0, step=1, value=0, key="train_resume_extra")
        target = int(status.get("epochs") or 0) + int(extra) if extra else None
        resumable = state in ("stopped", "interrupted") or (extra and state in ("finished", "diverged", "failed"))
        c1.button(
            "Resume",
            key="train_resume",
            on_click=resume_run,
            args=(watched, target),
            disabled=not resumable,
            help="continue from the last checkpoint (add epochs to extend a finished run)",
        )
    if st.session_state.get("train_resume_error"):
        st.error(st.session_state["train_resume_error"])

    # torch.compile's warm-up is shown, not hidden: while it runs, and what it cost afterwards.
    if progress is not None and progress.phase == "compiling":
        st.info("torch.compile is compiling the model; the first step waits for it.")
    for event in lab_ui.events(lab_ui.read_records(run)):
        st.caption(f"⏱ {event}")

    st.plotly_chart(lab_ui.cached_live_figure(run), key="train_live_chart")

    queued = [job for job in manager.jobs() if job.state == "queued"]
    if queued:
        st.markdown("**Queued**")
        for job in queued:
            st.caption(f"⏸ {job.name} (waiting for {job.device})")


with live_col:
    live_view()
