"""A torch.export archive (.pt2) rewritten from what the project's own checks read, so that torch.export.load never
sees an untrusted byte that it would turn into code.

torch.export.load runs code from a file in several places: it unpickles weights and constants stored with pickle
(weights_only=False), custom and opaque objects, a second model's data, weights of the legacy format and the sample
inputs (weights_only=True, then weights_only=False when that fails); it evaluates every symbolic size of the graph
with sympy.sympify (Python's eval) and every guard of the program with exec; it resolves operator names by
attribute lookup from the torch module (torch.os.system is such a name); and it loads AOTInductor libraries found in
the archive. So the archive torch sees is not the user's file but one written here:

- members: only the names of one exported program (below); any other member, or a name twice, is refused;
- weights and constants: raw tensor bytes with their size, stride and offset checked; any pickled entry is refused;
- sample inputs: the user's member is dropped and replaced by zeros of the input's shape, pickled here;
- the program (JSON): every operator is an aten overload or getitem, no nested graph (control flow), every symbolic
  size a plain sympy expression of a short grammar (names from a list, integers, parentheses, + - * /),
  guards and node metadata dropped (input checks and stack traces: the benchmark checks the contract itself);
- extra files: only "mean" and "std", as short text.

A file that passes is rebuilt from checked values only; a file that does not is refused in one line.
"""
import io
import json
import math
import re
import zipfile

import torch

from common.errors import UserError, first_line

MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d{1,6}"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d{1,6}"
    r"|data/sample_inputs/model\.pt|extra/(mean|std))"
)
SMALL_TEXT = 64  # bytes: archive_format, version strings, byte order, mean and std
OPERATOR = re.compile(r"torch\.ops\.aten\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*|_operator\.getitem")
# sympy.sympify evaluates its text: only constructor calls of plain sympy classes, integers and symbol names pass
SYMPY_NAMES = {"Symbol", "Integer", "Add", "Mul", "Mod", "FloorDiv", "CleanDiv", "Max", "Min", "PythonMod",
               "positive", "integer", "nonnegative", "True", "False"}
SYMPY_TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d{1,18}|'[a-z]{1,3}\d{1,9}'|[()+\-*/,=]")
SYMBOL = re.compile(r"[a-z]{1,3}\d{1,9}")
VERIFIERS = {"TRAINING", "ATEN"}
TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict"}
MAX_DEPTH = 64  # JSON nesting: the program of a ResNet nests about 12 deep


def sanitize(raw, path, max_bytes):
    """The bytes of a new archive holding only the checked contents of the .pt2 file `raw`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise UserError(f"{path}: not a torch.export archive ({first_line(e)})") from None
    if sum(i.file_size for i in infos) > max_bytes:
        raise UserError(f"{path}: refused: unpacks to more than {max_bytes >> 20} MiB")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[0]
        raise UserError(f"{path}: refused: the member {twice!r} appears twice (which copy torch reads is not known)")
    prefixes = {n.split("/", 1)[0] for n in names}
    if len(prefixes) != 1 or any("/" not in n for n in names):
        raise UserError(f"{path}: refused: not one exported program in one archive folder")
    prefix = prefixes.pop()
    members = {}
    for info in infos:
        name = info.filename.split("/", 1)[1]
        if info.is_dir():
            continue
        if not MEMBERS.fullmatch(name):
            raise UserError(
                f"{path}: refused: the member {name!r} is not part of one exported program with plain tensors "
                "(second models, legacy weights, custom or opaque objects and compiled libraries are not loaded)"
            )
        members[name] = archive.read(info)
    for name in ("archive_format", "byteorder", "models/model.json", "data/weights/model_weights_config.json"):
        if name not in members:
            raise UserError(f"{path}: not a torch.export archive ({name} missing)")
    text = {n: _small_text(members[n], n, path) for n in members if not n.startswith(("models/", "data/"))}
    if text["archive_format"] != "pt2" or text["byteorder"] != "little":
        raise UserError(f"{path}: refused: archive format {text['archive_format']!r}, byte order {text['byteorder']!r}")

    program = _json(members["models/model.json"], "models/model.json", path)
    input_shape = _check_program(program, path)
    out = {n: members[n] for n in text}
    out["models/model.json"] = json.dumps(program).encode()
    for kind in ("weights", "constants"):
        config_name = f"data/{kind}/model_{kind}_config.json"
        if config_name not in members:
            continue
        config = _json(members[config_name], config_name, path)
        out[config_name] = json.dumps(config).encode()
        for fqn, entry in _entries(config, config_name, path):
            name = f"data/{kind}/{entry['path_name']}"
            if name not in members:
                raise UserError(f"{path}: {fqn}: its data {entry['path_name']!r} is missing from the archive")
            _check_tensor(entry, len(members[name]), fqn, path)
            out[name] = members[name]
    buffer = io.BytesIO()  # the sample inputs are ours: zeros of the input's shape, pickled here
    torch.save(((torch.zeros(input_shape),), {}), buffer)
    out["data/sample_inputs/model.pt"] = buffer.getvalue()
    return _write(prefix, out)


def _small_text(data, name, path):
    if len(data) > SMALL_TEXT:
        raise UserError(f"{path}: refused: {name} is longer than {SMALL_TEXT} bytes")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UserError(f"{path}: refused: {name} is not plain text") from None


def _json(data, name, path):
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{path}: unreadable {name} ({first_line(e)})") from None
    if not isinstance(value, dict) or _depth(value) > MAX_DEPTH:
        raise UserError(f"{path}: refused: {name} is not an object nested at most {MAX_DEPTH} deep")
    return value


def _depth(value):
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _entries(config, name, path):
    entries = config.get("config")
    if not isinstance(entries, dict):
        raise UserError(f"{path}: unreadable {name} (no 'config' object)")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
            raise UserError(f"{path}: unreadable {name} (entry {str(fqn)[:60]!r})")
        if entry.get("use_pickle"):
            raise UserError(f"{path}: refused: {str(fqn)[:60]} is stored with pickle, not as plain tensor bytes")
        if not re.fullmatch(r"(weight|tensor)_\d{1,6}", entry["path_name"]):
            raise UserError(
                f"{path}: refused: {str(fqn)[:60]} is stored as {entry['path_name'][:60]!r}, not as plain tensor "
                "bytes (custom and opaque objects are pickles)"
            )
        yield fqn, entry


def _check_tensor(entry, stored, fqn, path):
    meta = entry.get("tensor_meta") if isinstance(entry.get("tensor_meta"), dict) else {}

    def ints(key):
        values = meta.get(key) if isinstance(meta.get(key), list) else [None]
        return [v.get("as_int") if isinstance(v, dict) else None for v in values]

    sizes, strides = ints("sizes"), ints("strides")
    offset = meta.get("storage_offset", {}).get("as_int") if isinstance(meta.get("storage_offset"), dict) else None
    numbers = sizes + strides + [offset]
    if any(type(v) is not int or v < 0 for v in numbers) or len(sizes) != len(strides):
        raise UserError(f"{path}: refused: {str(fqn)[:60]} has symbolic, negative or missing sizes")
    # the largest element offset the view reaches must lie inside the stored bytes (no stride-0 bombs); every
    # element takes at least a byte
    reach = offset + 1 + sum((n - 1) * s for n, s in zip(sizes, strides)) if all(sizes) else 0
    if math.prod(sizes) > stored or reach > stored:
        raise UserError(f"{path}: refused: {str(fqn)[:60]} claims more elements than its stored bytes hold")


def _check_program(program, path):
    """Check the program JSON in place (guards and node metadata dropped); the input's shape, batch from its hint."""
    module = program.get("graph_module")
    graph = module.get("graph") if isinstance(module, dict) else None
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise UserError(f"{path}: not a torch.export program (no graph)")
    for node in graph["nodes"]:
        target = node.get("target") if isinstance(node, dict) else None
        if not isinstance(target, str) or not OPERATOR.fullmatch(target):
            raise UserError(
                f"{path}: refused: operator {str(target)[:80]!r} is not an aten operator (custom ops are native code, "
                "other names are Python functions)"
            )
        node["metadata"] = {}
    if any(key in ("as_graph", "as_custom_obj", "as_custom_objs") for key in _keys(program)):
        raise UserError(f"{path}: refused: nested graphs (control flow) or custom objects in the program")
    for expr in _values(program, "expr_str"):
        _check_sympy(expr, path)
    for name in (program.get("range_constraints") or {}):
        if not SYMBOL.fullmatch(str(name)):
            raise UserError(f"{path}: refused: symbol {str(name)[:40]!r} is not a plain size name")
    if not set(program.get("verifiers") or []) <= VERIFIERS:
        raise UserError(f"{path}: refused: verifiers {program.get('verifiers')!r}")
    for spec in _values(program, "in_spec", "out_spec"):
        try:
            types = set(_values(json.loads(spec), "type"))
        except (TypeError, ValueError, RecursionError):
            types = {"unreadable"}
        if not types <= TREESPEC_TYPES:
            raise UserError(f"{path}: refused: the program's inputs or outputs are not plain tuples, lists or dicts")
    program["guards_code"] = []  # exec'd by ExportedProgram.module(): input checks the benchmark makes itself
    inputs = [s.get("user_input", {}).get("arg", {}).get("as_tensor", {}).get("name")
              for s in module.get("signature", {}).get("input_specs", []) if isinstance(s, dict) and "user_input" in s]
    meta = graph.get("tensor_values", {}).get(inputs[0]) if len(inputs) == 1 else None
    if not isinstance(meta, dict) or not isinstance(meta.get("sizes"), list) or len(meta["sizes"]) != 4:
        raise UserError(f"{path}: the program must take one N x 3 x 32 x 32 input")
    shape = []
    for dim in meta["sizes"]:
        value = dim.get("as_int") if isinstance(dim, dict) else None
        if value is None and isinstance(dim, dict) and isinstance(dim.get("as_expr"), dict):
            hint = dim["as_expr"].get("hint")
            value = hint.get("as_int") if isinstance(hint, dict) else 1
        if type(value) is not int or not 0 < value <= 4096:
            raise UserError(f"{path}: the program must take one N x 3 x 32 x 32 input")
        shape.append(value)
    return shape


def _check_sympy(expr, path):
    text = str(expr)
    if len(text) > 1000 or "".join(SYMPY_TOKEN.findall(text)) != text or "__" in text:
        raise UserError(f"{path}: refused: a symbolic size {text[:60]!r} is not a plain sympy expression")
    for token in SYMPY_TOKEN.findall(text):
        if token[0].isalpha() and token not in SYMPY_NAMES:
            raise UserError(f"{path}: refused: a symbolic size uses {token[:40]!r} (sympy evaluates it as Python)")


def _keys(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _values(value, *keys):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key in keys:
                    yield child
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _write(prefix, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{prefix}/{name}", data)
    return buffer.getvalue()
