"""Backends carry out a training plan: HF Jobs, a batch/v1 Job, or a local process."""
