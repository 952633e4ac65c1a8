"""Model files other tools made (ONNX, OpenVINO IR, torch.export), measured by benchmark.run like checkpoints;
the Torch-Pruning import; the input contract and hostile files refused in one line."""
import contextlib
import importlib
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from common.checkpoint import make_meta, save_checkpoint
from common.data import write_synthetic_layout
from common.errors import run_cli
from common.metrics import model_metrics
from models import build_model, load_model, make_spec
from runtimes.export import onnx_bytes
from runtimes.int8 import openvino_from_module
from tests.test_reliability import Evil, snapshot

NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
NORM_ARGS = ["--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]


def _main(module, argv):
    return importlib.import_module(module).main(argv)


def save_onnx(model, path, props=None, batch=None):
    import onnx
    graph = onnx.load_from_string(onnx_bytes(model) if batch is None else _fixed_onnx(model, batch))
    if props:
        onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(path))
    return graph


def _fixed_onnx(model, batch):
    import io
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.randn(batch, 3, 32, 32),), buf, dynamo=False, input_names=["input"])
    return buf.getvalue()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A ResNet-8 checkpoint and the same model as ONNX, OpenVINO IR and torch.export files."""
    import openvino as ov
    d = tmp_path_factory.mktemp("external")
    write_synthetic_layout(d / "data", n_train=64, n_test=100)
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    model = build_model(spec).eval()
    save_checkpoint(d / "r8.pt", spec, model.state_dict(), make_meta("baseline", normalization=NORM))
    save_onnx(model, d / "r8.onnx", {"mean": "0.5,0.5,0.5", "std": "0.25,0.25,0.25"})
    save_onnx(model, d / "r8-nometa.onnx")
    ir = openvino_from_module(model)  # openvino.convert_model, as a user's script would call it
    ir.set_rt_info("0.5,0.5,0.5", ["mean"])
    ir.set_rt_info("0.25,0.25,0.25", ["std"])
    ov.save_model(ir, str(d / "r8.xml"), compress_to_fp16=False)
    _main("scripts.external_models", ["export", str(d / "r8.pt"), "--out", str(d / "r8")])
    return d


def test_the_three_formats_are_measured_like_a_checkpoint(made, capsys):
    d = made
    out = d / "formats.csv"
    _main("benchmark.run", [str(d / "r8.onnx"), str(d / "r8.xml"), str(d / "r8.pt2"), "--baseline", str(d / "r8.pt"),
                            "--label", "made-in-test", "--backends", "eager,onnx,openvino", "--batch-sizes", "1,8",
                            "--test-dir", str(d / "data"), "--quick", "--threads", "1", "--out", str(out)])
    df = pd.read_csv(out)
    files = df[df["method"] == "external"]
    assert set(files["source_format"]) == {"onnx", "openvino-ir", "torch.export"}
    assert set(files["label"]) == {"made-in-test"}
    assert (files["input_norm"] == "mean 0.5,0.5,0.5 std 0.25,0.25,0.25").all()  # read from each file's metadata
    per_format = {f: set(zip(g["backend"], g["batch"])) for f, g in files.groupby("source_format")}
    assert per_format["onnx"] == {("onnx", 1), ("onnx", 8), ("openvino", 1), ("openvino", 8)}
    assert per_format["openvino-ir"] == {("openvino", 1), ("openvino", 8)}
    assert per_format["torch.export"] == {(b, n) for b in ("eager", "onnx", "openvino") for n in (1, 8)}
    # MACs counted from each graph equal the checkpoint's own count; the same model scores the same top-1
    macs = model_metrics(load_model(d / "r8.pt")[0])["macs"]
    assert (files["macs"] == macs).all()
    base = df[df["method"] == "baseline"]
    assert len(base) and (abs(files["top1"] - base["top1"].iloc[0]) <= 1.0).all()  # within one of 100 images
    assert (abs(files["theoretical_speedup"] - 1.0) < 1e-9).all()
    assert files["measured_speedup"].notna().all()  # against the checkpoint baseline, same backend
    assert len(set(files["checkpoint_sha256"])) == 3


def test_a_fixed_batch_runs_at_that_batch_only_and_says_so(made, capsys):
    d = made
    model = load_model(d / "r8.pt")[0]
    save_onnx(model, d / "r8-b4.onnx", batch=4)
    out = d / "fixed.csv"
    capsys.readouterr()
    _main("benchmark.run", [str(d / "r8-b4.onnx"), *NORM_ARGS, "--backends", "onnx", "--batch-sizes", "1,8",
                            "--test-dir", str(d / "data"), "--quick", "--threads", "1", "--out", str(out)])
    assert "fixed batch of 4" in capsys.readouterr().out
    df = pd.read_csv(out)
    assert list(df["batch"]) == [4] and list(df["fixed_batch"]) == [4]


def test_torch_pruning_export_and_import(made, capsys):
    """A ResNet-20 pruned by Torch-Pruning to half the MACs: its ONNX is measured as it is, its state_dict imported
    as a checkpoint that computes the same logits; a pruned residual path is refused in one line."""
    import onnxruntime as ort
    d = made
    torch.manual_seed(1)
    spec = make_spec("resnet20")
    save_checkpoint(d / "r20.pt", spec, build_model(spec).state_dict(), make_meta("baseline", normalization=NORM))
    _main("scripts.external_models", ["torch-pruning", str(d / "r20.pt"), "--macs", "0.5", "--out", str(d / "tp")])
    _main("models.convert", [str(d / "tp.pth"), "--like", str(d / "r20.pt"), "--label", "torch-pruning",
                             "--out", str(d / "tp.pt")])
    model, ckpt = load_model(d / "tp.pt")
    assert ckpt["meta"]["method"] == "imported" and ckpt["meta"]["method_info"]["label"] == "torch-pruning"
    assert ckpt["meta"]["lineage"]["parent"] == str(d / "r20.pt")
    ratio = model_metrics(build_model(spec))["macs"] / model_metrics(model)["macs"]
    assert 1.9 <= ratio <= 2.2
    x = torch.randn(4, 3, 32, 32)
    session = ort.InferenceSession(str(d / "tp.onnx"))
    with torch.no_grad():
        assert np.abs(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0] - model(x).numpy()).max() < 1e-4
    out = d / "tp.csv"
    _main("benchmark.run", [str(d / "tp.onnx"), "--baseline", str(d / "r20.pt"), "--backends", "onnx",
                            "--batch-sizes", "8", "--test-dir", str(d / "data"), "--quick", "--threads", "1",
                            "--out", str(out)])
    row = pd.read_csv(out).query("method == 'external'").iloc[0]
    assert row["theoretical_speedup"] == pytest.approx(ratio, rel=0.01)
    # a residual (stage) width changed: cannot be rebuilt with the zero-padding shortcut
    state = torch.load(d / "tp.pth", weights_only=True)
    state["layer1.0.conv2.weight"] = state["layer1.0.conv2.weight"][:8]
    torch.save(state, d / "stage.pth")
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("models.convert").main,
                [str(d / "stage.pth"), "--like", str(d / "r20.pt"), "--out", str(d / "stage.pt")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "residual" in err
    assert not (d / "stage.pt").exists()


def test_nncf_int8_ir_runs_as_int8_on_openvino(made):
    d = made
    _main("scripts.external_models", ["nncf", str(d / "r8.onnx"), "--data-dir", str(d / "data"), "--calib-images",
                                      "32", "--out", str(d / "r8-int8")])
    out = d / "int8.csv"
    _main("benchmark.run", [str(d / "r8-int8.xml"), "--backends", "onnx,openvino", "--batch-sizes", "8",
                            "--test-dir", str(d / "data"), "--quick", "--threads", "1", "--out", str(out)])
    df = pd.read_csv(out)
    assert list(zip(df["backend"], df["precision"])) == [("openvino", "int8")]
    assert df["input_norm"].iloc[0] == "mean 0.5,0.5,0.5 std 0.25,0.25,0.25"


# ---------------------------------------------------------------- refusals: one line, exit 2, nothing written

def _hostile(d):
    """Each a file benchmark.run must refuse; returns {name: (path, extra argv, pattern)}."""
    import onnx
    from torch import nn
    cases = {}
    wide = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)).eval()
    graph = onnx.load_from_string(_export_shape(wide, (2, 3, 64, 64)))
    onnx.save(graph, str(d / "h-64px.onnx"))
    cases["input 64x64"] = ("h-64px.onnx", NORM_ARGS, "N x 3 x 32 x 32")
    hundred = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 100)).eval()
    onnx.save(onnx.load_from_string(_export_shape(hundred, (2, 3, 32, 32))), str(d / "h-100.onnx"))
    cases["100 classes"] = ("h-100.onnx", NORM_ARGS, "N x 10")
    cases["no normalisation"] = ("r8-nometa.onnx", [], "--mean and --std")
    # 1000 logits declared as 10, and N x 1000 logits reshaped to (N * 100) x 10: only the real output tells
    thousand = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000)).eval()
    graph = onnx.load_from_string(_export_shape(thousand, (2, 3, 32, 32)))
    graph.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 10
    onnx.save(graph, str(d / "h-1000as10.onnx"))
    cases["1000 classes declared 10"] = ("h-1000as10.onnx", NORM_ARGS, "logits of shape")

    class Reshaped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = thousand

        def forward(self, x):
            return self.inner(x).reshape(-1, 10)
    onnx.save(onnx.load_from_string(_export_shape(Reshaped().eval(), (2, 3, 32, 32))), str(d / "h-reshaped.onnx"))
    cases["reshaped N*100 x 10"] = ("h-reshaped.onnx", NORM_ARGS, "logits of shape")
    graph = onnx.load(str(d / "r8-nometa.onnx"))  # an initializer twice, with other values
    twin = onnx.TensorProto()
    twin.CopyFrom(graph.graph.initializer[0])
    twin.raw_data = bytes(len(twin.raw_data))
    graph.graph.initializer.append(twin)
    onnx.save(graph, str(d / "h-dup.onnx"))
    cases["duplicate initializer"] = ("h-dup.onnx", NORM_ARGS, "defined twice")
    save_onnx(build_model(make_spec("resnet8")).eval(), d / "h-255.onnx",
              {"mean": "125.3,123.0,113.9", "std": "63.0,62.1,66.7"})
    cases["normalisation in 0..255"] = ("h-255.onnx", [], "outside the 0..1 pixel scale")
    cases["normalisation 1e30"] = ("r8-nometa.onnx", ["--mean", "1e30,0,0", "--std", "1,1,1"], "outside the 0..1")
    cases["normalisation 1e-30"] = ("r8-nometa.onnx", ["--mean", "0,0,0", "--std", "1e-30,1,1"], "outside the 0..1")
    def external(name, **fields):  # r8 with its first initializer's data in a file, as the fields say
        graph = onnx.load(str(d / "r8-nometa.onnx"))
        tensor = graph.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in fields.items():
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(d / name))
        return name

    cases["external data outside"] = (external("h-outside.onnx", location="../../etc/passwd"), NORM_ARGS,
                                      "outside the model's folder")
    # external data inside the folder, with an offset or length that is not a byte count of it, or a hard link
    (d / "ext.bin").write_bytes(bytes(64))
    for name, fields in (("negative offset", {"offset": "-8"}), ("text offset", {"offset": "abc"}),
                         ("huge length", {"length": str(1 << 40)})):
        path = external(f"h-{name.replace(' ', '-')}.onnx", location="ext.bin", **fields)
        cases[f"external data {name}"] = (path, NORM_ARGS, "not a byte count")
    import os
    (d / "other.bin").write_bytes(bytes(64))
    os.link(d / "other.bin", d / "linked.bin")  # a second name: the first may lie anywhere
    cases["external data hard link"] = (external("h-hardlink.onnx", location="linked.bin"), NORM_ARGS, "hard link")
    # a custom-op domain
    graph = onnx.load(str(d / "r8-nometa.onnx"))
    graph.graph.node.append(onnx.helper.make_node("Evil", [graph.graph.input[0].name], ["evil_out"], domain="com.evil"))
    graph.opset_import.append(onnx.helper.make_opsetid("com.evil", 1))
    onnx.save(graph, str(d / "h-custom.onnx"))
    cases["custom domain"] = ("h-custom.onnx", NORM_ARGS, "custom domain")
    cases["oversized"] = ("r8-nometa.onnx", NORM_ARGS + ["--oversized"], "larger than")
    # an IR with a layer outside the standard opsets, one without its .bin, one declaring entities
    xml = (d / "r8.xml").read_text()
    (d / "h-custom.xml").write_text(xml.replace('version="opset1"', 'version="extension"', 1))
    (d / "h-custom.bin").write_bytes((d / "r8.bin").read_bytes())
    cases["IR custom layer"] = ("h-custom.xml", NORM_ARGS, "outside the standard opsets")
    (d / "h-nobin.xml").write_text(xml)
    cases["IR without .bin"] = ("h-nobin.xml", NORM_ARGS, "not beside it")
    (d / "h-entity.xml").write_text('<?xml version="1.0"?><!DOCTYPE net [<!ENTITY a "aaaa">]>' + xml.split("?>", 1)[1])
    (d / "h-entity.bin").write_bytes((d / "r8.bin").read_bytes())
    cases["IR entities"] = ("h-entity.xml", NORM_ARGS, "entity")
    (d / "h-loop.xml").write_text(xml.replace('type="Convolution"', 'type="Loop"', 1))
    (d / "h-loop.bin").write_bytes((d / "r8.bin").read_bytes())
    cases["IR control flow"] = ("h-loop.xml", NORM_ARGS, "control flow")
    cases["above the MAC bound"] = ("r8-nometa.onnx", NORM_ARGS + ["--max-gmacs", "0.001"], "GMAC per image")
    # a 16 GiB constant made at run time (it killed the benchmark by memory before its size was checked)
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array([1 << 16, 1 << 16], np.int64), "shape"),
             numpy_helper.from_array(np.zeros((3072, 10), np.float32), "w"),
             numpy_helper.from_array(np.array([-1, 3072], np.int64), "flat_shape")]
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
             helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["product"]),
             helper.make_node("Add", ["product", "total"], ["logits"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "h-16gib.onnx"))
    cases["16 GiB constant"] = ("h-16gib.onnx", NORM_ARGS, "makes a tensor of 4,294,967,296 elements")
    # a sparse Constant whose values live in a file of the current directory (ONNX Runtime opened it from there)
    values = helper.make_tensor("values", TensorProto.FLOAT, [1], [0.0])
    values.ClearField("float_data")
    values.data_location = TensorProto.EXTERNAL
    entry = values.external_data.add()
    entry.key, entry.value = "location", "secret.bin"
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("indices", TensorProto.INT64, [1], [0]), [10])
    nodes = [helper.make_node("Constant", [], ["offset"], sparse_value=sparse),
             helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["product"]),
             helper.make_node("Add", ["product", "offset"], ["logits"])]
    graph = helper.make_graph(nodes, "sparse", graph.input, graph.output, inits[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "h-sparse.onnx"))
    cases["sparse external data"] = ("h-sparse.onnx", NORM_ARGS, "sparse tensor with external data")
    # torch.export archives holding a pickled object, and a custom object entry
    with zipfile.ZipFile(d / "r8.pt2") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    config_name = next(n for n in entries if n.endswith("model_weights_config.json"))
    config = json.loads(entries[config_name])
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    folder = config_name.rsplit("/", 1)[0]
    Evil.marker = d / "PWNED"
    pickled = dict(entries, **{config_name: json.dumps(config).encode(),
                               f"{folder}/{config['config'][first]['path_name']}": pickle.dumps(Evil())})
    _zip(d / "h-pickle.pt2", pickled)
    cases["pt2 pickled object"] = ("h-pickle.pt2", NORM_ARGS, "stored with pickle")
    _zip(d / "h-customobj.pt2", dict(entries, **{f"{folder.rsplit('/', 1)[0]}/custom_objects/custom_obj_0": b"x"}))
    cases["pt2 custom object"] = ("h-customobj.pt2", NORM_ARGS, "custom")
    return cases


def _export_shape(model, shape):
    import io
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(*shape),), buf, dynamo=False, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}})
    return buf.getvalue()


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


@pytest.fixture(scope="module")
def hostile(made):
    return _hostile(made)


CASES = ["input 64x64", "100 classes", "no normalisation", "1000 classes declared 10", "reshaped N*100 x 10",
         "duplicate initializer", "normalisation in 0..255", "normalisation 1e30", "normalisation 1e-30",
         "external data outside", "external data negative offset", "external data text offset",
         "external data huge length", "external data hard link", "custom domain", "oversized",
         "IR custom layer", "IR without .bin", "IR entities", "IR control flow", "above the MAC bound",
         "16 GiB constant", "sparse external data", "pt2 pickled object", "pt2 custom object"]


@pytest.mark.parametrize("case", CASES)
def test_contract_and_hostile_files_are_one_line_exit_2_and_nothing_written(made, hostile, case, capsys, monkeypatch):
    import re
    d = made
    name, extra, pattern = hostile[case]
    if "--oversized" in extra:
        extra = [a for a in extra if a != "--oversized"]
        monkeypatch.setattr("benchmark.external.MAX_BYTES", 64 << 10)
    before = snapshot(d)
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("benchmark.run").main,
                [str(d / name), *extra, "--test-dir", str(d / "data"), "--quick", "--out", str(d / "refused.csv")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err, re.IGNORECASE), err
    assert snapshot(d) == before and not (d / "PWNED").exists()


# ---------------------------------------------------------------- torch.export archives that run code

def _payloads(d):
    """{name: (path, what benchmark.run does with it)}: torch.export archives that create d/PWNED when
    torch.export.load reads them (or when the loaded program runs), each built from the honest r8.pt2."""
    Evil.marker = d / "PWNED"
    evil = pickle.dumps(Evil())
    with zipfile.ZipFile(d / "r8.pt2") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    prefix = next(iter(entries)).split("/", 1)[0]
    program = json.loads(entries[f"{prefix}/models/model.json"])
    weights_config = json.loads(entries[f"{prefix}/data/weights/model_weights_config.json"])
    first = next(iter(weights_config["config"]))
    cases = {}

    def write(name, changed, added=(), before=(), outcome="refused"):
        members = list(before) + [(n, changed.get(n[len(prefix) + 1:], v)) for n, v in entries.items()]
        members += [(f"{prefix}/{n}", v) for n, v in added]
        path = d / f"pay-{name.replace(' ', '-')}.pt2"
        with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
            warnings.simplefilter("ignore")  # zipfile warns about the duplicated name, which is the point
            for n, v in members:
                z.writestr(n, v)
        cases[name] = (path, outcome)

    def program_with(change):
        copy = json.loads(json.dumps(program))
        change(copy)
        return {"models/model.json": json.dumps(copy).encode()}

    marker = repr(str(d / "PWNED"))
    write("pickled sample inputs", {"data/sample_inputs/model.pt": evil}, outcome="measured")
    write("second model", {}, [("models/evil.json", entries[f"{prefix}/models/model.json"]),
                               ("data/weights/evil_weights_config.json", json.dumps({"config": {"w": {
                                   "path_name": "weight_99", "is_param": True, "use_pickle": True,
                                   "tensor_meta": None}}}).encode()),
                               ("data/weights/weight_99", evil),
                               ("data/sample_inputs/evil.pt", entries[f"{prefix}/data/sample_inputs/model.pt"])])
    write("legacy weights", {}, [("data/weights/model.pt", evil)])
    write("opaque constant", {"data/constants/model_constants_config.json": json.dumps({"config": {"c": {
        "path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}).encode()},
        [("data/constants/opaque_obj_0", evil)])
    pickled = json.loads(json.dumps(weights_config))
    pickled["config"][first]["use_pickle"] = True
    weight = f"{prefix}/data/weights/{pickled['config'][first]['path_name']}"
    clean = io.BytesIO()
    torch.save(torch.zeros(1), clean)
    entries_without = {n: v for n, v in entries.items() if n != weight}
    entries, saved = entries_without, entries  # the evil copy first, a clean tensor last: readers differ
    write("duplicate member", {"data/weights/model_weights_config.json": json.dumps(pickled).encode()},
          before=[(weight, evil)], added=[(weight[len(prefix) + 1:], clean.getvalue())])
    entries = saved
    write("sympy size", program_with(lambda p: p["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0][
        "as_expr"].update(expr_str=f"open({marker}, 'w') and Symbol('s77', positive=True, integer=True)")))
    write("guard code", program_with(lambda p: p.update(guards_code=[f"open({marker}, 'w')"])), outcome="measured")
    write("python function", program_with(lambda p: p["graph_module"]["graph"]["nodes"][0].update(
        target="torch.os.system")))
    write("compiled library", {}, [("data/aotinductor/model/model.so", b"\x7fELF")])
    return cases


# every payload but the last two runs its code when torch.export.load reads it or the loaded program runs
LIVE = ["pickled sample inputs", "second model", "legacy weights", "opaque constant", "duplicate member",
        "sympy size", "guard code"]
PAYLOADS = LIVE + ["python function", "compiled library"]


@pytest.fixture(scope="module")
def payloads(made):
    return _payloads(made)


@pytest.mark.parametrize("name", PAYLOADS)
def test_no_torch_export_archive_runs_code(made, payloads, name, capsys):
    d = made
    path, outcome = payloads[name]
    marker = d / "PWNED"
    if name in LIVE:  # the payload is real: torch itself runs it
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            torch.export.load(path).module()(torch.zeros(2, 3, 32, 32))
        assert marker.exists(), f"{name}: the payload did not run in torch.export.load"
        marker.unlink()
        capsys.readouterr()  # torch's own warnings about the file
    out = d / f"payload-{name.replace(' ', '-')}.csv"
    before = snapshot(d)
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("benchmark.run").main,
                [str(path), *NORM_ARGS, "--backends", "eager", "--batch-sizes", "8", "--test-dir", str(d / "data"),
                 "--quick", "--threads", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), f"{name}: code from the archive ran"
    assert "Traceback" not in err
    if outcome == "measured":  # the member torch would run is replaced (sample inputs) or dropped (guards)
        assert e.value.code == 0, err
        assert (pd.read_csv(out)["source_format"] == "torch.export").all()
        out.unlink()
    else:
        assert e.value.code == 2 and len(err.splitlines()) == 1, err
        assert "refused" in err, err
    assert snapshot(d) == before


def test_a_baseline_file_keeps_its_own_normalisation(made):
    """--mean/--std are the measured file's; the --baseline file reads its own metadata (it scored 45 instead of 87
    with the user's values, a +42-point "change")."""
    d = made
    out = d / "own-norm.csv"
    _main("benchmark.run", [str(d / "r8-nometa.onnx"), "--mean", "0,0,0", "--std", "1,1,1", "--baseline",
                            str(d / "r8.onnx"), "--backends", "onnx", "--batch-sizes", "8", "--test-dir",
                            str(d / "data"), "--quick", "--threads", "1", "--out", str(out)])
    norms = dict(zip(pd.read_csv(out)["checkpoint"].map(lambda p: p.rsplit("/", 1)[-1]),
                     pd.read_csv(out)["input_norm"]))
    assert norms == {"r8-nometa.onnx": "mean 0,0,0 std 1,1,1", "r8.onnx": "mean 0.5,0.5,0.5 std 0.25,0.25,0.25"}


def test_a_model_that_fails_on_a_batch_is_one_line():
    """A graph that asks for terabytes at run time (or any runtime error) is refused in one line while scoring."""
    from common.errors import UserError
    from runtimes.runners import top1_and_loss

    class Failing:
        def prepare(self, images):
            return images

        def logits(self, x):
            raise MemoryError("std::bad_alloc: 2.5 TB\n  at line 1\n  at line 2")

    with pytest.raises(UserError, match=r"^m.pt2: the model fails on a batch of 4 images \(MemoryError: at line 2\)$"):
        top1_and_loss(Failing(), [(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))], "m.pt2")


@pytest.mark.parametrize("case", ["config a list", "config of ints", "config nested deep", "program nested deep"])
def test_malformed_pt2_json_is_one_line(made, case, capsys):
    """The archive's JSON members as a hostile file may hold them: each refused in one line by benchmark.pt2_archive
    before torch reads anything."""
    d = made
    with zipfile.ZipFile(d / "r8.pt2") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    config = next(n for n in entries if n.endswith("model_weights_config.json"))
    model = next(n for n in entries if n.endswith("models/model.json"))
    deep = "[" * 5000 + "]" * 5000
    changed = {"config a list": {config: b"[1, 2, 3]"}, "config of ints": {config: b'{"config": {"w": 7}}'},
               "config nested deep": {config: ('{"config": ' + deep + "}").encode()},
               "program nested deep": {model: ('{"graph_module": ' + deep + "}").encode()}}[case]
    path = d / f"pay-{case.replace(' ', '-')}.pt2"
    _zip(path, dict(entries, **changed))
    before = snapshot(d)
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("benchmark.run").main,
                [str(path), *NORM_ARGS, "--test-dir", str(d / "data"), "--quick", "--out", str(d / "refused.csv")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert snapshot(d) == before


def test_a_rank_3_output_is_refused_in_one_line(made, capsys):
    from torch import nn

    class Rank3(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

        def forward(self, x):
            return self.head(x).unsqueeze(1)
    d = made
    import onnx
    onnx.save(onnx.load_from_string(_export_shape(Rank3().eval(), (2, 3, 32, 32))), str(d / "h-rank3.onnx"))
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("benchmark.run").main,
                [str(d / "h-rank3.onnx"), *NORM_ARGS, "--test-dir", str(d / "data"), "--quick", "--out",
                 str(d / "refused.csv")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "N x 10" in err, err


def test_a_model_too_slow_to_finish_is_refused_after_its_first_batch(monkeypatch):
    """Run time is bounded per configuration: from the second scored batch on (the first may compile), a model that
    needs more than MAX_SECONDS_PER_IMAGE is refused in one line instead of running for hours."""
    import runtimes.runners as runners
    from common.errors import UserError

    class Slow:
        calls = 0

        def prepare(self, images):
            return images

        def logits(self, x):
            Slow.calls += 1
            return torch.zeros(len(x), 10)

    monkeypatch.setattr(runners, "MAX_SECONDS_PER_IMAGE", -1.0)  # any time is too long: the bound is what is tested
    batch = (torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    with pytest.raises(UserError, match="s per image"):
        runners.top1_and_loss(Slow(), [batch, batch, batch], "slow.onnx")
    assert Slow.calls == 2  # the first batch is not judged, the second is and stops the scoring
