"""Ground truth by real training: one-arch training and resumable runs over sampled archs."""
from autoproxy.groundtruth.runner import sample_distinct, train_missing
from autoproxy.groundtruth.store import GroundTruthStore
from autoproxy.groundtruth.train import TrainResult, TrainSettings, arch_seed, train_and_evaluate

__all__ = [
    "sample_distinct", "train_missing",
    "GroundTruthStore", "TrainResult", "TrainSettings", "arch_seed",
    "train_and_evaluate",
]
