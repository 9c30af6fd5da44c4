"""Training jobs as supervised processes (`JobManager`), and sweeps run through them (`SweepRunner`)."""

from wrn_core.jobs.supervisor import JobInfo, JobManager, default_slots

__all__ = ["JobInfo", "JobManager", "default_slots"]
