"""The training-config form shared by the Train and Sweep pages: widgets under one key prefix, to and from a TrainConfig."""

from __future__ import annotations

import streamlit as st

from dashboard import lab_ui
from wrn_core.config import (
    DATASETS,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    WRNConfig,
)
from wrn_core.data import DEFAULT_DATA_DIR, DataError, download_cifar
from wrn_core.presets import DEFAULT_PRESET, PRESETS


def config_to_form(config: TrainConfig, prefix: str) -> dict:
    """Widget values (by key) for a TrainConfig; 0 means 'all' / 'native' for optional sizes."""
    values = {
        "dataset": config.dataset,
        # An image folder starts empty, so its placeholder shows the layout it needs.
        "data_dir": config.data_dir or (DEFAULT_DATA_DIR if config.dataset in ("cifar10", "cifar100") else ""),
        "synthetic_train": config.synthetic_train,
        "synthetic_test": config.synthetic_test,
        "subset_train": config.subset_train or 0,
        "subset_test": config.subset_test or 0,
        "image_size": config.image_size or 0,
        "n": config.model.blocks,
        "k": config.model.widen_factor,
        "dropout": config.model.dropout,
        "optimizer": config.optimizer,
        "lr": float(config.effective_lr),
        "momentum": float(config.momentum),
        "weight_decay": float(config.effective_weight_decay),
        "schedule": config.schedule,
        "warmup_epochs": float(config.warmup_epochs),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "label_smoothing": float(config.label_smoothing),
        "augment": config.augment,
        "device": config.device if config.device in lab_ui.device_choices() else "auto",
        "seed": config.seed,
        "log_every": config.log_every,
        "compile": config.compile,
        "eval_batch_size": config.eval_batch_size,
    }
    return {prefix + key: value for key, value in values.items()}


def form_to_config(prefix: str) -> tuple[TrainConfig, int]:
    """(TrainConfig, processes) from the form; raises ConfigError with a one-line message.

    The device box's "all GPUs (DDP)" is device cuda on every GPU: processes > 1.
    """
    s = st.session_state
    dataset = s[prefix + "dataset"]
    data_dir = (s[prefix + "data_dir"] or "").strip() or None
    device = s[prefix + "device"]
    nproc = lab_ui.gpu_count() if device == lab_ui.DDP_CHOICE else 1
    model = WRNConfig.from_blocks(int(s[prefix + "n"]), int(s[prefix + "k"]), dropout=float(s[prefix + "dropout"]))
    # The synthetic image counts only for the synthetic dataset: another run keeps the defaults, which
    # its reproduce command (command_for) leaves out.
    synthetic = ({"synthetic_train": int(s[prefix + "synthetic_train"]), "synthetic_test": int(s[prefix + "synthetic_test"])}
                 if dataset == "synthetic" else {})
    config = TrainConfig(
        model=model,
        dataset=dataset,
        data_dir=None if dataset == "synthetic" else data_dir,
        subset_train=int(s[prefix + "subset_train"]) or None,
        subset_test=int(s[prefix + "subset_test"]) or None,
        image_size=(int(s[prefix + "image_size"]) or None) if dataset == "folder" else None,
        **synthetic,
        optimizer=s[prefix + "optimizer"],
        lr=float(s[prefix + "lr"]),
        momentum=float(s[prefix + "momentum"]),
        weight_decay=float(s[prefix + "weight_decay"]),
        schedule=s[prefix + "schedule"],
        warmup_epochs=float(s[prefix + "warmup_epochs"]),
        epochs=int(s[prefix + "epochs"]),
        batch_size=int(s[prefix + "batch_size"]),
        label_smoothing=float(s[prefix + "label_smoothing"]),
        augment=bool(s[prefix + "augment"]),
        device="cuda" if device == lab_ui.DDP_CHOICE else device,
        seed=int(s[prefix + "seed"]),
        log_every=int(s[prefix + "log_every"]),
        compile=bool(s[prefix + "compile"]),
        eval_batch_size=int(s[prefix + "eval_batch_size"]),
        world_size=nproc,
    )
    return config, nproc


def init(prefix: str) -> None:
    """Fill the form from the default preset the first time the page is shown."""
    if prefix + "preset" not in st.session_state:
        st.session_state[prefix + "preset"] = DEFAULT_PRESET
        st.session_state.update(config_to_form(PRESETS[DEFAULT_PRESET], prefix))
    for key, value in config_to_form(PRESETS[DEFAULT_PRESET], prefix).items():
        st.session_state.setdefault(key, value)
    if st.session_state.get(prefix + "device") not in lab_ui.device_choices():
        st.session_state[prefix + "device"] = "auto"  # a device that went away (another machine, a restart)


def _apply_preset(prefix: str) -> None:
    preset = PRESETS.get(st.session_state[prefix + "preset"])
    if preset is not None:
        st.session_state.update(config_to_form(preset, prefix))


def _optimizer_changed(prefix: str) -> None:
    """Switching optimizer resets lr and weight decay to that optimizer's usual values."""
    optimizer = st.session_state[prefix + "optimizer"]
    st.session_state[prefix + "lr"] = float(DEFAULT_LR[optimizer])
    st.session_state[prefix + "weight_decay"] = float(DEFAULT_WEIGHT_DECAY[optimizer])


def _dataset_changed(prefix: str) -> None:
    """An image folder starts empty (its placeholder explains the layout), not at the CIFAR directory."""
    if st.session_state[prefix + "dataset"] == "folder" and st.session_state.get(prefix + "data_dir") == DEFAULT_DATA_DIR:
        st.session_state[prefix + "data_dir"] = ""


def _download(prefix: str) -> None:
    dataset = st.session_state[prefix + "dataset"]
    data_dir = (st.session_state[prefix + "data_dir"] or "").strip() or DEFAULT_DATA_DIR
    lab_ui.clear_flash(prefix + "download")
    try:
        path = download_cifar(dataset, data_dir)
    except DataError as exc:
        lab_ui.flash(prefix + "download", "error", lab_ui.one_line(exc))
        return
    lab_ui.flash(prefix + "download", "success", f"{lab_ui.DATASET_LABELS[dataset]} is ready in {path}")


def draw(prefix: str, model: bool = True, seed: bool = True) -> None:
    """The form: preset, data, model (optional: a sweep chooses N and k itself), optimisation, run."""
    st.selectbox("Preset", list(PRESETS), key=prefix + "preset", on_change=_apply_preset, args=(prefix,),
                 help="fills the form below")
    with st.container(border=True):
        st.markdown("**Data**")
        st.selectbox("Dataset", DATASETS, format_func=lab_ui.DATASET_LABELS.get, key=prefix + "dataset",
                     on_change=_dataset_changed, args=(prefix,))
        dataset = st.session_state[prefix + "dataset"]
        if dataset == "synthetic":
            c1, c2 = st.columns(2)
            c1.number_input("synthetic train images", min_value=10, step=100, key=prefix + "synthetic_train")
            c2.number_input("synthetic test images", min_value=10, step=100, key=prefix + "synthetic_test")
        elif dataset in ("cifar10", "cifar100"):
            st.text_input("data directory", key=prefix + "data_dir", placeholder=f"{DEFAULT_DATA_DIR} (the default)",
                          help="where the extracted CIFAR files live")
            # Not under the form prefix: a button's state cannot be re-owned by keep_form_state.
            st.button(f"Download {lab_ui.DATASET_LABELS[dataset]}", key=prefix.replace("_f_", "_") + "download",
                      on_click=_download, args=(prefix,))
            lab_ui.show_flash(prefix + "download")
        else:
            st.text_input("image folder", key=prefix + "data_dir",
                          placeholder="/path/to/root with train/<class>/ and test/<class>/")
            st.number_input("resize to (px, 0 = keep)", min_value=0, step=8, key=prefix + "image_size")
        c1, c2 = st.columns(2)
        c1.number_input("train subset (0 = all)", min_value=0, step=100, key=prefix + "subset_train")
        c2.number_input("test subset (0 = all)", min_value=0, step=100, key=prefix + "subset_test")
    if model:
        with st.container(border=True):
            st.markdown("**Model**")
            c1, c2, c3 = st.columns(3)
            c1.number_input("N", min_value=1, step=1, key=prefix + "n", help="blocks per group; depth = 6N+4")
            c2.number_input("k", min_value=1, step=1, key=prefix + "k", help="widen factor; group widths 16k, 32k, 64k")
            c3.number_input("dropout", min_value=0.0, max_value=0.95, step=0.05, format="%.2f", key=prefix + "dropout")
            st.caption(f"WRN-{6 * int(st.session_state[prefix + 'n']) + 4}-{int(st.session_state[prefix + 'k'])}")
    with st.container(border=True):
        st.markdown("**Optimisation**")
        st.selectbox("Optimizer", OPTIMIZERS, format_func=lab_ui.OPTIMIZER_LABELS.get, key=prefix + "optimizer",
                     on_change=_optimizer_changed, args=(prefix,))
        c1, c2 = st.columns(2)
        c1.number_input("learning rate", min_value=0.0, step=0.01, format="%.5f", key=prefix + "lr")
        c2.number_input("weight decay", min_value=0.0, step=1e-4, format="%.5f", key=prefix + "weight_decay")
        c1, c2 = st.columns(2)
        c1.selectbox("Schedule", SCHEDULES, format_func=lab_ui.SCHEDULE_LABELS.get, key=prefix + "schedule")
        c2.number_input("warm-up epochs", min_value=0.0, step=0.5, key=prefix + "warmup_epochs")
        c1, c2 = st.columns(2)
        c1.number_input("epochs", min_value=1, step=1, key=prefix + "epochs")
        c2.number_input("batch size", min_value=1, step=16, key=prefix + "batch_size",
                        help="the global batch: split over the GPUs with DDP")
        c1, c2 = st.columns(2)
        c1.number_input("momentum (β1)", min_value=0.0, max_value=0.999, step=0.01, key=prefix + "momentum")
        c2.number_input("label smoothing", min_value=0.0, max_value=0.99, step=0.05, key=prefix + "label_smoothing")
        st.checkbox("augmentation (pad-crop + flip)", key=prefix + "augment")
    with st.container(border=True):
        st.markdown("**Run**")
        choices = lab_ui.device_choices()
        st.selectbox("Device", list(choices), format_func=choices.get, key=prefix + "device")
        c1, c2, c3 = st.columns(3)
        if seed:
            c1.number_input("seed", min_value=0, step=1, key=prefix + "seed")
        c2.number_input("log every (steps)", min_value=1, step=1, key=prefix + "log_every")
        c3.number_input("eval batch size", min_value=1, step=64, key=prefix + "eval_batch_size")
        st.checkbox("torch.compile (CUDA)", key=prefix + "compile")
