"""The run store: run directories, their one-writer lock, and the run format (`records`)."""

from wrn_core.store.files import RunBusyError, RunCorruptError, RunStoreError, RunWriteError
from wrn_core.store.lock import INHERITED_LOCK_ENV, LAUNCHER_LOCK_ENV, Owner, RunLock, probe_owner
from wrn_core.store.meta import AnnotationError, Annotations
from wrn_core.store.records import MetricsLog, Progress, parse_metrics
from wrn_core.store.run import Run
from wrn_core.store.runstore import RunStore, RunSummary, iso, validate_run_name

__all__ = [
    "AnnotationError", "Annotations", "INHERITED_LOCK_ENV", "LAUNCHER_LOCK_ENV", "MetricsLog", "Owner", "Progress", "Run", "RunBusyError",
    "RunCorruptError", "RunLock", "RunStore", "RunStoreError", "RunSummary", "RunWriteError", "iso",
    "parse_metrics", "probe_owner", "validate_run_name",
]
