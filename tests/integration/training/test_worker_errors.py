"""What a client hears when a worker fails: one line, the right status, never a traceback."""

from __future__ import annotations

import pytest

from forgeline.errors import Internal, ResourceExhausted
from forgeline.finetune.runner import _failure


def worker_error(ray, kind: str) -> BaseException:
    def fail():  # nested, so Ray ships it by value to the worker
        import torch

        if kind == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise ValueError("label 'maybe' is not one of the training labels")

    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        ray.get(ray.remote(fail).remote())
    return caught.value


def test_out_of_memory_in_a_worker_is_resource_exhausted_with_a_hint(ray_local):
    error = _failure(worker_error(ray_local, "oom"))
    assert isinstance(error, ResourceExhausted) and error.reason == "WORKER_OUT_OF_MEMORY"
    assert "batch_size_per_worker" in error.message and "Tried to allocate" in error.message
    assert "Traceback" not in error.message


def test_a_task_rays_memory_monitor_killed_is_resource_exhausted(ray_local):
    """Ray's memory monitor kills the run's task as OutOfMemoryError (not a RayTaskError, and
    its text need not name memory the way a worker's own error does)."""
    killed = ray_local.exceptions.OutOfMemoryError(
        "Task was killed due to the node running low on memory."
    )
    error = _failure(killed)
    assert isinstance(error, ResourceExhausted) and error.reason == "WORKER_OUT_OF_MEMORY"
    assert "running low on memory" in error.message


def test_any_other_worker_error_is_internal_with_its_last_line_only(ray_local):
    error = _failure(worker_error(ray_local, "value"))
    assert isinstance(error, Internal) and error.reason == "TRAINING_FAILED"
    assert "ValueError: label 'maybe' is not one of the training labels" in error.message
    assert "Traceback" not in error.message and "\n" not in error.message
