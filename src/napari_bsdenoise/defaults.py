"""Defaults chosen by measurement, in one place (benchmarks/, docs/benchmarks.md, docs/speed.md).

Every public function takes these as its keyword defaults; the CLI and the widgets show them.
"""

DEFAULT_STEPS = 2000  # when neither steps nor seconds is given
DEFAULT_PATCH_SIZE = 64
DEFAULT_DISTILL_PATCH_SIZE = 96
DEFAULT_BATCH_SIZE = 8
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_VALIDATION_FRACTION = 0.1
MIN_TRAIN_SIDE = 16  # pixels (Y and X) below which there is too little to learn from
DEFAULT_METHOD = "atbsn"  # train(method=None); "auto" picks by the noise diagnostic (docs/dbsn.md)
DEFAULT_AUTO_SECONDS = 240  # auto_denoise: one wall-time budget, inference included (docs/auto.md)
DEFAULT_AUTO_TEACHER_FRACTION = 0.5  # auto_denoise, correlated noise: the teacher's share of the training time
