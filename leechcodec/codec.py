"""Image ⇄ .lq bytes, one small step at a time.

    image ─prepare→ (H, W, 3) uint8 ─tile→ (T, 3, 256, 256) ─analysis+nearest→ (T, 1024) indices
          ─coder→ payload ─container.pack→ bytes

and back. The model is a ``tokenizer.Tokenizer`` (``analysis``, ``synthesis``, ``model_id``,
``tile``, ``patch``; for the ``ar`` coder a ``prior``, see ``coders``): this module never
imports a particular network, nor torch unless the model is a torch model. Tiles and the
decoder's windows are ``tiling``'s; the rate search over coded sizes is ``ratecontrol``'s.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import coders, container, lattice, ratecontrol, scale as scaling, stages as staging
from .container import DEFAULT_MAX_PIXELS, Header, read_header
from .errors import FormatError, ModelError, ModelMismatchError
from .image_io import prepare, read_image, to_rgb_array
from .quality import quality_setting
from .tiling import Tiles, halo_window, tile_image, token_grid
from .tokenizer import grid_of, halo_of, numpy_networks, prior_of, torch_model

TILE_BATCH = 6  # tiles per forward pass: one Kodak image, bounded memory for big images


def normalize(y: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Latents onto the unit sphere, as ``quantizer.normalize`` does in training."""
    norm = np.sqrt(np.einsum("...i,...i->...", y, y, dtype=np.float32))[..., None]
    return (y / np.maximum(norm, np.float32(eps))).astype(np.float32, copy=False)


def to_pixels(x: np.ndarray) -> np.ndarray:
    """Decoder output (nominally [0, 1]) → uint8: clamped, times 255, rounded half to even."""
    return np.rint(np.clip(x, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def _batches(n: int, progress: bool, desc: str):
    starts = range(0, n, TILE_BATCH)
    bar = tqdm(total=n, desc=desc, unit="tile", disable=not progress or n <= TILE_BATCH, leave=False)
    for s in starts:
        yield slice(s, min(n, s + TILE_BATCH))
        bar.update(min(n, s + TILE_BATCH) - s)
    bar.close()


def tiles_to_indices(
    model, tiles: np.ndarray, device: str = "cpu", progress: bool = False, precision: str = "fp32",
    latents: list | None = None,
) -> np.ndarray:
    """(T, 3, tile, tile) uint8 → (T, tokens) int64 codeword indices (raster order per tile).

    ``latents``: a list to append each batch's (B, tokens, 24) float32 unit latents to (what
    the rate–distortion choice of ``encode(lam=…)`` measures distortion against).
    """
    net = numpy_networks(model, device, precision)
    out = []
    for sl in _batches(len(tiles), progress, "encode"):
        x = np.asarray(tiles[sl], dtype=np.float32) / np.float32(255.0)
        y = normalize(net.analysis(x))  # (B, h, w, 24)
        idx = lattice.nearest(y.reshape(-1, lattice.DIM))
        out.append(idx.reshape(y.shape[0], -1))
        if latents is not None:
            latents.append(y.reshape(y.shape[0], -1, lattice.DIM))
    return np.concatenate(out) if out else np.empty((0, 0), np.int64)


def indices_to_tiles(
    model, indices: np.ndarray, device: str = "cpu", progress: bool = False, precision: str = "fp32",
    gain: np.ndarray | None = None,
) -> np.ndarray:
    """(T, tokens) indices → (T, 3, tile, tile) uint8 reconstructions; (S, T, tokens) tokens of
    S residual stages with their ``gain`` (``stages.gains``) likewise, the decoder fed their sum."""
    g = grid_of(model)
    net = numpy_networks(model, device, precision)
    staged = _staged(indices)
    out = []
    for sl in _batches(staged.shape[1], progress, "decode"):
        idx = staged[:, sl]
        q = _latent(idx, gain).reshape(idx.shape[1], g, g, lattice.DIM)
        out.append(to_pixels(net.synthesis(q)))
    return np.concatenate(out)


def _staged(indices) -> np.ndarray:
    """(T, n) tokens of one stage or (S, T, n) of S stages → (S, T, n)."""
    indices = np.asarray(indices)
    return indices[None] if indices.ndim == 2 else indices


def _latent(tokens: np.ndarray, gain: np.ndarray | None) -> np.ndarray:
    """(S, …) tokens → the decoder's input (…, 24): one stage's unit codewords, or the stages' sum."""
    if len(tokens) == 1:
        return lattice.vectors(tokens[0])
    if gain is None or len(gain) < len(tokens):
        raise ValueError(f"{len(tokens)} stages need their gains")
    return staging.latent_sum(tokens, gain)


def indices_to_image(
    model,
    indices: np.ndarray,
    tx: int,
    ty: int,
    device: str = "cpu",
    progress: bool = False,
    precision: str = "fp32",
    size: tuple[int, int] | None = None,
    into: Image.Image | None = None,
    gain: np.ndarray | None = None,
) -> np.ndarray | Image.Image:
    """(T, tokens) indices of a ``tx`` × ``ty`` tile grid (or (S, T, tokens) tokens of S residual
    stages and their ``gain``, ``stages.gains``) → (ty·tile, tx·tile, 3) uint8, or
    (height, width, 3) for ``size`` = (width, height): the padding is never allocated. With
    ``into`` (an RGB PIL image of the picture's size) the tiles are pasted into it instead,
    and it is returned: no second copy of a big picture.

    With ``model.decode_halo`` = h > 0 each tile is decoded from a window of the whole token
    grid that reaches h tokens into its neighbours (fewer at the image border), and only the
    tile's own pixels are kept: no seams at tile lines, memory bounded by the window. With
    h = 0 (or no such attribute) every tile is decoded on its own. ``precision``: see
    ``torch_nets.block_dtype``.
    """
    halo = halo_of(model)
    net = numpy_networks(model, device, precision)
    g, p, t = grid_of(model), model.patch, model.tile
    if into is not None:
        width, height = into.size
        out = into
    else:
        width, height = size or (tx * t, ty * t)
        out = np.empty((height, width, 3), np.uint8)

    def put(r: int, c: int, tile_hwc: np.ndarray) -> None:
        part = tile_hwc[: height - r * t, : width - c * t]  # the picture's own pixels of tile (r, c)
        if into is not None:
            into.paste(Image.fromarray(np.ascontiguousarray(part), "RGB"), (c * t, r * t))
        else:
            out[r * t : r * t + part.shape[0], c * t : c * t + part.shape[1]] = part

    staged = _staged(indices)
    if halo == 0:  # tiles on their own, TILE_BATCH per network call
        for sl in _batches(staged.shape[1], progress, "decode"):
            tiles = indices_to_tiles(net, staged[:, sl], device="cpu", gain=gain)  # (B, 3, t, t)
            for i, tile in zip(range(sl.start, sl.stop), tiles):
                put(*divmod(i, tx), tile.transpose(1, 2, 0))
        return out
    grid = np.stack([token_grid(s, tx, ty) for s in staged])  # (S, ty·g, tx·g)
    bar = tqdm(total=tx * ty, desc="decode", unit="tile", disable=not progress or tx * ty <= TILE_BATCH, leave=False)
    for r in range(ty):
        for c in range(tx):
            r0, r1, c0, c1 = halo_window(r, c, tx, ty, g, halo)
            q = _latent(grid[:, r0:r1, c0:c1], gain)[None]  # (1, h, w, 24)
            y = net.synthesis(q)[0]  # (3, h·p, w·p)
            oy, ox = (r * g - r0) * p, (c * g - c0) * p
            put(r, c, to_pixels(y[:, oy : oy + t, ox : ox + t]).transpose(1, 2, 0))
            bar.update(1)
    bar.close()
    return out


class _Clock:
    """Seconds of each phase into ``stats`` (a caller's dict, or nothing)."""

    def __init__(self, stats: dict | None, **facts):
        self.stats = stats if stats is not None else {}
        self.stats.update(facts)
        self.laps: set[str] = set()
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        """Add the seconds since the last lap to phase ``name`` (a phase may run several times)."""
        now = time.perf_counter()
        self.stats[name] = self.stats.get(name, 0.0) + now - self.t if name in self.laps else now - self.t
        self.laps.add(name)
        self.t = now


def _one_blas_thread(fn):
    """Run ``fn`` with numpy's BLAS on one thread (threadpoolctl): the search, the prior and the
    rate choice make many small products, which a BLAS thread pool only slows down, and its
    idle threads spin against whatever else runs on the machine. The networks have their own
    threads (ONNX Runtime's ``--threads``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits  # here: a missing one only costs speed
        except ImportError:  # a dependency; a bare environment still encodes
            limit = contextlib.nullcontext()
        else:
            limit = threadpool_limits(1, user_api="blas")
        with limit:
            return fn(*args, **kwargs)

    return wrapper


def pick_coder(model, coder: str = "auto") -> str:
    """Resolve ``"auto"``: the ``ar`` coder when the model has a prior, else ``fixed``."""
    if coder == "auto":
        return "ar" if prior_of(model) is not None else "fixed"
    if coder not in coders.CODERS:
        raise ValueError(f"unknown coder {coder!r}; available: auto, {', '.join(coders.CODERS)}")
    if coder == "ar" and prior_of(model) is None:
        raise ModelError("the ar coder needs an AR prior for this model (NAME.prior.safetensors beside its weights)")
    return coder


@_one_blas_thread
def encode(
    image,
    model,
    coder: str = "auto",
    device: str = "cpu",
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    effort: int = 0,
    keep_orientation: bool = False,
    first_frame: bool = False,
    precision: str = "auto",
    stats: dict | None = None,
    lam: float = 0.0,
    bpp: float | None = None,
    stages: int | None = None,
    quality: float | None = None,
    scale: float | None = None,
) -> bytes:
    """Compress an image into .lq bytes.

    Args:
        image: a PIL image, a path, a binary file object or encoded image bytes.
        model: a tokenizer (``analysis``/``synthesis``/``model_id``/``tile``/``patch``).
        coder: how token indices are stored: "ar" (arithmetic coding with the model's prior),
            "fixed" (17.585 bits per token) or "auto" (ar when the model has a prior).
        device: torch device for the network ("cpu" or "cuda").
        progress: show a progress bar over tiles for large images.
        max_pixels: refuse larger images (None: no limit), and larger coded sizes (``scale``);
            see ``container.check_size``.
        effort: rounds of token refinement against the decoder (``refine``); 0 = the
            encoder's nearest codewords. The stream decodes the same way either way.
        keep_orientation: code the stored pixel order, ignoring the EXIF Orientation.
        first_frame: code the first frame of an animation or multi-page file instead of
            refusing it.
        precision: the encoder network's transformer blocks in "fp32", "bf16" or "auto"
            (bf16 where the hardware has it; ``torch_nets.block_dtype``). Any choice gives a valid stream.
        stats: a dict to fill with what was done: ``coder``, ``precision`` ("fp32"/"bf16"),
            ``lambda``, ``stages``, ``scale`` and ``coded_size``, and the seconds of each phase
            (``prepare_s``, ``resample_s``, ``network_s``, ``refine_s``, ``coder_s``).
        lam: the rate knob λ ≥ 0 of the ar coder (``rdo``): each token becomes the codeword
            minimising latent distortion + λ·bits under the prior, so larger λ gives smaller
            files; 0 writes the nearest codewords. The stream decodes the same way either way.
        bpp: a target rate instead of ``lam`` (ar coder): a stream at or under ``bpp`` bits per
            pixel (header included), within ``ratecontrol.BPP_TOLERANCE`` (2 %) of it where
            the knobs' steps allow, whose coded size, stages and λ ``ratecontrol.search`` picks
            for this picture (with ``scale``: at that size, stages and λ only).
        stages: residual Λ24 stages per patch, at most (``stages``; 1 to ``MAX_STAGES``): each
            adds a token that refines the ones before it, for more quality and more bits. The
            fixed coder stores every token of every stage (17.585 bits each); the ar coder
            leaves out the later-stage tokens that do not lower the distortion by λ · 18 bits
            (``stages.later_tokens``; with two or more stages λ leaves stage 1's nearest
            codewords as they are), and a stream holds the stages it uses. None: 1, or what
            ``bpp`` or ``quality`` choose.
        quality: 0 … 100 instead of ``lam``/``bpp``: a row of ``quality.QUALITY``
            (``quality_setting``: scale, stages, λ), higher is better and larger; ``stages``,
            if given, caps the row's stages, and ``scale`` replaces its scale.
        scale: code the picture at this size (a factor on each side, from just over 0 to
            ``container.MAX_SCALE`` = 2; ``container.coded_size`` rounds the sides): smaller
            is fewer bits, larger is more, each costing tokens as its area (2: four times the
            tokens and the network's time). The stream (format version 4 where the size
            differs) records both sizes, and decode resamples to the picture's own
            (``scale.RESAMPLE``). None: the picture's size, or what ``bpp``/``quality`` choose.

    Raises:
        InputImageError: unreadable image, or a mode the policy refuses (``image_io``).
        LimitError: over ``max_pixels`` (the picture or its coded size), or too many tiles for
            the format.
        ModelError: ``coder="ar"`` with a model that has no prior.
        ValueError: ``lam`` < 0 or not finite, ``bpp`` ≤ 0, either with the fixed coder, a
            number of stages outside 1 … ``MAX_STAGES``, ``scale`` outside (0, 2], or
            ``quality`` outside 0 … 100 or given with ``lam`` or ``bpp``.
        RateError: ``bpp`` below the smallest stream the knobs reach on this image.
    """
    opts = EncodeOptions.resolve(model, coder, lam, bpp, stages, quality, scale, effort)
    net = numpy_networks(model, device, precision)  # a bad precision fails before any work
    if effort > 0:
        torch_model(model)  # a numpy-io model's twin: a missing torch fails here, before any work
    clock = _Clock(stats, coder=opts.coder, precision=getattr(net, "precision", "fp32"))
    im = prepare(read_image(image, max_pixels, first_frame), keep_orientation)
    container.check_size(im.width, im.height, model.tile, max_pixels)  # before padding to tiles
    # an RGB picture is cropped tile by tile (no array of the whole picture); other modes go
    # through the mode policy of image_io, and --effort works on the whole array
    src, mode = (im, "RGB") if im.mode == "RGB" and effort == 0 else to_rgb_array(im)
    clock.lap("prepare_s")
    enc = _Encoder(model, net, opts, src, mode, im.size, clock, device, progress, max_pixels)
    w, h = im.size
    if opts.bpp is None:
        size = (w, h) if opts.scale is None else container.coded_size(w, h, opts.scale)
        data, lam = enc.stream(enc.code_at(size), opts.lam, opts.stages or 1), opts.lam
    else:
        data, lam = ratecontrol.search(enc.code_at, enc.stream, opts.bpp, (w, h), model.patch, scale=opts.scale,
                                       stages=opts.stages, progress=progress)
    clock.lap("coder_s")
    if stats is not None:
        head = read_header(data, None)
        stats.update({"lambda": lam, "stages": head.stages, "scale": head.coded_size[0] / w,
                      "coded_size": head.coded_size})
    return data


@dataclass(frozen=True)
class EncodeOptions:
    """What ``encode`` is asked to do, checked and resolved once: a quality row becomes its λ,
    stages and scale (``quality.quality_setting``), "auto" a coder."""

    coder: str
    lam: float = 0.0
    bpp: float | None = None
    stages: int | None = None  # at most this many; None: 1, or what ``bpp`` chooses
    scale: float | None = None  # None: the picture's size, or what ``bpp`` chooses
    effort: int = 0

    @classmethod
    def resolve(cls, model, coder: str = "auto", lam: float = 0.0, bpp: float | None = None,
                stages: int | None = None, quality: float | None = None, scale: float | None = None,
                effort: int = 0) -> EncodeOptions:  # fmt: skip
        """The options of ``encode``'s arguments (its docstring says which combinations are refused)."""
        coder = pick_coder(model, coder)
        if scale is not None:
            container.check_scale(scale)
        if quality is not None:
            if lam > 0 or bpp is not None:
                raise ValueError("give a quality, lambda or a target bpp, not two of them")
            if coder != "ar":
                raise ValueError("a quality setting chooses the ar coder's rate knob; the fixed coder has none "
                                 "(its rate is set by the stages: 0.2748 bpp each)")
            row = quality_setting(quality)
            lam = row.lam
            stages = row.stages if stages is None else min(stages, row.stages)
            scale = row.scale if scale is None else scale
        if stages is not None:
            stages = staging.check_stages(stages)
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {lam}")
        if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
            raise ValueError(f"the target bpp must be a number > 0, got {bpp}")
        if (lam > 0 or bpp is not None) and coder != "ar":
            raise ValueError("the rate knob (lambda, bpp) trades distortion for bits of the ar coder; the fixed coder "
                             "spends 17.585 bits on any token")
        if bpp is not None and lam > 0:
            raise ValueError("give lambda or a target bpp, not both")
        return cls(coder, lam, bpp, stages, scale, effort)

    @property
    def wants_latents(self) -> bool:
        """Whether the coders need the encoder's latents (the rate knob and later stages measure distortion)."""
        return self.lam > 0 or self.bpp is not None or (self.stages or 1) > 1


class _Coded:
    """A picture's tokens at one coded size: what the network gave, ready for the coders."""

    def __init__(self, size: tuple[int, int], indices: np.ndarray, latents: np.ndarray | None, tile: int, patch: int):
        self.size, self.indices, self.latents = size, indices, latents
        self.extents = container.token_extents(*size, tile, patch)  # only tokens that touch the picture
        self.tx, self.ty = container.tile_grid(*size, tile)
        self.n_tiles = self.tx * self.ty
        self.tokens = sum(r * c for r, c in self.extents)


class _LaterStages:
    """Stages 2 … k of a coded size at λ, made from stage 1's tokens (T, grid²), padding filled,
    when the coder has them (the ar coder calls it after coding stage 1, since with two or more
    stages its λ leaves stage 1 as it is). Trailing stages left without a token are dropped;
    ``stages`` is then the count the stream holds."""

    def __init__(self, coded: _Coded, gain: np.ndarray, lam: float, fixed: bool, grid: int, k: int):
        self.coded, self.gain, self.lam, self.fixed, self.grid, self.k = coded, gain, lam, fixed, grid, k
        self.stages = 1

    def __call__(self, first: np.ndarray) -> np.ndarray:
        c = self.coded
        rest = staging.later_tokens(c.latents, first, self.gain, self.lam, self.fixed).reshape(self.k - 1, *first.shape)
        rest = np.stack([coders.fill_padding(t, c.extents, self.grid) for t in rest])
        while len(rest) and (rest[-1] == staging.ABSENT).all():
            rest = rest[:-1]
        self.stages = 1 + len(rest)
        return rest


class _Encoder:
    """One picture's encoding: its tokens at a coded size (``code_at``, the network's work, once
    per size) and the stream of those tokens at λ with k stages (``stream``), the two steps
    ``ratecontrol.search`` calls for ``--bpp``."""

    def __init__(self, model, net, opts: EncodeOptions, src, mode: str, size: tuple[int, int], clock: _Clock,
                 device: str, progress: bool, max_pixels: int | None):  # fmt: skip
        self.model, self.net, self.opts, self.src, self.mode, self.size = model, net, opts, src, mode, tuple(size)
        self.clock, self.device, self.progress, self.max_pixels = clock, device, progress, max_pixels

    def code_at(self, size: tuple[int, int]) -> _Coded:
        """The picture's tokens at the coded ``size``."""
        model, opts, clock = self.model, self.opts, self.clock
        size = tuple(size)
        container.check_size(*size, model.tile, self.max_pixels, coded=True)
        pic = self.src if size == self.size else scaling.to_size(self.src, size)
        if opts.effort > 0 and isinstance(pic, Image.Image):
            pic = np.asarray(pic)
        clock.lap("resample_s")
        latents = [] if opts.wants_latents else None
        indices = tiles_to_indices(self.net, Tiles(pic, model.tile), progress=self.progress, latents=latents)
        clock.lap("network_s")
        if opts.effort > 0:
            # with the rate knob, its targets become the refined latents (whose nearest codewords are
            # the refined tokens): effort moves the tokens towards lower error, lambda from there to fewer bits
            indices, latents = _refined(model, pic, tile_image(pic, model.tile), indices, opts.effort, self.device,
                                        self.progress, latents)
            clock.lap("refine_s")
        return _Coded(size, indices, np.concatenate(latents) if latents else None, model.tile, model.patch)

    def stream(self, c: _Coded, lam: float, k: int) -> bytes:
        """The stream of ``c``'s tokens with at most ``k`` stages at λ = ``lam``: one stage, λ
        chooses its tokens (``rdo``); more, stage 1 keeps the nearest codewords and λ leaves later
        tokens out (``stages.later_tokens``)."""
        model, coder = self.model, self.opts.coder
        grid = grid_of(model)
        later = _LaterStages(c, staging.gains(model, k), lam, coder == "fixed", grid, k)
        if coder == "ar":
            show = self.progress and c.n_tiles > TILE_BATCH and self.opts.bpp is None
            payload = coders.encode_ar(c.indices, model.prior, grid, show, c.extents, c.latents, lam if k == 1 else 0.0,
                                       later if k > 1 else None)
        elif k > 1:
            first = coders.fill_padding(c.indices, c.extents, grid)
            payload = coders.encode_fixed_stages(np.concatenate([first[None], later(first)]), c.extents)
        else:
            payload = coders.encode_fixed(c.indices, c.extents)
        (w, h), scaled = self.size, c.size != self.size
        header = Header(coder, self.mode, bytes(model.model_id), w, h, model.tile, c.tx, c.ty, len(payload),
                        container.version_for(later.stages, scaled), later.stages, *(c.size if scaled else (0, 0)))
        return container.pack(header, payload)


def _refined(model, rgb: np.ndarray, tiles: np.ndarray, indices: np.ndarray, effort: int, device: str, progress: bool,
             latents: list | None = None) -> tuple[np.ndarray, list | None]:
    """``refine.refine_indices``, kept only if the whole decoded picture's error went down.

    Each tile's error on its own, decoded as the stream will be (padding tokens filled,
    ``coders.fill_padding``), never rises; with a decoder halo the neighbours' pixels depend
    on a tile's tokens too, and the refinement decodes tiles in other batches than ``decode``
    does, so the picture is checked as ``decode`` will make it (float32): effort never lowers
    the decoded picture's PSNR.
    Returns the indices and, if ``latents`` (the encoder's) was given, the latents that go
    with them: the refined ones, or ``latents`` when the refinement is not kept.
    """
    net = torch_model(model)
    from . import refine  # imports torch (the train extra), which only --effort needs

    dev = device if net is model else "cpu"  # the twin of a numpy-io model is loaded on the CPU
    h, w, _ = rgb.shape
    found: list | None = [] if latents is not None else None
    new = refine.refine_indices(net, tiles, indices, w, h, effort, dev, TILE_BATCH, progress, found)
    tx, ty = container.tile_grid(w, h, model.tile)
    old = coders.fill_padding(indices, container.token_extents(w, h, model.tile, model.patch), grid_of(model))
    if np.array_equal(new, old):
        return new, found

    def sse(idx: np.ndarray) -> float:
        out = indices_to_image(model, idx, tx, ty, dev, size=(w, h)).astype(np.float64)
        return float(((out - rgb) ** 2).sum())

    return (new, found) if sse(new) < sse(old) else (indices, latents)


@_one_blas_thread
def decode(
    data: bytes,
    model,
    device: str = "cpu",
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    precision: str = "auto",
    stats: dict | None = None,
) -> Image.Image:
    """Decompress .lq bytes into a PIL image of the original size and colour mode.

    ``precision``: the decoder network's arithmetic, "fp32" (the reference), "bf16" or "auto"
    (bf16 transformer blocks where the hardware has it; ``torch_nets.block_dtype``). ``stats``: a dict
    to fill with ``coder``, ``precision`` and the seconds of ``coder_s`` and ``network_s``.

    Raises:
        FormatError: malformed or corrupted stream.
        ModelMismatchError: the stream needs a different model (or prior).
        ModelError: an ar stream and a model without a prior.
        LimitError: the image is over ``max_pixels``.
    """
    net = numpy_networks(model, device, precision)  # a bad precision fails before any work
    header, payload = container.unpack(data, max_pixels)
    clock = _Clock(stats, coder=header.coder, precision=getattr(net, "precision", "fp32"))
    if header.model_id != bytes(model.model_id):
        raise ModelMismatchError(
            f"this file needs model {header.model_id.hex()}, the loaded model is {bytes(model.model_id).hex()}; "
            "see MODEL_CARD.md, 'Released models' for the git commit with its weights (pass them with --model)"
        )
    if header.tile != model.tile:
        raise FormatError(f"stream uses {header.tile}px tiles, the model {model.tile}px")
    tokens = grid_of(model) ** 2
    cw, ch = header.coded_size  # version 4: the size the tokens code, resampled to the picture's below
    # version 1 stores every token of the padded tiles, later versions those that touch the picture
    extents = None if header.version == 1 else container.token_extents(cw, ch, model.tile, model.patch)
    if header.coder == "ar":
        if prior_of(model) is None:
            raise ModelError("the stream is arithmetic-coded (ar) but no AR prior is loaded for this model")
        indices = coders.decode_ar(payload, header.n_tiles, grid_of(model), model.prior,
                                   progress and header.n_tiles > TILE_BATCH, extents,
                                   header.stages if header.stages > 1 else None)
    elif header.coder == "fixed":
        indices = coders.decode_fixed_stages(payload, header.stages, header.n_tiles, tokens, extents)
    else:
        raise FormatError(f"coder {header.coder!r} is not supported by this leechcodec")
    clock.lap("coder_s")
    im = Image.new("RGB", (cw, ch))
    indices_to_image(net, indices, header.tiles_x, header.tiles_y, progress=progress, into=im,
                     gain=staging.gains(model, header.stages))
    clock.lap("network_s")
    if header.scaled:  # docs/FORMAT.md, *Resampling*: the 8-bit RGB picture, then the colour mode
        im = scaling.to_size(im, (header.width, header.height))
        clock.lap("resample_s")
    return im.convert("L") if header.mode == "L" else im
