"""The ``[training]`` and ``[gate]`` of a loopline.toml for tests on the tiny random model.

Small, quick and lenient: the tiny model learns little, and the tests that use it are about processes
and stores, not quality. Each test prepends its own top-level keys and adds its ``[monitor]``.
"""

TINY_TRAINING_AND_GATE = """\
[training]
epochs = 1
batch_size = 32
max_length = 32
early_stopping_patience = 0
[gate]
min_macro_f1 = 0.0
min_accuracy = 0.0
min_behaviour_pass_rate = 0.0
tolerance = 1.0
max_class_recall_drop = 1.0
min_new_label_recall = 0.0
"""
