"""Model files other tools made, measured like the project's checkpoints: an ONNX file (fp32, or int8 in QDQ form),
an OpenVINO IR (.xml with its .bin beside it) or a torch.export program (.pt2).

    python -m benchmark.run pruned.onnx --label torch-pruning --mean 0.4914,0.4822,0.4465 --std 0.2470,0.2435,0.2616 \
        --baseline runs/study-quick/base/r56.pt --test-dir $CIFAR10_DIR

The contract, checked before anything is timed (one line and exit 2 otherwise): one input, float, N x 3 x 32 x 32;
one output, N x 10 logits. A file whose batch dimension is fixed runs at that batch only (the benchmark says so).
The input normalisation is the user's (--mean/--std, in the 0..1 pixel scale) or the file's own metadata (keys
"mean" and "std", three comma-separated numbers: ONNX metadata_props, OpenVINO rt_info, torch.export extra_files),
and is recorded in every row. MACs are counted from the graph (convolutions and matrix products of the model at
batch 1, as for checkpoints), so theoretical and measured speedups mean the same as for the study's methods.

What is refused, before the model is built: files over the size a checkpoint may have; ONNX external data outside
the file's own folder; operators outside the standard ONNX domain (custom ops run native code); an OpenVINO IR
without its .bin or with layers outside the standard opsets; a torch.export archive holding anything
benchmark.pt2_archive cannot check (torch.export.load reads only the archive it rebuilds) or operators outside aten.

    file           backends it runs on                              precision
    .onnx          onnx (ONNX Runtime), openvino (reads ONNX)        int8 if it holds QuantizeLinear, else fp32
    .xml + .bin    openvino                                         int8 if it holds FakeQuantize, else fp32
    .pt2           eager, compile, and onnx/openvino by export      fp32 (or bf16 where asked)
"""
import hashlib
import io
import math
import operator
import os
import warnings

import numpy as np
import torch

from benchmark.pt2_archive import sanitize as sanitize_pt2
from benchmark.runners import FLOAT_PRECISIONS
from common.checkpoint import MAX_UNPACKED_BYTES, read_file_bytes
from common.data import normalizer
from common.errors import UserError, first_line


FORMATS = {".onnx": "onnx", ".xml": "openvino-ir", ".pt2": "torch.export"}
MAX_BYTES = MAX_UNPACKED_BYTES  # the same bound as a checkpoint's tensors: a CIFAR model is far below it
ONNX_DOMAINS = ("", "ai.onnx")
TORCH_NAMESPACES = ("aten",)
MEAN_RANGE, STD_RANGE = (0.0, 1.0), (0.01, 2.0)
CONTROL_FLOW = {"Loop", "TensorIterator", "If"}
# A CIFAR-10 classifier needs well under a GMAC per image (ResNet-110: 0.25); a graph far above it is a mistake or a
# time bomb (3,000 chained 4096 x 4096 MatMuls ran until killed). benchmark.run --max-gmacs raises the bound.
MAX_GMACS = 5.0
MAX_TENSOR_ELEMENTS = 1 << 26  # per image: 256 MB in fp32, a thousand times a ResNet's largest activation


def is_external(path):
    return os.path.splitext(str(path))[1].lower() in FORMATS


def parse_triple(text, flag):
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise UserError(
            f"{flag} must be three comma-separated numbers (R,G,B in the 0..1 pixel scale), got {text!r}"
        ) from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UserError(f"{flag} must be three finite comma-separated numbers (R,G,B), got {text!r}")
    return values


def external_sha256(path):
    """A model file's identity in the results CSV: the sha256 of its bytes; of an IR, of its .xml and .bin together."""
    if os.path.splitext(str(path))[1].lower() == ".xml":
        return hashlib.sha256(_read(path) + _read(os.path.splitext(path)[0] + ".bin")).hexdigest()
    return hashlib.sha256(_read(path)).hexdigest()


def _read(path, limit=None):
    return read_file_bytes(path, MAX_BYTES if limit is None else limit, "a model file")


# ---------------------------------------------------------------- ONNX


def load_onnx(path):
    """(serialized model with any external data inlined, onnx.ModelProto, the file's bytes) after the safety
    checks."""
    import onnx
    from onnx import external_data_helper as ext

    raw = _read(path)
    try:
        model = onnx.load_from_string(raw)
    except Exception as e:
        raise UserError(f"{path}: not a readable ONNX file ({first_line(e)})") from None
    names = [t.name for t in model.graph.initializer] + [t.values.name for t in model.graph.sparse_initializer]
    if len(set(names)) != len(names):  # runtimes pick different copies (ONNX Runtime and OpenVINO: 72 points apart)
        twice = sorted({n for n in names if names.count(n) > 1})[0]
        raise UserError(f"{path}: refused: the initializer {twice[:60]!r} is defined twice (which one a runtime uses "
                        "differs)")
    if any(ext.uses_external_data(t) for t in _sparse_tensors(model)):  # onnx's loader skips them; a runtime opened
        raise UserError(f"{path}: refused: a sparse tensor with external data (read from wherever the runtime runs)")
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    external = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    total = len(raw)
    for tensor in external:
        entry = {e.key: e.value for e in tensor.external_data}
        location = entry.get("location", "")
        target = os.path.realpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, target]) != folder:
            raise UserError(f"{path}: refused: external data {location!r} lies outside the model's folder")
        if not os.path.isfile(target):
            raise UserError(f"{path}: external data {location!r} not found beside the model")
        if os.stat(target).st_nlink > 1:  # a hard link's other name may lie anywhere
            raise UserError(f"{path}: refused: external data {location!r} is a hard link")
        size = os.path.getsize(target)
        for key in ("offset", "length"):
            if key in entry and not (entry[key].isdigit() and int(entry[key]) <= size):
                raise UserError(f"{path}: refused: external data {location!r} has {key} {entry[key][:20]!r}, not "
                                f"a byte count within its {size:,} bytes")
        if int(entry.get("offset", 0)) + int(entry.get("length", 0)) > size:
            raise UserError(f"{path}: refused: external data {location!r} ends past its {size:,} bytes")
        total += size
        if total > MAX_BYTES:
            raise UserError(f"{path}: refused: with its external data larger than {MAX_BYTES >> 20} MiB")
    if external:
        ext.load_external_data_for_model(model, folder)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    custom = sorted(
        {n.domain for n in nodes if n.domain not in ONNX_DOMAINS}
        | {f.domain for f in model.functions if f.domain not in ONNX_DOMAINS}
    )
    if custom:
        raise UserError(
            f"{path}: refused: operators of the custom domain(s) {', '.join(custom)} (only standard ONNX "
            "operators run here: a custom op is native code)"
        )
    subgraphs = [
        a
        for n in model.graph.node
        for a in n.attribute
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    ]
    if subgraphs:
        raise UserError(f"{path}: refused: control-flow subgraphs (If/Loop/Scan): not a CIFAR classifier")
    return model.SerializeToString(), model, raw


def _onnx_io(model, path):
    """(input dims, output dims) of the graph's one input and output, dims as int or None (symbolic)."""
    import onnx

    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise UserError(
            f"{path}: the model must take one input and give one output "
            f"(it has {len(inputs)} inputs and {len(model.graph.output)} outputs)"
        )

    def dims(value):
        t = value.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT:
            raise UserError(
                f"{path}: {value.name!r} is {onnx.TensorProto.DataType.Name(t.elem_type)}, the contract "
                "is float32 images in and float32 logits out"
            )
        return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]

    return dims(inputs[0]), dims(model.graph.output[0])


def _onnx_meta(model):
    return {p.key: p.value for p in model.metadata_props}


# ---------------------------------------------------------------- OpenVINO IR


def _sparse_tensors(model):
    """The values and indices of every sparse tensor of a model: sparse initializers and Constant attributes, in
    every graph, subgraph and function."""
    import onnx

    graphs, found = [model.graph], []
    nodes = [n for f in model.functions for n in f.node]
    while graphs:
        graph = graphs.pop()
        found += [t for s in graph.sparse_initializer for t in (s.values, s.indices)]
        nodes += list(graph.node)
        while nodes:
            for a in nodes.pop().attribute:
                found += [t for s in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors)
                          for t in (s.values, s.indices)]
                graphs += ([a.g] if a.type == onnx.AttributeProto.GRAPH else []) + list(a.graphs)
    return found


def load_ir(path):
    """(openvino.Model, xml bytes, bin bytes) after the safety checks: the .bin beside the .xml, standard opsets."""
    import xml.etree.ElementTree as ElementTree
    from runtimes.int8 import openvino_from_entry
    from runtimes.export import bytes_to_tensor

    bin_path = os.path.splitext(path)[0] + ".bin"
    xml = _read(path)
    if not os.path.isfile(bin_path):
        raise UserError(f"{path}: its weights {os.path.basename(bin_path)} are not beside it")
    weights = _read(bin_path, MAX_BYTES - len(xml))
    if b"<!ENTITY" in xml or b"<!DOCTYPE" in xml:
        raise UserError(f"{path}: refused: an IR with a DOCTYPE or entity declarations")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as e:
        raise UserError(f"{path}: not a readable OpenVINO IR ({first_line(e)})") from None
    custom = sorted(
        {layer.get("version", "") for layer in root.iter("layer") if not layer.get("version", "").startswith("opset")}
    )
    if custom:
        raise UserError(f"{path}: refused: layers outside the standard opsets ({', '.join(custom)[:120]})")
    loops = sorted({layer.get("type", "") for layer in root.iter("layer")} & CONTROL_FLOW)
    if loops:  # as for ONNX: a CIFAR classifier has no control flow, and a loop's cost cannot be counted before running
        raise UserError(f"{path}: refused: control flow ({', '.join(loops)})")
    try:
        model = openvino_from_entry({"xml": bytes_to_tensor(xml), "bin": bytes_to_tensor(weights)})
    except Exception as e:
        raise UserError(f"{path}: OpenVINO cannot read the IR ({first_line(e)})") from None
    return model, xml, weights


def _ov_io(model, path):
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(
            f"{path}: the model must take one input and give one output "
            f"(it has {len(model.inputs)} inputs and {len(model.outputs)} outputs)"
        )

    def dims(port):
        if port.get_element_type().get_type_name() != "f32":
            raise UserError(
                f"{path}: an input or output is {port.get_element_type().get_type_name()}, the contract "
                "is float32 images in and float32 logits out"
            )
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic:
            return None
        return [d.get_length() if d.is_static else None for d in shape]

    return dims(model.inputs[0]), dims(model.outputs[0])


def _ov_meta(model):
    found = {}
    for key in ("mean", "std"):
        if model.has_rt_info([key]):
            found[key] = str(model.get_rt_info([key]).astype(str))
    return found


# ---------------------------------------------------------------- torch.export


def load_pt2(path):
    """(ExportedProgram, {extra file: text}, the file's bytes): torch.export.load reads an archive that
    benchmark.pt2_archive rebuilt from the checked contents of the file, never the file itself (it would unpickle,
    eval and exec parts of it); every operator of the loaded graph is checked again."""
    raw = _read(path)
    clean = sanitize_pt2(raw, path, MAX_BYTES)
    extra = {"mean": "", "std": ""}
    try:
        program = torch.export.load(io.BytesIO(clean), extra_files=extra)
    except Exception as e:
        raise UserError(f"{path}: torch.export cannot load it ({first_line(e)})") from None
    for node in program.graph.nodes:
        if node.op == "call_function":
            namespace = (
                getattr(node.target, "namespace", None)
                or getattr(getattr(node.target, "_schema", None), "name", "").split("::")[0]
            )
            if namespace not in TORCH_NAMESPACES and node.target is not operator.getitem:
                raise UserError(f"{path}: refused: operator {node.target} is outside aten (a custom op is native code)")
    return program, {k: v for k, v in extra.items() if v}, raw


def _pt2_io(program, path):
    inputs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    outputs = program.graph_signature.output_specs
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(
            f"{path}: the program must take one input and give one output "
            f"(it has {len(inputs)} inputs and {len(outputs)} outputs)"
        )
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    outs = [a for n in program.graph.nodes if n.op == "output" for a in n.args[0]]

    def dims(node):
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dtype != torch.float32:
            raise UserError(f"{path}: the contract is float32 images in and float32 logits out")
        return [int(d) if isinstance(d, int) or str(d).isdigit() else None for d in value.shape]

    return dims(placeholders[inputs[0].arg.name]), dims(outs[0])


# ---------------------------------------------------------------- the contract and the graph's cost


def check_contract(path, in_dims, out_dims):
    """The fixed batch size (None when the batch dimension is free), or a one-line UserError."""
    if in_dims is None or len(in_dims) != 4 or [d for d in in_dims[1:]] != [3, 32, 32]:
        raise UserError(f"{path}: input shape {_shape(in_dims)}, the contract is N x 3 x 32 x 32 (CIFAR-10 images)")
    if out_dims is None or len(out_dims) != 2 or out_dims[1] not in (10, None):
        raise UserError(f"{path}: output shape {_shape(out_dims)}, the contract is N x 10 (CIFAR-10 logits)")
    return in_dims[0]


def _shape(dims):
    return "unknown" if dims is None else " x ".join("?" if d is None else str(d) for d in dims)


def graph_cost(ov_model, batch):
    """(MACs per image, parameters, elements of the largest tensor the graph makes) counted from an openvino.Model
    at its batch: MACs of every Convolution, GroupConvolution and MatMul, divided by the batch; parameters = elements
    of the weights those layers take (whatever converts, dequantises or fake-quantises them on the way)."""
    macs, params, largest = 0, 0, 0
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        for i in range(op.get_output_size()):
            shape = op.get_output_partial_shape(i)
            if shape.rank.is_static and all(d.is_static for d in shape):
                largest = max(largest, math.prod(d.get_length() for d in shape))
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = op.get_output_partial_shape(0)
        w = op.get_input_partial_shape(1)
        if out.is_dynamic or w.is_dynamic:
            continue
        out, w = [d.get_length() for d in out], [d.get_length() for d in w]
        if kind == "Convolution":  # weights Cout x Cin x kh x kw
            macs += math.prod(out) * math.prod(w[1:])
        elif kind == "GroupConvolution":  # weights G x Cout/G x Cin/G x kh x kw
            macs += math.prod(out) * math.prod(w[2:])
        else:
            a = [d.get_length() for d in op.get_input_partial_shape(0)]
            k = a[-1] if not op.get_attributes().get("transpose_a") else a[-2]
            macs += math.prod(out) * k
        params += math.prod(w)
    return macs / batch, params, largest


def _reshaped(ov_model, batch):
    model = ov_model.clone()
    model.reshape([batch, 3, 32, 32])
    return model


# ---------------------------------------------------------------- the model as the benchmark sees it


class ExternalModel:
    """A model file to benchmark, with the attributes and methods benchmark.checkpoint.Checkpoint has."""

    def __init__(self, path, mean=None, std=None, label="", metadata_first=False, max_gmacs=MAX_GMACS):
        import openvino as ov

        self.path, self.label = path, label or "external"
        self.source_format = FORMATS[os.path.splitext(path)[1].lower()]
        self.ov_model = self.onnx = self.program = None
        if self.source_format == "onnx":
            self.onnx, proto, identity = load_onnx(path)
            in_dims, out_dims = _onnx_io(proto, path)
            meta = _onnx_meta(proto)
            self.precision = "int8" if any(n.op_type == "QuantizeLinear" for n in proto.graph.node) else "fp32"
            try:
                self.ov_model = ov.Core().read_model(model=self.onnx, weights=ov.Tensor(np.zeros(0, np.uint8)))
            except Exception as e:
                raise UserError(f"{path}: OpenVINO cannot read the ONNX file ({first_line(e)})") from None
        elif self.source_format == "openvino-ir":
            self.ov_model, xml, weights = load_ir(path)
            in_dims, out_dims = _ov_io(self.ov_model, path)
            meta = _ov_meta(self.ov_model)
            self.precision = (
                "int8"
                if any(op.get_type_name() == "FakeQuantize" for op in self.ov_model.get_ordered_ops())
                else "fp32"
            )
            identity = xml + weights
        else:
            self.program, meta, identity = load_pt2(path)
            in_dims, out_dims = _pt2_io(self.program, path)
            self.precision = "fp32"
        self.sha256 = hashlib.sha256(identity).hexdigest()
        self.file_bytes = len(identity)
        self.fixed_batch = check_contract(path, in_dims, out_dims)
        self.norm = self._normalization(mean, std, meta, metadata_first)
        self.normalize = normalizer(self.norm["mean"], self.norm["std"])
        self.module = self.program.module() if self.program is not None else None
        if self.module is not None and self.ov_model is None:
            self.ov_model = self._pt2_openvino()
        batch = self.fixed_batch or 1
        try:
            self.macs, self.params, largest = graph_cost(_reshaped(self.ov_model, batch), batch)
        except Exception as e:
            raise UserError(f"{path}: the graph does not take N x 3 x 32 x 32 images ({first_line(e)})") from None
        if largest > MAX_TENSOR_ELEMENTS * batch:  # refused before any runtime builds (and constant-folds) it
            raise UserError(f"{path}: refused: the graph makes a tensor of {largest:,} elements at batch {batch} "
                            f"(a CIFAR-10 ResNet's largest has 65,536 per image; the bound is {MAX_TENSOR_ELEMENTS:,})")
        if self.macs > max_gmacs * 1e9:
            raise UserError(f"{path}: refused: {self.macs / 1e9:,.1f} GMAC per image, above the bound of "
                            f"{max_gmacs:g} (a CIFAR-10 ResNet-110 needs 0.25; --max-gmacs raises it)")
        self.metrics = {
            "params": int(self.params),
            "nonzero_params": int(self.params),
            "macs": float(self.macs),
            "effective_macs": float(self.macs),
            "dense_fp32_bytes": int(4 * self.params),
        }
        self.model, self.ckpt, self.meta, self.int8_tied = None, {}, {"method": "external"}, False
        self.is_baseline, self.baseline, self.baseline_sha256 = True, "", self.sha256

    def _normalization(self, mean, std, meta, metadata_first=False):
        if (metadata_first or mean is None and std is None) and "mean" in meta and "std" in meta:
            mean = parse_triple(meta["mean"], f"{self.path}: metadata 'mean'")
            std = parse_triple(meta["std"], f"{self.path}: metadata 'std'")
        if mean is None or std is None:
            raise UserError(
                f"{self.path}: the input normalisation is not known: give --mean and --std (0..1 pixel "
                "scale, e.g. --mean 0.4914,0.4822,0.4465 --std 0.2470,0.2435,0.2616; 0,0,0 and 1,1,1 "
                "for a model that normalises inside its graph)"
            )
        # A CIFAR model's input normalisation in the 0..1 pixel scale: means of the data (~0.47) or 0/0.5, stds of the
        # data (~0.25), 0.5 or 1. Outside these bounds it is the 0..255 scale or a broken file: accuracy at chance.
        if not all(MEAN_RANGE[0] <= m <= MEAN_RANGE[1] for m in mean) or \
                not all(STD_RANGE[0] <= v <= STD_RANGE[1] for v in std):
            raise UserError(
                f"{self.path}: normalisation mean {','.join(f'{m:g}' for m in mean)} std "
                f"{','.join(f'{v:g}' for v in std)} is outside the 0..1 pixel scale (mean in {MEAN_RANGE[0]:g}.."
                f"{MEAN_RANGE[1]:g}, std in {STD_RANGE[0]:g}..{STD_RANGE[1]:g}; values in 0..255 are divided by 255)"
            )
        return {"mean": list(mean), "std": list(std)}

    def _pt2_openvino(self):
        import openvino as ov

        try:
            return ov.convert_model(self.program)
        except Exception as e:
            raise UserError(f"{self.path}: OpenVINO cannot convert the program ({first_line(e)})") from None

    def _pt2_onnx(self):

        x = torch.randn(self.fixed_batch or 2, 3, 32, 32)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                return torch.onnx.export(
                    self.program, (x,), dynamo=True, optimize=True, verbose=False
                ).model_proto.SerializeToString()
        except Exception as e:
            raise UserError(f"{self.path}: the program does not export to ONNX ({first_line(e)})") from None

    def configurations(self, backends, precisions):
        if self.precision == "int8":
            runs_on = ("onnx", "openvino") if self.source_format == "onnx" else ("openvino",)
            return [(b, "int8") for b in backends if b in runs_on]
        runs_on = {
            "onnx": ("onnx", "openvino"),
            "openvino-ir": ("openvino",),
            "torch.export": ("eager", "compile", "onnx", "openvino"),
        }[self.source_format]
        return [(b, p) for b in backends if b in runs_on for p in precisions if p in FLOAT_PRECISIONS[b]]

    def make_runner(self, backend, precision, device, threads):
        from runtimes.runners import DTYPES, OnnxRunner, OpenVinoRunner, TorchRunner

        if backend in ("eager", "compile"):
            return TorchRunner(self.module, backend, device, DTYPES[precision], fold=False)
        if backend == "onnx":
            return OnnxRunner(self.onnx if self.onnx is not None else self._pt2_onnx(), device, threads)
        return OpenVinoRunner(self.ov_model, "fp32" if precision == "int8" else precision, threads)

    def set_baseline(self, baseline):
        from benchmark.checkpoint import baseline_identity

        self.is_baseline, self.baseline, self.baseline_sha256 = baseline_identity(self.path, self.sha256, baseline)

    def describe(self):
        norm = self.norm
        return {
            "checkpoint": self.path,
            "checkpoint_sha256": self.sha256,
            "method": "external",
            "parent": "",
            "baseline": self.baseline or self.path,
            "baseline_sha256": self.baseline_sha256,
            "label": self.label,
            "source_format": self.source_format,
            "input_norm": "mean "
            + ",".join(f"{v:g}" for v in norm["mean"])
            + " std "
            + ",".join(f"{v:g}" for v in norm["std"]),
            "fixed_batch": self.fixed_batch,
            "spec_name": "",
            "spec": f"{self.source_format} graph",
            "params": self.metrics["params"],
            "nonzero_params": self.metrics["nonzero_params"],
            "macs": self.metrics["macs"],
            "effective_macs": self.metrics["effective_macs"],
            "seed": None,
            "train_epochs": None,
            "train_subset": None,
            "train_seconds": None,
            "train_device": "",
            "train_autocast": "",
            "dense_fp32_bytes": self.metrics["dense_fp32_bytes"],
            "file_bytes": self.file_bytes,
            "compressed_bytes": None,
            "compressed_kind": "",
        }
