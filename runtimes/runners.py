"""Every runtime a checkpoint runs on, behind one interface, all on the same BN-folded model: `prepare(x)` turns a
normalised float batch into the runtime's input, `runner(x)` runs it, `logits(x)` returns torch logits. The
benchmark times these runners; quantization.ptq scores its int8 models with them.

    backend   fp32 / bf16 model                              int8 model (the checkpoint's own, runtimes/int8.py)
    eager     PyTorch, channels_last                         -
    compile   torch.compile (Inductor, frozen weights)       torchao PT2E graph, one compiled graph per batch size
    onnx      ONNX Runtime on the export (fp32 only)         the embedded QDQ graph
    openvino  OpenVINO CPU plugin, precision set explicitly  the embedded NNCF-quantised IR

OpenVINO's CPU plugin runs bf16 by default on CPUs that have it, so every OpenVINO model is compiled with its
inference precision named: f32 for fp32 rows, bf16 for bf16 rows, and for int8 rows f32 as well (the layers NNCF
left in float then run in f32, as in the other backends). Each batch size gets its own static-shape compiled
model, with the LATENCY hint, one stream and --threads inference threads: the benchmark times one synchronous
request at a time, which a second stream could not serve (each runner's `config` is recorded in every row).
"""
import time

import numpy as np
import torch

from common.errors import UserError, first_line
from runtimes.export import onnx_bytes, tensor_to_bytes
from models.fold import fold_batchnorm
from runtimes.int8 import openvino_from_entry, openvino_from_module, pt2e_from_observers

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def make_runner(backend, precision, model, entries, device, threads, compiled=True):
    """The runner of `model` (the checkpoint's float model) on `backend`; an int8 runner runs the int8 model in
    `entries` (the checkpoint's "onnx" / "openvino" / "pt2e" entry: a checkpoint dict will do). compiled=False
    runs a PT2E int8 graph without torch.compile: the same int8 numerics, without the compile wait."""
    if precision == "int8" and backend == "compile":
        return Pt2eRunner(model, entries["pt2e"], threads, compiled)
    if backend in ("eager", "compile"):
        return TorchRunner(model, backend, device, DTYPES[precision])
    if backend == "onnx":
        graph = tensor_to_bytes(entries["onnx"]) if "onnx" in entries else onnx_bytes(fold_batchnorm(model))
        return OnnxRunner(graph, device, threads)
    return OpenVinoRunner(openvino_model(model, entries, precision), precision, threads)


MAX_SECONDS_PER_IMAGE = 1.0  # a model within benchmark.run's MAC bound runs far faster on any CPU this project met


def top1_and_loss(runner, batches, what, pad_to=None, classes=10):
    """(top-1 %, mean cross-entropy) of a runner over normalised (images, labels) `batches` (common.data.Batches or
    any such iterable), scored on the CPU; `what` names the model in the refusal of non-finite logits (NaN argmaxes
    to class 0: a top-1 of noise, not a result). `pad_to`: a shorter batch is padded to this many images and the
    padding discarded, so that a runner built per shape (torch.compile, OpenVINO) builds no extra one for the last."""
    correct = total = 0
    loss = 0.0
    for k, (images, labels) in enumerate(batches):
        n = len(labels)
        images = images.cpu()
        if pad_to and n < pad_to:
            images = torch.cat([images, images[:1].expand(pad_to - n, *images.shape[1:])])
        try:
            t0 = time.perf_counter()
            logits = torch.as_tensor(runner.logits(runner.prepare(images))).float()
            seconds = (time.perf_counter() - t0) / len(images)
        except Exception as e:  # a graph that asks for terabytes, a shape it cannot take: one line, not a traceback
            raise UserError(f"{what}: the model fails on a batch of {len(images)} images "
                            f"({type(e).__name__}: {first_line(e)})") from None
        if tuple(logits.shape) != (len(images), classes):  # the contract on the real output, whatever a graph declares
            raise UserError(f"{what}: the model gives logits of shape {list(logits.shape)} for {len(images)} "
                            f"images; the contract is N x {classes} (CIFAR-10 logits)")
        if k > 0 and seconds > MAX_SECONDS_PER_IMAGE:  # the first batch may compile (torch.compile, OpenVINO)
            raise UserError(f"{what}: the model needs {seconds:.2f} s per image (bound {MAX_SECONDS_PER_IMAGE:g} s; a "
                            "CIFAR-10 ResNet needs milliseconds): scoring and timing it would not end")
        logits = logits[:n]
        if not bool(torch.isfinite(logits).all()):
            raise UserError(f"{what}: the model produces non-finite logits (NaN or inf)")
        labels = labels.cpu()
        correct += int((logits.argmax(1) == labels).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
        total += n
    return 100.0 * correct / max(total, 1), loss / max(total, 1)


def openvino_model(model, entries, precision):
    """The openvino.Model a checkpoint runs as: its int8 IR, or the conversion of its folded float model."""
    try:
        return openvino_from_entry(entries["openvino"]) if precision == "int8" else \
            openvino_from_module(fold_batchnorm(model))
    except Exception as e:
        raise UserError(f"OpenVINO cannot load the model ({str(e).strip().splitlines()[0][:160]})") from None


class Runner:
    """What every runner shares: `built`, {batch size: what was built for that shape} (OpenVINO compiled models,
    PT2E graphs; empty where one model serves every shape)."""

    def keep_batches(self, batches):
        """Release what was built for any other batch size. Each OpenVINO compiled model holds its own threads and
        their stacks (~24 MB of address space and 2 threads each on a 2-core Xeon), and the benchmark keeps every
        configuration's runner alive for its interleaved rounds: shapes built only for scoring accuracy would
        otherwise add a third of that per runner."""
        for batch in [b for b in self.built if b not in batches]:
            del self.built[batch]


def _freeze_for_inductor():
    # Inductor's CPU path needs frozen weights to prepack convolutions (oneDNN) and fuse int8 patterns; without
    # freezing it runs unfused aten convs and is no faster than eager.
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True


class TorchRunner(Runner):
    """Eager PyTorch or torch.compile on the BN-folded model, channels_last, in the requested precision."""

    def __init__(self, model, backend, device, dtype, fold=True):
        self.device, self.dtype = device, dtype
        # fold=False: a torch.export program's module, already inference-only (its BatchNorms are graph ops)
        model = (fold_batchnorm(model) if fold else model).to(
            device=device, dtype=dtype, memory_format=torch.channels_last
        )
        if backend == "compile":
            if device.type == "cpu":
                _freeze_for_inductor()
            model = torch.compile(model, dynamic=False)
        self.model, self.built = model, {}
        self.config = "channels_last" + (", Inductor, frozen weights" if backend == "compile" else "")

    def prepare(self, x):
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)

    def __call__(self, x):
        with torch.inference_mode():
            return self.model(x)

    def logits(self, x):
        return self(x).float().cpu()


class Pt2eRunner(Runner):
    """The checkpoint's torchao PT2E int8 graph, rebuilt for each batch size and lowered by torch.compile."""

    def __init__(self, model, observers, threads, compiled=True):
        if compiled:
            _freeze_for_inductor()
        self.folded, self.observers, self.built, self.compiled = fold_batchnorm(model), observers, {}, compiled
        self.config = (
            "torchao PT2E X86InductorQuantizer, "
            + ("Inductor, frozen weights, " if compiled else "eager, ")
            + "one graph per batch size"
        )

    def prepare(self, x):
        return x.float().contiguous()

    def __call__(self, x):
        graph = self.built.get(x.shape[0])
        if graph is None:
            with torch.no_grad():
                try:
                    graph = pt2e_from_observers(self.folded, self.observers, x.shape[0])
                except (ValueError, RuntimeError, TypeError, AttributeError) as e:  # stored observers of another graph
                    raise UserError(
                        f"the PT2E int8 graph cannot be rebuilt from the checkpoint "
                        f"({str(e).strip().splitlines()[0][:160]})"
                    ) from None
                self.built[x.shape[0]] = graph = torch.compile(graph, dynamic=False) if self.compiled else graph
        with torch.no_grad():
            return graph(x)

    def logits(self, x):
        return self(x).float()


class OnnxRunner(Runner):
    """ONNX Runtime on a serialized graph: a checkpoint's own (its top-level "onnx" entry), the export of its folded
    model, or a user's ONNX file."""

    def __init__(self, graph, device, threads):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4  # fatal only: an error reaches the user once, as the one-line refusal
        providers = ["CUDAExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(graph, opts, providers=providers)
        except Exception as e:
            raise UserError(f"ONNX Runtime cannot load the graph ({str(e).splitlines()[0][:160]})") from None
        self.input_name, self.built = self.session.get_inputs()[0].name, {}
        self.config = f"{providers[0]}, sequential, {threads} intra-op threads, all graph optimisations"

    def prepare(self, x):
        return np.ascontiguousarray(x.float().cpu().contiguous().numpy())

    def __call__(self, x):
        try:
            return self.session.run(None, {self.input_name: x})[0]
        except Exception as e:  # onnxruntime's own exception types (a graph that does not fit its input, ...)
            raise UserError(f"ONNX Runtime failed to run the graph ({str(e).strip().splitlines()[0][:160]})") from None

    def logits(self, x):
        return torch.from_numpy(self(x))


class OpenVinoRunner(Runner):
    """OpenVINO's CPU plugin on an openvino.Model: a checkpoint's int8 IR, the conversion of its folded fp32 model,
    or a user's ONNX file or IR."""

    def __init__(self, ov_model, precision, threads):
        import openvino as ov

        self.model, self.core, self.built = ov_model, ov.Core(), {}
        self.properties = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
        }
        self.config = (
            f"CPU plugin, LATENCY hint, 1 stream, {threads} threads, inference precision "
            f"{OPENVINO_PRECISION[precision]}, static shape per batch size"
        )

    compiled = 0  # OpenVINO models compiled in this process, for the message when one more cannot be

    def request(self, batch):
        if batch not in self.built:
            model = self.model.clone()
            model.reshape([batch, 3, 32, 32])
            try:
                self.built[batch] = self.core.compile_model(model, "CPU", self.properties).create_infer_request()
            except RuntimeError as e:  # out of threads or address space, most often: say how many came before
                raise UserError(
                    f"OpenVINO could not compile the model for batch {batch} ({openvino_reason(e)}; "
                    f"{OpenVinoRunner.compiled} OpenVINO models compiled in this process before it: "
                    f"benchmark fewer checkpoints per run)"
                ) from None
            OpenVinoRunner.compiled += 1
        return self.built[batch]

    def prepare(self, x):
        return np.ascontiguousarray(x.float().cpu().numpy())

    def __call__(self, x):
        try:
            request = self.request(x.shape[0])
            request.infer(x, share_inputs=True, share_outputs=True)
        except RuntimeError as e:  # OpenVINO reports a model that cannot take this input as a RuntimeError
            raise UserError(f"OpenVINO failed to run the model ({openvino_reason(e)})") from None
        return request.get_output_tensor(0).data

    def logits(self, x):
        return torch.from_numpy(self(x).copy())


def openvino_reason(error):
    """The informative line of an OpenVINO exception: its message is a stack of "Exception from src/...:N:" lines
    with the reason (e.g. "Resource temporarily unavailable") last."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith("Exception from ")]
    return (reasons or lines or ["no reason given"])[-1][:160]


# An int8 model agrees with its own fp32 model on nearly every image (>= 97% on the study's checkpoints) and its
# logits stay close; a graph that came from another model does neither. Either test passing is enough, so that a
# barely trained model, whose logits sit close together and whose argmax flips under quantisation noise, still
# passes on closeness.
MIN_AGREEMENT, MAX_RELATIVE_ERROR = 0.75, 0.25


def check_int8_graph(runner, model, x, path):
    """One line unless the checkpoint's embedded int8 graph computes its own fp32 model: it must take the images
    `x` (normalised, N x 3 x 32 x 32), give one logit per class of the model, and agree with the fp32 model."""
    with torch.inference_mode():
        reference = model.eval().float()(x.contiguous())
    try:
        logits = runner.logits(runner.prepare(x))
    except Exception as e:
        raise UserError(
            f"{path}: its int8 graph does not run on {tuple(x.shape[1:])} images "
            f"({str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__})"
        ) from None
    logits = torch.as_tensor(logits).float()
    if tuple(logits.shape) != tuple(reference.shape):
        raise UserError(
            f"{path}: its int8 graph outputs {tuple(logits.shape)} for {len(x)} images, its model "
            f"{tuple(reference.shape)}: the graph is not this checkpoint's model"
        )
    if not bool(torch.isfinite(logits).all()):
        raise UserError(f"{path}: its int8 graph produces non-finite logits")
    agreement = float((logits.argmax(1) == reference.argmax(1)).float().mean())
    spread = float((reference - reference.mean(1, keepdim=True)).norm())
    error = float((logits - reference).norm()) / max(spread, 1e-12)
    if agreement < MIN_AGREEMENT and error > MAX_RELATIVE_ERROR:
        raise UserError(
            f"{path}: its int8 graph agrees with the checkpoint's fp32 model on {100 * agreement:.0f}% "
            f"of {len(x)} images (relative logit error {error:.2f}): the graph is not this model's"
        )
