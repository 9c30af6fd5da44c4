"""The training loop: one visible per-epoch loop that writes the run directory and reports progress."""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import DataError, DeviceLoader, check_available, load_dataset
from wrn_core.model import build_model, count_parameters
from wrn_core.runstore import ACTIVE_STATUSES, Run, RunStoreError


@dataclass(frozen=True)
class Progress:
    """What a UI needs to draw a progress bar; sent to the progress hook."""

    run_name: str
    phase: str  # loading | compiling | training | evaluating | done
    epoch: int  # completed epochs
    epochs: int
    step: int  # global optimizer steps done
    total_steps: int
    steps_per_epoch: int
    images_seen: int
    elapsed_s: float  # training seconds, summed over resumes
    images_per_s: float | None  # recent training throughput
    eta_s: float | None
    train_loss: float | None  # over the last logging interval
    train_acc: float | None
    test_acc: float | None  # of the last completed epoch
    device: str


ProgressHook = Callable[[Progress], None]


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable explicit choice is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps was asked for but is not available; use --device cpu or auto")
    return torch.device(name)


def preflight(config: TrainConfig) -> str:
    """Check what can be checked before a run is created; returns the device type to queue on.

    Raises ConfigError or DataError with a one-line message (CUDA missing, data not found).
    """
    device = resolve_device(config.device)
    check_available(config)
    return device.type


def prepare_resume(run: Run, epochs: int | None = None) -> str:
    """Check that a run can continue (optionally to `epochs` in total) and record the new target.

    Raises RunStoreError (the run is active, or has nothing left to do) or ConfigError/DataError
    from preflight; returns the device type to run on. The caller then trains with resume=True.
    """
    status = run.read_status()
    if status.get("status") in ACTIVE_STATUSES:
        raise RunStoreError(f"run {run.name!r} is {status.get('status')} in another process")
    config = run.read_config()
    done = int(status.get("epoch", 0) or 0)
    if epochs is not None:
        if epochs <= done:
            raise RunStoreError(f"run {run.name!r} has already completed {done} epochs; ask for more than {done}")
        config = config.replace(epochs=epochs)
    elif done >= config.epochs:
        raise RunStoreError(
            f"run {run.name!r} already finished its {config.epochs} epochs; give a larger number of epochs to continue"
        )
    device = preflight(config)
    run.write_config(config)
    run.write_status(epochs=config.epochs, finished_at=None)
    return device


def build_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    lr = config.effective_lr
    weight_decay = config.effective_weight_decay
    # Fused kernels: one launch for all parameters on CUDA, instead of one per tensor.
    fused = {"fused": True} if device.type == "cuda" else {}
    params = model.parameters()
    if config.optimizer == "sgd-nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=True, weight_decay=weight_decay, **fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=weight_decay, **fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.momentum, 0.999), weight_decay=weight_decay, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(config.momentum, 0.999), weight_decay=weight_decay, **fused)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}")


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate before optimizer step `step` (0-based)."""
    total = config.epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.schedule == "onecycle":
        # Linear ramp from peak/25 to the peak over the warm-up (default 25% of training), then linear to 0.
        ramp = warmup if warmup > 0 else int(0.25 * total)
        if step < ramp:
            return 0.04 + 0.96 * step / max(1, ramp)
        return max(0.0, (total - step) / max(1, total - ramp))
    factor = 1.0
    if config.schedule == "step":
        # The paper: lr x 0.2 at 30%, 60% and 80% of the epochs.
        epoch = step / max(1, steps_per_epoch)
        for milestone in (0.3, 0.6, 0.8):
            if epoch >= milestone * config.epochs:
                factor *= 0.2
    elif config.schedule == "cosine":
        after_warmup = (step - warmup) / max(1, total - warmup)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, after_warmup))))
    elif config.schedule != "constant":
        raise ConfigError(f"unknown schedule {config.schedule!r}")
    if step < warmup:
        factor *= 0.1 + 0.9 * step / warmup
    return factor


def evaluate(model: torch.nn.Module, loader: DeviceLoader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader; one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    with torch.no_grad(), _autocast(device):
        for images, labels in loader.epoch(0):
            logits = model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.shape[0]
    return loss_sum.item() / max(1, count), correct.item() / max(1, count)


def _autocast(device: torch.device):
    # bf16 autocast on CUDA only: CPU bf16 is slower than fp32 on most CPUs and changes results.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _Diverged(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"loss became NaN or infinite at step {step}")
        self.step = step


def train_run(
    run: Run,
    stop_event: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
    resume: bool = False,
) -> str:
    """Train the run described by run/config.json; returns the final status.

    Never raises for training problems: they end in status stopped/finished/diverged/failed
    with a message in status.json (and a traceback in error.txt for unexpected errors).
    Points recorded before a failure stay in metrics.jsonl.
    """
    stop_event = stop_event or threading.Event()
    started = time.time()
    run.write_status("running", "loading data", started_at=started, pid=os.getpid(), finished_at=None, error_kind=None)
    state: dict[str, Any] = {"step": 0}
    try:
        return _train(run, stop_event, on_progress, resume, state)
    except _Diverged as exc:
        return _finish(run, "diverged", f"{exc}; try a lower learning rate", state, error_kind="diverged")
    except torch.OutOfMemoryError:
        _release_memory(state)
        config = state.get("config")
        hint = f" (batch {config.batch_size}, {config.model.name})" if config else ""
        return _finish(run, "failed", f"CUDA out of memory at step {state['step']}{hint}: try a smaller batch size or widen factor", state, error_kind="oom")
    except (ConfigError, DataError) as exc:
        return _finish(run, "failed", str(exc), state, error_kind="input")
    except Exception as exc:  # noqa: BLE001 - any failure must end as a recorded status
        run.error_path.write_text(traceback.format_exc())
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return _finish(run, "failed", f"{type(exc).__name__}: {first_line} (traceback in {run.error_path})", state, error_kind="exception")
    finally:
        _release_memory(state)


def _finish(run: Run, status: str, message: str, state: dict[str, Any], error_kind: str) -> str:
    # error_kind tells a caller whether the input was at fault (the CLI exits 2 for "input").
    run.write_status(status, message, finished_at=time.time(), step=state.get("step", 0), error_kind=error_kind)
    return status


def _release_memory(state: dict[str, Any]) -> None:
    for key in ("model", "optimizer", "train_loader", "test_loader", "compiled"):
        state.pop(key, None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train(
    run: Run,
    stop_event: threading.Event,
    on_progress: ProgressHook | None,
    resume: bool,
    state: dict[str, Any],
) -> str:
    config = run.read_config()
    state["config"] = config
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = load_dataset(config)

    # The dataset decides the number of classes and input channels; record them so the
    # stored config stays enough to rerun.
    model_config = config.model
    if model_config.num_classes != data.num_classes or model_config.in_channels != data.image_shape[0]:
        model_config = dataclasses.replace(model_config, num_classes=data.num_classes, in_channels=data.image_shape[0])
        config = config.replace(model=model_config)
        run.write_config(config)
        state["config"] = config

    model = build_model(model_config)
    params = count_parameters(model)
    cuda = device.type == "cuda"
    # channels_last (NHWC) suits cuDNN's tensor-core kernels and oneDNN's CPU convolutions
    # (measured here: WRN-10-2 training steps ~1.3x faster on the CPU than NCHW).
    channels_last = device.type in ("cuda", "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    state["model"] = model
    optimizer = build_optimizer(model, config, device)
    state["optimizer"] = optimizer

    # Whole dataset resident on the device as uint8; augmentation runs there too.
    train_loader = DeviceLoader(
        data.train_images.to(device), data.train_labels.to(device), config.batch_size, data.mean, data.std,
        train=True, augment=config.augment, seed=config.seed, channels_last=channels_last,
    )
    test_loader = DeviceLoader(
        data.test_images.to(device), data.test_labels.to(device), config.eval_batch_size, data.mean, data.std,
        train=False, augment=False, channels_last=channels_last,
    )
    state["train_loader"], state["test_loader"] = train_loader, test_loader
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(data.train_labels)} training images; use a smaller batch"
        )
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(config, step, steps_per_epoch)
    )

    # Position and running totals; all of it goes into the checkpoint so a resume is exact.
    epoch, batch_in_epoch, step, images_seen = 0, 0, 0, 0
    train_seconds, best_test_acc = 0.0, None
    epoch_sums = {"loss": 0.0, "correct": 0.0, "count": 0}
    last_test_acc = None
    if resume and run.has_checkpoint():
        checkpoint = run.load_checkpoint()
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        _set_rng_state(checkpoint["rng"], device)
        epoch, batch_in_epoch = checkpoint["epoch"], checkpoint["batch_in_epoch"]
        step, images_seen = checkpoint["step"], checkpoint["images_seen"]
        train_seconds, best_test_acc = checkpoint["train_seconds"], checkpoint["best_test_acc"]
        epoch_sums = checkpoint["epoch_sums"]
        last_test_acc = checkpoint.get("last_test_acc")
        run.truncate_metrics_after(step)
    elif resume:
        run.truncate_metrics_after(0)  # no checkpoint yet: start over without repeating points
    state["step"] = step

    run.write_status(
        "running", f"training on {device.type}", params=params, device=device.type, epochs=config.epochs,
        model_name=model_config.name, dataset=config.dataset, optimizer=config.optimizer,
        epoch=epoch, step=step, images_seen=images_seen,
    )

    forward = model
    if config.compile:
        forward = torch.compile(model)
        state["compiled"] = forward

    def report(phase: str, loss: float | None = None, acc: float | None = None, rate: float | None = None) -> None:
        if on_progress is None:
            return
        remaining = total_steps - step
        eta = remaining * config.batch_size / rate if rate else None
        on_progress(Progress(
            run_name=run.name, phase=phase, epoch=epoch, epochs=config.epochs, step=step,
            total_steps=total_steps, steps_per_epoch=steps_per_epoch, images_seen=images_seen,
            elapsed_s=train_seconds, images_per_s=rate, eta_s=eta, train_loss=loss, train_acc=acc,
            test_acc=last_test_acc, device=device.type,
        ))

    def save_checkpoint() -> None:
        run.save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": _rng_state(device), "epoch": epoch, "batch_in_epoch": batch_in_epoch, "step": step,
            "images_seen": images_seen, "train_seconds": train_seconds, "best_test_acc": best_test_acc,
            "last_test_acc": last_test_acc, "epoch_sums": epoch_sums, "config": config.to_dict(),
        })

    def stop() -> str:
        save_checkpoint()
        run.write_status("stopped", f"stopped at epoch {epoch + batch_in_epoch / steps_per_epoch:.2f} (step {step}); resume to continue",
                         step=step, images_seen=images_seen, train_seconds=train_seconds, finished_at=time.time())
        report("done")
        return "stopped"

    compiled_eval = False  # whether the compiled model has been evaluated in this process
    report("compiling" if config.compile and step == 0 else "training")
    while epoch < config.epochs:
        model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        epoch_start = time.perf_counter()
        # Running sums stay on the device; the host reads them once per logging interval.
        interval_loss = torch.zeros((), device=device, dtype=torch.float64)
        interval_correct = torch.zeros((), device=device, dtype=torch.int64)
        bad_step = torch.zeros((), device=device, dtype=torch.int64)  # first step with a non-finite loss
        interval_count = 0
        interval_start = time.perf_counter()
        rate = None
        for images, labels in train_loader.epoch(epoch, start_batch=batch_in_epoch):
            if stop_event.is_set():
                train_seconds += time.perf_counter() - interval_start
                interval_start = time.perf_counter()
                _fold_interval(epoch_sums, interval_loss, interval_correct, interval_count)
                return stop()
            first_step_start = time.perf_counter() if step == 0 else None
            with _autocast(device):
                logits = forward(images)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            batch_in_epoch += 1
            images_seen += labels.shape[0]
            detached = loss.detach()
            interval_loss += detached.double() * labels.shape[0]
            interval_correct += (logits.argmax(dim=1) == labels).sum()
            interval_count += labels.shape[0]
            bad_step = torch.where((bad_step == 0) & ~torch.isfinite(detached), step, bad_step)
            if first_step_start is not None and config.compile:
                if cuda:
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - first_step_start
                run.append_metrics([{"kind": "event", "event": "compile", "step": step, "epoch": epoch,
                                     "time": train_seconds + seconds, "seconds": seconds,
                                     "message": f"torch.compile warm-up and first step took {seconds:.1f} s"}])
            if step % config.log_every == 0 or batch_in_epoch == steps_per_epoch:
                if int(bad_step.item()) > 0:
                    raise _Diverged(int(bad_step.item()))
                now = time.perf_counter()
                seconds = now - interval_start
                train_seconds += seconds
                interval_start = now
                loss_value = interval_loss.item() / interval_count
                acc_value = interval_correct.item() / interval_count
                rate = interval_count / seconds if seconds > 0 else None
                run.append_metrics([{
                    "kind": "step", "step": step, "epoch": epoch + batch_in_epoch / steps_per_epoch,
                    "images_seen": images_seen, "time": train_seconds, "train_loss": loss_value,
                    "train_acc": acc_value, "lr": scheduler.get_last_lr()[0],
                }])
                _fold_interval(epoch_sums, interval_loss, interval_correct, interval_count)
                interval_loss.zero_()
                interval_correct.zero_()
                interval_count = 0
                state["step"] = step
                report("training", loss_value, acc_value, rate)
        train_phase_seconds = time.perf_counter() - epoch_start
        train_seconds += time.perf_counter() - interval_start

        report("evaluating", rate=rate)
        eval_start = time.perf_counter()
        test_loss, test_acc = evaluate(forward, test_loader, device)
        eval_seconds = time.perf_counter() - eval_start
        train_seconds += eval_seconds
        if config.compile and not compiled_eval:
            # Eval mode and the eval batch shape compile a second graph; show that cost too.
            compiled_eval = True
            run.append_metrics([{"kind": "event", "event": "compile-eval", "step": step, "epoch": epoch + 1,
                                 "time": train_seconds, "seconds": eval_seconds,
                                 "message": f"first evaluation with torch.compile (includes compiling it) took {eval_seconds:.1f} s"}])
        if not math.isfinite(test_loss):
            raise _Diverged(step)
        epoch += 1
        batch_in_epoch = 0
        count = max(1, epoch_sums["count"])
        best_test_acc = test_acc if best_test_acc is None else max(best_test_acc, test_acc)
        last_test_acc = test_acc
        run.append_metrics([{
            "kind": "epoch", "epoch": epoch, "step": step, "images_seen": images_seen, "time": train_seconds,
            "train_loss": epoch_sums["loss"] / count, "train_acc": epoch_sums["correct"] / count,
            "test_loss": test_loss, "test_acc": test_acc, "lr": scheduler.get_last_lr()[0],
            "epoch_seconds": time.perf_counter() - epoch_start,
            "images_per_s": epoch_sums["count"] / train_phase_seconds if train_phase_seconds > 0 else None,
            "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        }])
        epoch_sums = {"loss": 0.0, "correct": 0.0, "count": 0}
        save_checkpoint()
        run.write_status(
            "running", f"epoch {epoch}/{config.epochs}: test accuracy {test_acc:.1%}", epoch=epoch, step=step,
            images_seen=images_seen, train_seconds=train_seconds, best_test_acc=best_test_acc, final_test_acc=test_acc,
        )
        report("training", rate=rate)

    run.write_status("finished", f"finished {config.epochs} epochs: best test accuracy {best_test_acc:.1%}",
                     finished_at=time.time(), train_seconds=train_seconds)
    report("done")
    return "finished"


def _fold_interval(epoch_sums: dict[str, Any], loss: torch.Tensor, correct: torch.Tensor, count: int) -> None:
    if count == 0:
        return
    epoch_sums["loss"] += loss.item()
    epoch_sums["correct"] += float(correct.item())
    epoch_sums["count"] += count
