"""A Pillow plugin for .lq files: after ``import leechcodec.pillow``, Pillow opens and saves them.

    import leechcodec.pillow                   # registers the "LQ" format and the .lq extension
    from PIL import Image

    im = Image.open("photo.lq")                # the header only: size, mode, info["coder"], info["model_id"],
                                               # info["stages"], info["coded_size"] (the size the tokens code)
    im.load()                                  # decodes, with the bundled model (loaded once, on first use)
    Image.open("photo.png").save("photo.lq")   # encodes: coder "auto" (ar with the bundled prior)
    leechcodec.pillow.save(im, "photo.lq")     # the same, atomically; overwrite=True to replace a file
    im.save(buf, format="LQ", coder="fixed", effort=2, precision="fp32", model=other)

Opening reads the 34-byte header and the stream's length, not the payload: no model is loaded
and torch is not imported. ``load()`` checks the whole stream (CRC included) and decodes it;
``verify()`` checks it without decoding, as Pillow's ``verify`` does (call it right after
``Image.open``; it closes the file, so reopen the image to load it).

Another model: ``set_model(path_or_model)`` for every image from then on, ``im.model = ...`` on
an opened image before it loads, or ``model=`` to ``save``; a path is read with
``leechcodec.load_model`` (ONNX Runtime on a CPU, torch for "cuda"; with the AR prior beside it),
once per path and device.

Saving to a path: ``Image.save(path)`` opens and empties the file before any plugin runs
(Pillow's behaviour for every format), so a failed save leaves an existing file empty; the
plugin encodes the whole stream before writing a byte, but cannot undo that. ``save(im, path)``
writes atomically (temp file + rename, as the CLI) and replaces an existing file only with
``overwrite=True``.

Limits: ``MAX_PIXELS`` (leechcodec's 2^26 = 67,108,864 pixels; None: no limit of ours) is checked at open,
load and save; Pillow's ``Image.MAX_IMAGE_PIXELS`` decompression-bomb check runs at open as for
every format.

Errors are leechcodec's, with its words, raised as ``OSError`` subclasses (Pillow's convention
for a file it cannot read or write) that are also instances of the leechcodec class: a header
``Image.open`` cannot identify is an ``LqUnidentifiedImageError``, both a
``PIL.UnidentifiedImageError`` and a ``leechcodec.FormatError``; a damaged payload found by
``load()`` or ``verify()`` an ``LqFormatError``; ``LqLimitError``, ``LqModelError``,
``LqModelMismatchError`` and ``LqInputImageError`` likewise. A bad ``coder`` or ``precision``
is a ``ValueError``.

Registration is on import, as pillow-heif and pillow-avif-plugin do: Pillow finds no plugins
by entry point (13.0: ``Image.init`` imports its own list only), so ``register()`` (idempotent) uses the
documented ``Image.register_open``/``register_save``/``register_extension``/``register_mime``.
``import leechcodec`` alone registers nothing. Without a model of its own (``set_model``, ``model=``)
the plugin loads the bundled one through ``leechcodec.load_model`` on first use: the bundled
model is what a Pillow user expects to decode with.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import threading
import zlib
from typing import IO

from PIL import Image, ImageFile

import leechcodec

from . import container
from .container import DEFAULT_MAX_PIXELS, Header
from .errors import FormatError, InputImageError, LeechError, LimitError, ModelError, ModelMismatchError
from .output import write_file
from .tokenizer import check_precision

FORMAT = "LQ"
EXTENSION = ".lq"
MIME = "image/x-leechcodec"
MAX_PIXELS: int | None = DEFAULT_MAX_PIXELS  # leechcodec's limit at open, load and save (None: none)


class LqImageError(OSError, LeechError):
    """A leechcodec error met by the plugin, as the ``OSError`` Pillow users catch."""


class LqFormatError(LqImageError, FormatError):
    """Not a valid .lq stream (``load``/``verify``: e.g. a checksum mismatch)."""


class LqUnidentifiedImageError(Image.UnidentifiedImageError, LqFormatError):
    """``Image.open`` of a stream with the .lq magic whose header is invalid or truncated."""


class LqLimitError(LqImageError, LimitError):
    """The image (or the size a header claims) is over ``MAX_PIXELS`` or the format's limits."""


class LqModelError(LqImageError, ModelError):
    """The model is unusable, or has no AR prior for an ``ar`` stream or ``coder="ar"``."""


class LqModelMismatchError(LqImageError, ModelMismatchError):
    """The stream was encoded with another model (or prior) than the one decoding it."""


class LqInputImageError(LqImageError, InputImageError):
    """``save`` of an image that leechcodec's mode policy refuses."""


# most specific first: each leechcodec class and the plugin's class for it
_PIL_ERRORS: tuple[tuple[type[LeechError], type[LqImageError]], ...] = (
    (FormatError, LqFormatError),
    (LimitError, LqLimitError),
    (ModelMismatchError, LqModelMismatchError),
    (ModelError, LqModelError),
    (InputImageError, LqInputImageError),
)


def _pil_error(e: LeechError, unidentified: bool = False) -> LqImageError:
    """The plugin's error for leechcodec's ``e``, same words; ``unidentified``: raised by ``_open``."""
    if unidentified and isinstance(e, FormatError):
        return LqUnidentifiedImageError(str(e))
    cls = next((pil for leech, pil in _PIL_ERRORS if isinstance(e, leech)), LqImageError)
    return cls(str(e))


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What ``load`` decodes with (and ``save`` encodes with); replaced whole by ``set_model``."""

    model: object = None  # a loaded model, or None: the bundled one, loaded on first use
    device: str = "cpu"
    precision: str = "auto"  # as leechcodec.decode and the CLI: bf16 blocks where the hardware has them


_settings = _Settings()
_load_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_weights(path: str | None, device: str):
    return leechcodec.load_model(path, device=device)  # ONNX Runtime on a CPU, torch for "cuda"


def model_for(model: object = None, device: str | None = None):
    """A loaded model: ``model`` itself, the weights at a path (``str``/``os.PathLike``, with the
    ``NAME.prior.safetensors`` beside it if any), or for None the ``set_model`` one, else the
    bundled model. Weights are read once per path and device and kept.

    Raises:
        ModelError: unusable weights (``leechcodec.load_model``).
    """
    device = device or _settings.device
    if model is None:
        model = _settings.model
    if model is None or isinstance(model, (str, os.PathLike)):
        with _load_lock:  # two threads loading their first image read the weights once
            return _load_weights(None if model is None else os.path.abspath(model), device)
    return model


def set_model(model: object = None, device: str = "cpu", precision: str = "auto") -> None:
    """Choose the model ``load()`` decodes with, and ``save`` encodes with, from now on.

    Args:
        model: a loaded tokenizer (``leechcodec.load_model``, or any object ``leechcodec.decode``
            takes), the path of its weights (read now), or None: the bundled model.
        device: where the networks run: "cpu" (ONNX Runtime) or "cuda" (torch).
        precision: "auto", "fp32" (the reference pixels) or "bf16" (torch models only,
            ``leechcodec.torch_nets.block_dtype``).

    Raises:
        ModelError: unusable weights at ``model``.
        ValueError: an unknown precision.
    """
    check_precision(precision)
    if isinstance(model, (str, os.PathLike)):
        model = model_for(model, device)
    global _settings
    _settings = _Settings(model, device, precision)


def _accept(prefix: bytes) -> bool:
    """The .lq magic, and nothing else: every other file is left to the other plugins."""
    return prefix[:4] == container.MAGIC


def read_header(fp: IO[bytes]) -> Header:
    """The validated header of the .lq stream from ``fp``'s position to the end of the file,
    reading its 34 header bytes and its length, not the payload (``load``/``verify`` check that).

    Raises:
        FormatError: bad magic, truncated, a length that disagrees with the header, or any
            invalid header field, in ``container.unpack``'s words.
        LimitError: the size is over ``MAX_PIXELS``.
    """
    start = fp.tell()
    head = fp.read(container.MAX_HEAD + container.TRAILER.size)
    n_bytes = fp.seek(0, os.SEEK_END) - start
    if n_bytes < container.OVERHEAD:
        container.unpack(head, MAX_PIXELS)  # raises: bad magic or truncated
    fields = container.HEADER.unpack_from(head)
    # every field checked by container.unpack itself (same checks, same words): the header (and
    # version 3's stage count) with no payload and a fresh checksum; the real payload length is
    # checked against the file, in unpack's words too (tests/test_pillow_plugin.py compares them)
    known = fields[0] == container.MAGIC and fields[1] in container.VERSIONS
    size = container.head_size(fields[1]) if known else container.HEADER.size
    if known and n_bytes < size + container.TRAILER.size:  # versions 3 and 4 have longer headers
        container.unpack(head, MAX_PIXELS)  # raises: truncated, in unpack's words
    plen, carried = fields[-1], n_bytes - container.OVERHEAD - (size - container.HEADER.size)
    if known and plen != carried:  # unpack checks the length before the other fields
        raise FormatError(f"payload length field says {plen} bytes but the stream carries {max(0, carried)}")
    probe = container.HEADER.pack(*fields[:-1], 0) + head[container.HEADER.size : size]
    header = container.unpack(probe + container.TRAILER.pack(zlib.crc32(probe)), MAX_PIXELS)[0]
    return dataclasses.replace(header, payload_length=plen)


class LqImageFile(ImageFile.ImageFile):
    """A .lq image: header fields at open, pixels decoded by ``load()``."""

    format = FORMAT
    format_description = "leechcodec learned image"
    model: object = None  # the model (or weights path) to decode with; None: set_model's

    def _open(self) -> None:
        if self.fp is None:
            raise SyntaxError("no file to read")  # what Pillow's plugins raise when not theirs
        self._start = self.fp.tell()
        try:
            header = read_header(self.fp)
        except LeechError as e:
            raise _pil_error(e, unidentified=True) from None
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info.update(coder=header.coder, model_id=header.model_id.hex(), stages=header.stages,
                         coded_size=header.coded_size)
        # pixels not loaded yet (Pillow's sign for it); this class's load() decodes them, no
        # Pillow decoder reads the tile (a plain tuple: ImageFile._Tile is private to Pillow)
        self.tile = [("leechcodec", (0, 0, *self.size), self._start, None)]

    def _read_stream(self) -> bytes:
        if self.fp is None:
            raise OSError("cannot load this image: its file is closed (verify() closes it: reopen the image)")
        self.fp.seek(self._start)
        return self.fp.read()

    def load(self) -> Image.core.PixelAccess | None:
        """Decode the pixels on the first call (like Pillow's ``ImageFile.load``: the file is closed
        afterwards if Image.open opened it); later calls return the pixel access at once.

        Raises:
            LqImageError: a damaged stream (``LqFormatError``), another model's stream, over
                ``MAX_PIXELS``; see the module docstring.
        """
        if self.tile:  # emptied once decoded
            data = self._read_stream()
            try:
                from .codec import decode  # numpy and the coders: not for opening a header

                s = _settings
                model = model_for(self.model, s.device)
                image = decode(data, model, device=s.device, max_pixels=MAX_PIXELS, precision=s.precision)
            except LeechError as e:
                raise _pil_error(e) from None
            self.im = image.im  # decode made it in the header's mode and size
            self.tile = []
            self.readonly = 0
            if self._exclusive_fp and self._close_exclusive_fp_after_loading and self.fp:
                self.fp.close()
            self.fp = None
        return super().load()

    def verify(self) -> None:
        """Check the stream (header, length, CRC) without decoding it: no model, no torch.
        As Pillow's ``verify``: call it right after ``Image.open``; it closes the file.

        Raises:
            LqFormatError: damaged or truncated. LqLimitError: over ``MAX_PIXELS``.
            RuntimeError: not called directly after open.
        """
        if self.fp is None:
            raise RuntimeError("verify must be called directly after open")
        try:
            container.unpack(self._read_stream(), MAX_PIXELS)
        except LeechError as e:
            raise _pil_error(e) from None
        super().verify()


def _encode(im: Image.Image, opts: dict) -> bytes:
    """The .lq bytes of ``im`` with ``save``'s options (see ``_save``), in the plugin's errors."""
    from .codec import encode  # numpy and the coders: not for opening a header

    s = _settings
    try:
        return encode(
            im,
            model_for(opts.get("model"), s.device),
            coder=opts.get("coder", "auto"),
            device=s.device,
            max_pixels=MAX_PIXELS,
            effort=int(opts.get("effort", 0)),
            keep_orientation=bool(opts.get("keep_orientation", False)),
            precision=opts.get("precision", s.precision),
            quality=opts.get("quality"),
            stages=opts.get("stages"),
            bpp=opts.get("bpp"),
            lam=float(opts.get("lambda", 0.0)),
            scale=opts.get("scale"),
        )
    except LeechError as e:
        raise _pil_error(e) from None


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Pillow's save handler: ``im.save(f, format="LQ", coder=..., effort=..., precision=...,
    model=..., keep_orientation=..., quality=..., stages=..., bpp=..., lambda=..., scale=...)`` (as
    ``encode``'s options; ``quality`` 0 … 100 as the CLI's ``-q``); other modes than RGB and L go through leechcodec's mode
    policy (``leechcodec.image_io``), with its warnings. The whole stream is encoded before the
    first byte is written (but see ``save`` for a path: Pillow has emptied the file by then)."""
    fp.write(_encode(im, im.encoderinfo))


def save(im: Image.Image, path: str | os.PathLike, *, overwrite: bool = False, **options) -> None:
    """Encode ``im`` to the .lq file ``path`` atomically, with ``Image.save``'s options for LQ.

    ``Image.save("x.lq")`` is Pillow's: it opens the file, emptying it, before any plugin runs,
    so a save that fails (over ``MAX_PIXELS``, an unusable model, Ctrl-C) leaves an existing
    ``x.lq`` empty, for every format (a file it created is removed). This function encodes first,
    then writes a temp file beside ``path`` and renames it into place
    (``leechcodec.output.write_file``, as the CLI does): ``path`` is the old file or the whole new
    one. Like the CLI without ``--force``, it does not replace an existing file unless asked.

    Args:
        overwrite: replace an existing file (else ``FileExistsError``, before any encoding).
        options: ``coder``, ``effort``, ``precision``, ``model``, ``keep_orientation``, as for
            ``Image.save(..., format="LQ")``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false (also if it appears meanwhile).
        LqImageError: what ``Image.save`` raises for the image (the plugin's errors).
        OSError: the file cannot be written (nothing was replaced).
    """
    if not overwrite and os.path.exists(path):
        raise FileExistsError(errno.EEXIST, "File exists (overwrite=True replaces it)", os.fspath(path))
    data = _encode(im, options)
    write_file(path, lambda f: f.write(data), overwrite=overwrite)


def register() -> None:
    """Register the LQ format with Pillow (done on import; calling it again changes nothing)."""
    Image.register_open(FORMAT, LqImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()

__all__ = [
    "EXTENSION",
    "FORMAT",
    "MAX_PIXELS",
    "MIME",
    "LqFormatError",
    "LqImageError",
    "LqImageFile",
    "LqInputImageError",
    "LqLimitError",
    "LqModelError",
    "LqModelMismatchError",
    "LqUnidentifiedImageError",
    "model_for",
    "read_header",
    "register",
    "save",
    "set_model",
]
