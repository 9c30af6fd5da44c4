"""Training jobs as supervised processes (`JobManager`), and the executors that train sweeps' cells (`executor`)."""

from wrn_core.jobs.supervisor import JobInfo, JobManager, default_slots

__all__ = ["JobInfo", "JobManager", "default_slots"]
