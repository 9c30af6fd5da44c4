"""Training memory in closed form (no model built, no torchinfo): parameters, saved activations, the whole need.

The counts follow the layer structure of model/network.py exactly; tests check them against
count_parameters and against torchinfo's layer table (model/tables.py), which shows the same figures
layer by layer on the Architecture page.
"""

from __future__ import annotations

from wrn_core.config import OPTIMIZERS, ConfigError, TrainConfig, WRNConfig

MIB = 2**20  # bytes per MiB
FP32_BYTES = 4  # bytes per fp32 element
# Fixed allowance for the CUDA context + cuDNN/cuBLAS handles, MiB (typical for a recent GPU).
CUDA_CONTEXT_MB = 500.0
# Extra fraction on top of weights+gradients+optimizer+activations for allocator
# fragmentation and conv workspaces.
WORKSPACE_FRACTION = 0.10


def _out(size: int, stride: int) -> int:
    """Output side of a 3x3/padding-1 or 1x1 conv with this stride."""
    return (size - 1) // stride + 1


def _blocks(config: WRNConfig, height: int, width: int):
    """(in channels, out channels, stride, input h, input w, output h, output w) of every basic block."""
    channels, h, w = config.widths[0], height, width
    for group_width, group_stride in zip(config.widths[1:], (1, 2, 2)):
        for index in range(config.blocks):
            stride = group_stride if index == 0 else 1
            oh, ow = _out(h, stride), _out(w, stride)
            yield channels, group_width, stride, h, w, oh, ow
            channels, h, w = group_width, oh, ow


def parameter_count(config: WRNConfig) -> int:
    """Exactly count_parameters(build_model(config)): convs (no bias), BatchNorm (2 per channel), the linear layer."""
    total = 9 * config.in_channels * config.widths[0]  # stem 3x3 conv
    channels = config.widths[0]
    for cin, cout, stride, *_ in _blocks(config, 32, 32):
        total += 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout  # bn1, conv1, bn2, conv2
        if cin != cout or stride != 1:
            total += cin * cout  # 1x1 projection shortcut
        channels = cout
    total += 2 * channels + channels * config.num_classes + config.num_classes  # head bn, fc
    return total


def saved_activation_bytes(config: WRNConfig, height: int = 32, width: int | None = None) -> int:
    """Bytes autograd saves for backward per image in fp32 (as tables.saved_activation_bytes counts them).

    Every saved tensor is a BatchNorm input, a ReLU output (also the next conv's input), the stem's
    input image, a dropout mask plus its output, the linear layer's input, or the logits.
    """
    width = height if width is None else width
    elements = config.in_channels * height * width  # the stem conv's input
    for cin, cout, _stride, h, w, oh, ow in _blocks(config, height, width):
        elements += 2 * cin * h * w  # bn1 input, relu1 output
        elements += 2 * cout * oh * ow  # bn2 input, relu2 output
        if config.dropout > 0:
            elements += 2 * cout * oh * ow  # dropout output and its mask (4 bytes per element on the CPU)
    last = config.widths[-1]
    _, _, _, _, _, h, w = list(_blocks(config, height, width))[-1]
    elements += 2 * last * h * w  # head bn input, relu output
    elements += last + config.num_classes  # flattened features, logits
    return elements * FP32_BYTES


def training_memory_mb(
    params: int, activation_bytes_per_image: int, batch_size: int, optimizer: str = "sgd-nesterov",
    amp: bool = True, cuda: bool = True,
) -> dict[str, float]:
    """Predicted peak training memory, MiB, split by what holds it.

    Assumptions (an estimate, not a measurement):
    - weights and gradients are fp32 (AMP keeps fp32 master weights), 4 bytes per param each;
    - optimizer state: SGD (with or without Nesterov) keeps one momentum buffer (1x params),
      Adam/AdamW keep two moments (2x params);
    - activations: batch_size x what autograd saves per image (fp32), halved under AMP (bf16);
    - workspace: 10% of the above, plus ~500 MiB for the CUDA context on a GPU.
    """
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    model_mb = params * FP32_BYTES / MIB
    state_copies = 2 if optimizer in ("adam", "adamw") else 1
    activations = batch_size * activation_bytes_per_image / MIB * (0.5 if amp else 1.0)
    subtotal = model_mb + model_mb + state_copies * model_mb + activations
    workspace = WORKSPACE_FRACTION * subtotal + (CUDA_CONTEXT_MB if cuda else 0.0)
    return {
        "weights": model_mb,
        "gradients": model_mb,
        "optimizer_state": state_copies * model_mb,
        "activations": activations,
        "workspace": workspace,
        "total": subtotal + workspace,
    }


def predicted_training_mb(config: TrainConfig, device_type: str, image_size: tuple[int, int] = (32, 32)) -> float:
    """Predicted peak memory of one training process of this run (its share of the batch under DDP)."""
    cuda = device_type == "cuda"
    local_batch = max(1, config.batch_size // config.world_size)
    return training_memory_mb(
        parameter_count(config.model), saved_activation_bytes(config.model, *image_size), local_batch,
        config.optimizer, amp=cuda, cuda=cuda,
    )["total"]
