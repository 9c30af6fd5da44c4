"""The devices this machine offers the pages: what CUDA sees, why a GPU cannot be used, the device box's choices."""

from __future__ import annotations

import streamlit as st

DDP_CHOICE = "ddp"  # the device box's "all GPUs (DDP)": config device cuda, one process per GPU


@st.cache_resource(show_spinner=False)
def cuda_description() -> str:
    """'cuda (NVIDIA H100 …)' or 'cpu only' — checked once per process."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps (Apple GPU)"
    unusable = unusable_gpu()
    if unusable:
        return f"cpu only: {unusable}"
    return "cpu only (no CUDA GPU)"


@st.cache_resource(show_spinner=False)
def unusable_gpu() -> str | None:
    """Why an NVIDIA GPU on this machine cannot be used by this torch, with the fix (one line), or None."""
    from wrn_core.engine.devices import unusable_gpu_reason

    return unusable_gpu_reason()


@st.cache_data(show_spinner=False, ttl=10)
def device_choices() -> dict[str, str]:
    """Device box options (value -> label): auto, every real device with its free memory, and
    "all GPUs (DDP)" where there are two or more. Re-read at most every 10 s."""
    from wrn_core.engine.devices import list_devices

    devices = list_devices()
    gpus = [d for d in devices if d.kind == "cuda"]
    choices = {"auto": f"auto ({'the least loaded GPU' if gpus else 'the CPU'})"}
    choices.update({d.name: d.label() for d in devices})
    if len(gpus) >= 2:
        choices[DDP_CHOICE] = f"all {len(gpus)} GPUs (DDP, one process per GPU)"
    return choices


def gpu_count() -> int:
    return sum(1 for value in device_choices() if value.startswith("cuda:"))
