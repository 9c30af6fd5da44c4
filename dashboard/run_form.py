"""The training-config form shared by the Train and Sweep pages: widgets under one key prefix, to and from a TrainConfig."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import devices, formatting, launch_checks, messages
from wrn_core.config import (
    DATASETS,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    WRNConfig,
)
from wrn_core.data import DEFAULT_DATA_DIR, download_cifar
from wrn_core.errors import DataError, one_line
from wrn_core.presets import DEFAULT_PRESET, PRESETS

ADAM_OPTIMIZERS = ("adam", "adamw")


def default_data_dir(dataset: str) -> str:
    """The data_dir box's value for a dataset not yet given a path: CIFAR's download directory; an image folder
    starts empty, so its placeholder shows the layout it needs."""
    return DEFAULT_DATA_DIR if dataset in ("cifar10", "cifar100") else ""


def config_to_form(config: TrainConfig, prefix: str) -> dict:
    """Widget values (by key) for a TrainConfig; 0 means 'all' / 'native' for optional sizes."""
    values = {
        "dataset": config.dataset,
        "data_dir": config.data_dir or default_data_dir(config.dataset),
        "data_dir_of": config.dataset,  # whose path the data_dir box holds (each dataset keeps its own)
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
        "device": config.device if config.device in devices.device_choices() else "auto",
        "seed": config.seed,
        "log_every": config.log_every,
        "width_every": config.width_every,
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
    nproc = devices.gpu_count() if device == devices.DDP_CHOICE else 1
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
        device="cuda" if device == devices.DDP_CHOICE else device,
        seed=int(s[prefix + "seed"]),
        log_every=int(s[prefix + "log_every"]),
        width_every=int(s[prefix + "width_every"]),
        compile=bool(s[prefix + "compile"]),
        eval_batch_size=int(s[prefix + "eval_batch_size"]),
        world_size=nproc,
    )
    return config, nproc


def signature(prefix: str, *keys: str) -> str:
    """The form's values (and those of `keys`) as one string: a message about the form as it was is shown
    only while this is unchanged (messages.flash about=…), so it goes once the user changes what it was about."""
    s = st.session_state
    values = {key: s[key] for key in s.keys()
              if isinstance(key, str) and (key.startswith(prefix) or key in keys)
              and isinstance(s[key], (bool, int, float, str, type(None), list, tuple))}  # lists: multiselects
    return json.dumps(values, sort_keys=True, default=str)


def init(prefix: str) -> None:
    """Fill the form from the default preset the first time the page is shown."""
    if prefix + "preset" not in st.session_state:
        st.session_state[prefix + "preset"] = DEFAULT_PRESET
        st.session_state.update(config_to_form(PRESETS[DEFAULT_PRESET], prefix))
    for key, value in config_to_form(PRESETS[DEFAULT_PRESET], prefix).items():
        st.session_state.setdefault(key, value)
    if st.session_state.get(prefix + "device") not in devices.device_choices():
        st.session_state[prefix + "device"] = "auto"  # a device that went away (another machine, a restart)


def _keep_data_dir(prefix: str) -> dict[str, str]:
    """Remember the box's path for the dataset it belongs to; returns every dataset's remembered path."""
    s = st.session_state
    paths = s.setdefault(prefix + "data_dirs", {})  # dataset -> path; not a widget, so it outlives page switches
    owner = s.get(prefix + "data_dir_of")
    if owner:
        paths[owner] = s.get(prefix + "data_dir") or ""
    return paths


def _apply_preset(prefix: str) -> None:
    """Fill the form from the preset; a preset that names no data directory keeps the one given for its dataset."""
    preset = PRESETS.get(st.session_state[prefix + "preset"])
    if preset is not None:
        paths = _keep_data_dir(prefix)
        st.session_state.update(config_to_form(preset, prefix))
        if preset.data_dir is None and paths.get(preset.dataset):
            st.session_state[prefix + "data_dir"] = paths[preset.dataset]


def _optimizer_changed(prefix: str) -> None:
    """Switching optimizer resets lr and weight decay to that optimizer's usual values."""
    optimizer = st.session_state[prefix + "optimizer"]
    st.session_state[prefix + "lr"] = float(DEFAULT_LR[optimizer])
    st.session_state[prefix + "weight_decay"] = float(DEFAULT_WEIGHT_DECAY[optimizer])


def _dataset_changed(prefix: str) -> None:
    """Each dataset keeps its own path: the box's path is kept for the dataset it was typed for, and the new
    dataset's own comes back (its default the first time), so an image folder never becomes CIFAR's directory."""
    s = st.session_state
    paths = _keep_data_dir(prefix)
    dataset = s[prefix + "dataset"]
    s[prefix + "data_dir"] = paths.get(dataset, default_data_dir(dataset))
    s[prefix + "data_dir_of"] = dataset


def _download_about(prefix: str) -> str:
    """What a download message is about: the dataset and directory; it goes when either changes."""
    s = st.session_state
    return json.dumps([s[prefix + "dataset"], (s.get(prefix + "data_dir") or "").strip() or DEFAULT_DATA_DIR])


def _download(prefix: str) -> None:
    dataset = st.session_state[prefix + "dataset"]
    data_dir = (st.session_state[prefix + "data_dir"] or "").strip() or DEFAULT_DATA_DIR
    about = _download_about(prefix)
    messages.clear_flash(prefix + "download")
    try:
        path = download_cifar(dataset, data_dir)
    except DataError as exc:
        messages.flash(prefix + "download", messages.ERROR, one_line(exc), about=about)
        return
    finally:
        launch_checks.forget_launch_problems()  # "not found" goes at once once the files are there
    messages.flash(prefix + "download", messages.SUCCESS, f"{formatting.DATASET_LABELS[dataset]} is ready in {path}", about=about)


def draw(prefix: str, model: bool = True, seed: bool = True) -> None:
    """The form: preset, data, model (optional: a sweep chooses N and k itself), optimisation, run.

    Number boxes set no bounds: the browser would refuse an out-of-range value without telling the server,
    which would then use the last valid one unseen. TrainConfig rejects it instead, in one line.
    """
    st.selectbox("Preset", list(PRESETS), key=prefix + "preset", on_change=_apply_preset, args=(prefix,),
                 help="fills the form below")
    with st.container(border=True):
        _draw_data(prefix)
    if model:
        with st.container(border=True):
            _draw_model(prefix)
    with st.container(border=True):
        _draw_optimisation(prefix)
    with st.container(border=True):
        _draw_run(prefix, seed)


def _draw_data(prefix: str) -> None:
    """The dataset, where it lives (with CIFAR's download button) or how many synthetic images, and subsets."""
    st.markdown("**Data**")
    st.selectbox("Dataset", DATASETS, format_func=formatting.DATASET_LABELS.get, key=prefix + "dataset",
                 on_change=_dataset_changed, args=(prefix,))
    dataset = st.session_state[prefix + "dataset"]
    if dataset == "synthetic":
        c1, c2 = st.columns(2)
        c1.number_input("synthetic train images", step=100, key=prefix + "synthetic_train")
        c2.number_input("synthetic test images", step=100, key=prefix + "synthetic_test")
    elif dataset in ("cifar10", "cifar100"):
        st.text_input("data directory", key=prefix + "data_dir", placeholder=f"{DEFAULT_DATA_DIR} (the default)",
                      help="where the extracted CIFAR files live")
        # Not under the form prefix: a button's state cannot be re-owned by keep_form_state.
        st.button(f"Download {formatting.DATASET_LABELS[dataset]}", key=prefix.replace("_f_", "_") + "download",
                  on_click=_download, args=(prefix,))
        messages.show_flash(prefix + "download", about=_download_about(prefix))
    else:
        st.text_input("image folder", key=prefix + "data_dir",
                      placeholder="/path/to/root with train/<class>/ and test/<class>/")
        st.number_input("resize to (px, 0 = keep)", step=8, key=prefix + "image_size")
    c1, c2 = st.columns(2)
    c1.number_input("train subset (0 = all)", step=100, key=prefix + "subset_train")
    c2.number_input("test subset (0 = all)", step=100, key=prefix + "subset_test")


def _draw_model(prefix: str) -> None:
    """N, k and dropout, and the WRN name they make."""
    st.markdown("**Model**")
    c1, c2, c3 = st.columns(3)
    c1.number_input("N", step=1, key=prefix + "n", help="blocks per group; depth = 6N+4")
    c2.number_input("k", step=1, key=prefix + "k", help="widen factor; group widths 16k, 32k, 64k")
    c3.number_input("dropout", step=0.05, format="%.2f", key=prefix + "dropout")
    st.caption(f"WRN-{6 * int(st.session_state[prefix + 'n']) + 4}-{int(st.session_state[prefix + 'k'])}")


def _draw_optimisation(prefix: str) -> None:
    """Optimizer, learning rate and its schedule, epochs and batch, momentum, label smoothing, augmentation."""
    st.markdown("**Optimisation**")
    st.selectbox("Optimizer", OPTIMIZERS, format_func=formatting.OPTIMIZER_LABELS.get, key=prefix + "optimizer",
                 on_change=_optimizer_changed, args=(prefix,))
    c1, c2 = st.columns(2)
    c1.number_input("learning rate", step=0.01, format="%.5f", key=prefix + "lr")
    c2.number_input("weight decay", step=1e-4, format="%.5f", key=prefix + "weight_decay")
    c1, c2 = st.columns(2)
    c1.selectbox("Schedule", SCHEDULES, format_func=formatting.SCHEDULE_LABELS.get, key=prefix + "schedule")
    c2.number_input("warm-up epochs", step=0.5, key=prefix + "warmup_epochs")
    c1, c2 = st.columns(2)
    c1.number_input("epochs", step=1, key=prefix + "epochs")
    c2.number_input("batch size", step=16, key=prefix + "batch_size",
                    help="the global batch: split over the GPUs with DDP")
    c1, c2 = st.columns(2)
    # Adam's β1 plays SGD momentum's part (wrn_core.engine.optim); the label names the one in use.
    momentum = "β1" if st.session_state[prefix + "optimizer"] in ADAM_OPTIMIZERS else "momentum"
    c1.number_input(momentum, step=0.01, key=prefix + "momentum")
    c2.number_input("label smoothing", step=0.05, key=prefix + "label_smoothing")
    st.checkbox("augmentation (pad-crop + flip)", key=prefix + "augment")


def _draw_run(prefix: str, seed: bool) -> None:
    """Device (with why a GPU cannot be used), seed, logging, evaluation batch, width use, torch.compile."""
    st.markdown("**Run**")
    choices = devices.device_choices()
    st.selectbox("Device", list(choices), format_func=choices.get, key=prefix + "device")
    if devices.unusable_gpu():
        st.warning(formatting.plain(devices.unusable_gpu()))
    c1, c2, c3 = st.columns(3)
    if seed:
        c1.number_input("seed", step=1, key=prefix + "seed")
    c2.number_input("log every (steps)", step=1, key=prefix + "log_every")
    c3.number_input("eval batch size", step=64, key=prefix + "eval_batch_size")
    c1, _ = st.columns(2)  # half the form: a third would wrap its label over four lines
    c1.number_input("width use every (epochs)", step=1, key=prefix + "width_every",
                    help="epochs between width-use measurements on the test pass (0 = none): the Width use map")
    st.checkbox("torch.compile (CUDA)", key=prefix + "compile")


def summary_line(config: TrainConfig, nproc: int = 1) -> str:
    """The config in one line, for above Launch: 'WRN-10-1 · Synthetic shapes · 8 epochs · batch 64 · auto (the CPU)'."""
    device = devices.device_choices().get(config.device, config.device) if config.device == "auto" else config.device
    if nproc > 1:
        device = f"{nproc} GPUs (DDP)"
    return (f"{config.model.name} · {formatting.DATASET_LABELS.get(config.dataset, config.dataset)} · "
            f"{config.epochs} epochs · batch {config.batch_size} · {device}")


def device_words(config: TrainConfig, nproc: int = 1) -> str:
    """Where the config trains, in words: 'the CPU', 'the least loaded GPU', 'cuda:1', '2 GPUs (DDP)'."""
    if nproc > 1:
        return f"{nproc} GPUs (DDP)"
    if config.device == "auto":
        return "the least loaded GPU" if devices.gpu_count() else "the CPU"
    return "the CPU" if config.device == "cpu" else config.device


def gpu_recipe_warning(prefix: str) -> str | None:
    """Why this form will be slow here: its preset is a CUDA recipe (or torch.compile is on) and there is no CUDA GPU."""
    if devices.gpu_count() > 0:
        return None
    preset = PRESETS.get(st.session_state.get(prefix + "preset"))
    if preset is not None and preset.device.startswith("cuda"):
        return (f"“{st.session_state[prefix + 'preset']}” is a CUDA GPU recipe and this machine has no CUDA GPU: "
                f"it would train on the CPU, many times slower. The Quick CPU demo suits this machine.")
    if st.session_state.get(prefix + "compile"):
        return "torch.compile pays off on a CUDA GPU; on this CPU-only machine it only adds a long warm-up."
    return None
