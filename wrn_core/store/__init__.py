"""The run store: run directories, their one-writer lock, and the run format (`records`)."""

from wrn_core.store.errors import RunBusyError, RunCorruptError, RunStoreError, RunWriteError
from wrn_core.store.lock import INHERITED_LOCK_ENV, LAUNCHER_LOCK_ENV, Owner, RunLock, probe_owner
from wrn_core.store.meta import AnnotationError, Annotations
from wrn_core.store.records import MetricsLog, Progress, parse_metrics
from wrn_core.store.run import Run
from wrn_core.store.runstore import (
    DEFAULT_RUNS_DIR, RUNS_DIR_ENV, RunStore, RunSummary, default_runs_dir, iso, validate_run_name,
)

__all__ = [
    "DEFAULT_RUNS_DIR", "RUNS_DIR_ENV", "default_runs_dir",
    "AnnotationError", "Annotations", "INHERITED_LOCK_ENV", "LAUNCHER_LOCK_ENV", "MetricsLog", "Owner", "Progress", "Run", "RunBusyError",
    "RunCorruptError", "RunLock", "RunStore", "RunStoreError", "RunSummary", "RunWriteError", "iso",
    "parse_metrics", "probe_owner", "validate_run_name",
]
