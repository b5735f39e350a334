"""Build defaults, torch-free so the CLI can show them without importing torch.

Bytes per NB201 arch (default width 16, batch 64, about 44 conv/linear nodes on average): each
parameter-shaped statistic costs params × itemsize (six of them: 2.5 GB for the 506 public cifar10
archs in float16, 4.9 GB in float32, hence float16); each node's kernels cost 2·B² values, its
channel covariance C², and its four activation tensors 4·B·max_channels·max_positions values
(8 × 8: 32 KB per node in float16, against ~5 MB per node unsketched). Total ≈ 3.6 GB in float16.
"""

DEFAULT_MAX_CHANNELS = 8
DEFAULT_MAX_POSITIONS = 8
DEFAULT_DTYPE = "float16"
TASK_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120, "digits": 10}
