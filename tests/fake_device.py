"""A fake accelerator for device-hygiene tests on a CPU-only machine (test_rdo.py).

Inside ``FakeDevice()``, a tensor made for ``FAKE`` (``device=FAKE``, ``.to(FAKE)``) is a CPU
tensor of class ``OnFake`` whose ``.device`` says ``FAKE``; what is computed from one is one
too. An operation that mixes an ``OnFake`` tensor with a plain CPU tensor of one dimension or
more raises, as it would on CUDA (0-dimensional CPU tensors mix there too), and so does
``.numpy()`` of an ``OnFake`` tensor. So code that creates a tensor on the CPU and combines it
with the input's (CUDA) tensors fails here, on any machine. ``FAKE`` is the meta device: a
tensor that escaped the mode would be a real meta tensor and fail on first use of its data.
"""

import torch
from torch.overrides import TorchFunctionMode

FAKE = torch.device("meta")


class OnFake(torch.Tensor):
    """A CPU tensor that says it lives on ``FAKE``."""

    @property
    def device(self):
        return FAKE


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)


def _is_fake(d) -> bool:
    return isinstance(d, (str, torch.device)) and torch.device(d) == FAKE


def _mark(x):
    """Tensors in ``x`` (a tensor, a tuple such as ``min``'s, a list) as ``OnFake``."""
    if isinstance(x, torch.Tensor):
        return x if isinstance(x, OnFake) else x.as_subclass(OnFake)
    if isinstance(x, (list, tuple)):
        return type(x)([_mark(v) for v in x])
    return x


def _plain(x):
    if isinstance(x, OnFake):
        return x.as_subclass(torch.Tensor)
    if type(x) in (list, tuple):
        return type(x)(_plain(v) for v in x)
    return x


class FakeDevice(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        with torch._C.DisableTorchFunctionSubclass():
            first = args[0] if args else None
            if func is torch.Tensor.cpu:
                return _plain(first)
            if func in (torch.Tensor.numpy, torch.Tensor.__array__) and isinstance(first, OnFake):
                raise TypeError(f"can't convert a {FAKE} (fake device) tensor to numpy: move it to the cpu first")
            to_fake = _is_fake(kwargs.get("device"))
            if kwargs.get("device") is not None:
                kwargs["device"] = "cpu"
            if func is torch.Tensor.to:
                target, rest = ("cpu" if "device" in kwargs else None), []
                if to_fake:
                    target = FAKE
                for a in args[1:]:
                    if isinstance(a, (str, torch.device)):
                        target, a = torch.device(a), "cpu"
                    elif isinstance(a, torch.Tensor):  # .to(other): its device and dtype
                        target, a = a.device, a.dtype
                    rest.append(a)
                out = func(_plain(first), *rest, **kwargs)
                if target is None:  # a dtype change stays where it was
                    target = first.device
                return _mark(out) if target == FAKE else out
            tensors = list(_tensors(args)) + list(_tensors(kwargs))
            fake = any(isinstance(t, OnFake) for t in tensors)
            cpu = [t for t in tensors if not isinstance(t, OnFake) and t.dim() > 0]
            if fake and cpu:
                name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
                raise RuntimeError(f"{name}: tensors on {FAKE} (fake device) and on the cpu {tuple(cpu[0].shape)} mixed")
            out = func(*[_plain(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()})
            return _mark(out) if fake or to_fake else out
