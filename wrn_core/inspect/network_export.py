"""Export a run's network to ONNX, safetensors or a torch.export program (pt2), its metadata inside the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from wrn_core.errors import one_line
from wrn_core.inspect.network import Network

FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors", "pt2": ".pt2"}
ONNX_OPSET = 18
EXAMPLE_BATCH = 2  # the traced example; the batch dimension stays dynamic
MAX_BATCH = 1 << 16  # the largest batch the exported graphs accept


class ExportError(ValueError):
    """An export could not be made: unknown format, a missing package, an unwritable path (one line)."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose {', '.join(FORMATS)}")
    return fmt


def default_path(network: Network, fmt: str) -> Path:
    """<run>.<ext> in the current directory: the run directory belongs to its writer."""
    return Path(f"{network.run}{FORMATS[check_format(fmt)]}")


def export_network(network: Network, fmt: str, out: str | os.PathLike[str] | None = None) -> Path:
    """Write the network (float32 [0, 1] N×C×H×W in, logits out) to out in fmt; returns the path written.

    The file is written beside out and renamed into place, so a failed export leaves nothing behind.
    """
    check_format(fmt)
    path = Path(out) if out is not None else default_path(network, fmt)
    _check_writable(path)
    writer = {"onnx": _write_onnx, "safetensors": _write_safetensors, "pt2": _write_pt2}[fmt]
    try:
        # The temporary name keeps the extension: torch.export.save checks it.
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{FORMATS[fmt]}", dir=path.parent)
    except OSError as exc:  # e.g. a directory nobody can create files in, whatever os.access says
        raise ExportError(f"cannot write {path} ({one_line(exc)})") from None
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        writer(network, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path} ({one_line(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_bytes(network: Network, fmt: str) -> bytes:
    """The exported file's bytes (for a download button), via a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="wrn-export-") as folder:
        path = export_network(network, fmt, Path(folder) / f"{network.run}{FORMATS[check_format(fmt)]}")
        return path.read_bytes()


def _check_writable(path: Path) -> None:
    """One line before any work when the file cannot be written where asked."""
    parent = path.parent
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a directory; name a file")
    if not parent.is_dir():
        raise ExportError(f"cannot write {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ExportError(f"cannot write {path}: permission denied")


def _example(network: Network) -> torch.Tensor:
    return torch.rand(EXAMPLE_BATCH, *network.image_shape)


def _write_onnx(network: Network, path: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch's torch.export-based ONNX exporter needs it
    except ImportError:
        raise ExportError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript onnxruntime") from None
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    torch.onnx.export(
        network.normalized(), (_example(network),), str(path), input_names=["images"], output_names=["logits"],
        dynamic_shapes=({0: batch},), opset_version=ONNX_OPSET, dynamo=True, verbose=False,
    )
    graph = onnx.load(str(path))
    for key, value in network.metadata().items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def _write_safetensors(network: Network, path: Path) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ExportError("safetensors export needs the safetensors package: pip install safetensors") from None
    # The bare WideResNet's state dict, so build_model(config) loads it; normalisation is in the metadata.
    state = {key: value.detach().contiguous() for key, value in network.model.state_dict().items()}
    save_file(state, str(path), metadata=network.metadata())


def _write_pt2(network: Network, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(network.normalized(), (_example(network),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path), extra_files=network.metadata())
