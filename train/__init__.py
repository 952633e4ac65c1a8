"""The one method interface and its driver (train/method.py), and the one training and fine-tuning command,
`python -m train` (train/__main__.py): train a CIFAR ResNet from scratch, fine-tune any checkpoint, retrain a
compressed architecture from scratch. The loop itself is common/training.py; the models are models/.
"""


def main(argv=None):
    """`python -m train` from Python: `train.main([...])` (imported only when called, so that `python -m train` runs
    train/__main__.py once)."""
    from train.__main__ import main as train_main
    return train_main(argv)
