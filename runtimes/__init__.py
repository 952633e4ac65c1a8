"""Where a checkpoint runs: the runners of every runtime behind one interface (runtimes/runners.py), the int8 models
a checkpoint carries, rebuilt from plain tensors (runtimes/int8.py), and the ONNX export they share
(runtimes/export.py). The benchmark times these runners; quantization makes and scores int8 models with them.
"""
