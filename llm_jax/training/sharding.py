"""The device mesh and the one table that maps logical axis names to mesh axes."""

import logging

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axis (or tuple of mesh axes, or None for replicated). Parameters shard
# their embedding dimension over `fsdp` (ZeRO-3 style) and their head/MLP/vocab dimension over
# `tensor` (Megatron style); activations shard their batch over `data` and `fsdp`.
RULES = {
    "batch": ("data", "fsdp"),
    "vocab": "tensor",
    "embed": "fsdp",
    "mlp": "tensor",
    "heads": "tensor",
    "kv": None,
    "layers": None,
    "positions": None,
    "norm": None,
}


def make_mesh(mesh_cfg, devices=None) -> jax.sharding.Mesh:
    """A (data, fsdp, tensor) mesh; a size of -1 takes the devices the others leave."""
    devices = jax.devices() if devices is None else devices
    sizes = [int(mesh_cfg.get(a, 1)) for a in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"config.mesh: at most one of {MESH_AXES} may be -1, got {sizes}")
    if -1 in sizes:
        rest = int(np.prod([s for s in sizes if s != -1]))
        if len(devices) % rest:
            raise ValueError(f"config.mesh: {len(devices)} devices are not divisible by {rest}")
        sizes[sizes.index(-1)] = len(devices) // rest
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(f"config.mesh sizes data*fsdp*tensor = {sizes} need "
                         f"{int(np.prod(sizes))} devices; {len(devices)} are available")
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                         devices=devices)


def logical_to_spec(logical_axes, shape, mesh) -> P:
    """Mesh PartitionSpec for one array; a dimension the mesh axis does not divide stays whole."""
    spec = []
    for name, dim in zip(logical_axes, shape):
        if name is not None and name not in RULES:
            raise KeyError(f"logical axis {name!r} has no entry in training/sharding.py RULES")
        mesh_axes = RULES.get(name) if name is not None else None
        if mesh_axes is not None:
            axes = (mesh_axes,) if isinstance(mesh_axes, str) else mesh_axes
            size = int(np.prod([mesh.shape[a] for a in axes]))
            if dim % size:
                if size > 1:
                    logging.info("axis %r of size %d is not divisible by mesh %s=%d: replicated",
                                 name, dim, axes, size)
                mesh_axes = None
        spec.append(mesh_axes)
    return P(*spec)


def tree_shardings(logical_specs, shapes, mesh):
    """NamedShardings for a tree of logical PartitionSpecs and a matching tree of shapes."""
    is_spec = lambda x: isinstance(x, P)  # noqa: E731
    return jax.tree.map(
        lambda spec, s: NamedSharding(mesh, logical_to_spec(tuple(spec), s.shape, mesh)),
        logical_specs, shapes, is_leaf=is_spec)


def batch_sharding(mesh) -> NamedSharding:
    return NamedSharding(mesh, P(RULES["batch"]))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
