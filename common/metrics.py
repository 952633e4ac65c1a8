"""Model size and cost. FLOPs are counted by torch.utils.flop_counter and reported as MACs
(multiply-accumulates, = flop_counter's FLOPs / 2), the unit the pruning papers call "FLOPs"
(ResNet-56 = 1.25e8). Effective MACs count only multiplications by nonzero weights."""
import os

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_nonzero_params(model):
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def count_macs(model, input_size=(1, 3, 32, 32)):
    """(dense MACs, effective MACs) for one input of `input_size`.

    Effective MACs scale each weighted layer's MACs by the density of its weight, which is what a
    kernel that skips zero weights could at best achieve."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(input_size, device=param.device if param is not None else "cpu")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    counts = counter.get_flop_counts()
    dense = counter.get_total_flops() / 2
    root = type(model).__name__
    saved = 0.0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not name or not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            continue
        flops = sum(counts.get(f"{root}.{name}", {}).values()) / 2
        if flops:
            density = float(torch.count_nonzero(weight)) / weight.numel()
            saved += flops * (1 - density)
    return dense, dense - saved


def state_dict_bytes(model, dtype_bytes=4):
    """Bytes of all parameters and buffers stored densely at `dtype_bytes` each (fp32 = 4)."""
    return sum(t.numel() * dtype_bytes for t in model.state_dict().values() if t.is_floating_point())


def model_metrics(model):
    dense, effective = count_macs(model)
    return {"params": count_params(model), "nonzero_params": count_nonzero_params(model),
            "macs": dense, "effective_macs": effective, "dense_fp32_bytes": state_dict_bytes(model)}


def file_bytes(path):
    return os.path.getsize(path)
