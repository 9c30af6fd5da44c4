"""Inspecting a trained run: evaluation (confusions, calibration, width use), export, and asking the model."""

from wrn_core.inspect.evaluate import SPLITS, TTA_MODES, cache_path, evaluate_network, evaluate_run, read_cached
from wrn_core.inspect.network_export import FORMATS, ExportError, export_bytes, export_network
from wrn_core.inspect.network import Network, Normalized, checkpoint_step, load_network
from wrn_core.inspect.predict import MAX_UPLOAD_BYTES, UploadError, ask, decode_image, top_classes

__all__ = [
    "FORMATS", "MAX_UPLOAD_BYTES", "SPLITS", "TTA_MODES", "ExportError", "Network", "Normalized", "UploadError",
    "ask", "cache_path", "checkpoint_step", "decode_image", "evaluate_network", "evaluate_run", "export_bytes",
    "export_network", "load_network", "read_cached", "top_classes",
]
