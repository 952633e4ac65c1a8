"""ONNX export of any model of this project (the graph ONNX Runtime runs), with a dynamic batch axis.

Uses the torch.export-based exporter (the default since PyTorch 2.9; the TorchScript one is deprecated).
The graph takes normalised float images `input` (N x 3 x 32 x 32) and returns `logits` (N x classes).
"""
import io
import warnings

import torch

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def onnx_bytes(model, example_batch=2):
    """Serialized ONNX ModelProto of `model` (eval mode, fp32, CPU)."""
    model = model.eval().cpu()
    x = torch.randn(example_batch, 3, 32, 32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                    optimize=True, verbose=False)
    buf = io.BytesIO()
    buf.write(program.model_proto.SerializeToString())
    return buf.getvalue()


def bytes_to_tensor(data):
    """ONNX bytes as a uint8 tensor, so a checkpoint can carry a graph and still load with weights_only=True."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def tensor_to_bytes(tensor):
    return tensor.numpy().tobytes()
