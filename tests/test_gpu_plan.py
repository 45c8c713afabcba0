"""The GPU request of training and canvas jobs follows config `device`."""

import pytest

from xinc import gpu_plan


@pytest.mark.parametrize(("device", "expected"), [("cpu", {}), ("cuda", {"gpu": 1}),
                                                  ("cuda:1", {"gpu": 1})])
def test_explicit_devices(device: str, expected: dict[str, int]) -> None:
    assert gpu_plan.gpu_resources(device) == expected


def test_auto_follows_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_plan, "cuda_available", lambda: True)
    assert gpu_plan.gpu_resources("auto") == {"gpu": 1}
    monkeypatch.setattr(gpu_plan, "cuda_available", lambda: False)
    assert gpu_plan.gpu_resources("auto") == {}


def test_auto_on_this_machine_matches_torch() -> None:
    import torch

    assert gpu_plan.uses_gpu("auto") == torch.cuda.is_available()


def test_unknown_device_is_an_error() -> None:
    with pytest.raises(ValueError, match="config key device"):
        gpu_plan.uses_gpu("tpu")


def test_no_driver_means_no_gpu_without_asking_torch(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path) -> None:
    monkeypatch.setattr(gpu_plan, "NVIDIA_GPUS", tmp_path / "absent")
    monkeypatch.setattr(gpu_plan, "ROCM_DEVICE", tmp_path / "kfd")
    monkeypatch.setattr(gpu_plan.importlib.util, "find_spec", lambda name: pytest.fail(name))
    assert not gpu_plan.cuda_available()


def test_driver_without_torch_counts(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    monkeypatch.setattr(gpu_plan, "NVIDIA_GPUS", tmp_path / "gpus")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpu_plan.importlib.util, "find_spec", lambda name: None)
    assert gpu_plan.cuda_available()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu_plan.cuda_available()
