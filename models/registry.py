"""The replacement layers a spec can name: each module type a checkpoint can contain registers a builder here
(`register_layer`), and a spec's "layers" entry maps a module path to such a description, e.g.
{"layer1.0.conv1": {"type": "svd", ...}}. Kept apart from models/__init__.py so that the layer modules register
without importing the package that imports them.
"""
import copy

LAYER_BUILDERS = {}


def register_layer(type_name):
    """Decorator: `builder(entry: dict) -> nn.Module` rebuilds a replaced module from its spec entry."""
    def wrap(builder):
        LAYER_BUILDERS[type_name] = builder
        return builder
    return wrap


def get_submodule_parent(model, path):
    parent_path, _, attr = path.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), attr


def replace_module(model, path, module):
    parent, attr = get_submodule_parent(model, path)
    setattr(parent, attr, module)


def spec_with_layer(spec, path, entry):
    """A copy of `spec` in which module `path` is replaced as `entry` describes."""
    spec = copy.deepcopy(spec)
    spec.setdefault("layers", {})[path] = entry
    return spec
