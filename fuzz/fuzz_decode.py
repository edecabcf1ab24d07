"""Coverage-guided fuzzing of ``leechcodec.decode`` with atheris (libFuzzer).

    python fuzz/fuzz_decode.py NEW_CORPUS_DIR fuzz/corpus -max_total_time=60 -max_len=8192
    python fuzz/fuzz_decode.py --make-corpus fuzz/corpus     # regenerate the seeds

Any exception other than a ``LeechError`` is a crash (libFuzzer saves the input as
``crash-*``), and so is an input slower than ``-timeout`` seconds.

An input is one control byte, then a .lq stream. Most mutations of a valid stream only
reach the CRC32 check, so the control byte lets the fuzzer get past it:

    bit 0 set: re-sign the stream (replace its last 4 bytes by the CRC32 of the rest),
               so header-field and payload validation get fuzzed too;
    bit 1 set: first stamp the tiny model's id into the header (then re-sign), so the
               seeds stay decodable even if the tiny model's initialisation changes.

The model is the frozen tiny tokenizer of the golden tests with its tiny AR prior beside it
(tests/data/tiny.safetensors, tiny.prior.safetensors: the ``tiny`` presets built with
``torch.manual_seed(0)`` and ``(1)``, the same weights as the ``tiny_model`` test fixture),
so ``ar`` payloads are fuzzed too, and the seeds do not depend on how the presets initialise.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import atheris
import numpy as np
import PIL.Image
import torch  # heavy dependencies are imported first, so they are not instrumented

with atheris.instrument_imports(include=["leechcodec"]):
    import leechcodec
    from leechcodec import container
from leechcodec.models.io import load_weights  # noqa: E402

MODEL_ID = slice(8, 16)  # where the model id sits in the header (docs/FORMAT.md)
TINY = Path(__file__).resolve().parents[1] / "tests" / "data" / "tiny.safetensors"


def tiny_model():
    """The frozen tiny tokenizer with its AR prior (tests/data/make_golden.py made them)."""
    return load_weights(TINY)


def prepare(data: bytes, model_id: bytes) -> bytes:
    """Control byte + stream → the stream to decode (see the module docstring)."""
    if not data:
        return b""
    control, stream = data[0], bytearray(data[1:])
    if control & 2 and len(stream) >= MODEL_ID.stop:
        stream[MODEL_ID] = model_id
    if control & 3 and len(stream) >= container.TRAILER.size:
        body = bytes(stream[: -container.TRAILER.size])
        stream = body + container.TRAILER.pack(zlib.crc32(body))
    return bytes(stream)


def make_corpus(folder: Path, model) -> None:
    """Write valid streams (as is, re-signed, stamped) and some mutated ones as seeds."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "rgb-70x90": PIL.Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)),
        "grey-16x16": PIL.Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)),
        "rgb-20x300": PIL.Image.fromarray(rng.integers(0, 256, (20, 300, 3), dtype=np.uint8)),
    }
    seeds = {}
    for name, im in images.items():
        lq = leechcodec.encode(im, model, coder="fixed")
        seeds[f"{name}.valid"] = b"\0" + lq
        seeds[f"{name}.stamped"] = b"\3" + lq
        ar = leechcodec.encode(im, model, coder="ar")
        seeds[f"{name}.ar-valid"] = b"\0" + ar
        seeds[f"{name}.ar-stamped"] = b"\3" + ar
    ar = leechcodec.encode(images["rgb-70x90"], model, coder="ar")
    seeds["ar-bitflip-words"] = b"\1" + ar[:60] + bytes([ar[60] ^ 1]) + ar[61:]
    short = ar[:-12] + ar[-4:]  # two range-coder words fewer, the length field to match
    seeds["ar-truncated-words"] = b"\1" + short[:30] + (len(short) - container.OVERHEAD).to_bytes(4, "big") + short[34:]
    lq = leechcodec.encode(images["rgb-70x90"], model, coder="fixed")

    def field(offset: int, value: bytes) -> bytes:  # a header field changed, then re-signed
        return b"\1" + lq[:offset] + value + lq[offset + len(value) :]

    seeds["truncated"] = b"\0" + lq[:100]
    seeds["bitflip-payload"] = b"\0" + lq[:200] + bytes([lq[200] ^ 4]) + lq[201:]
    seeds["version-3"] = field(4, b"\3")
    seeds["coder-ar"] = field(5, b"\1")
    seeds["mode-9"] = field(6, b"\x09")
    seeds["flags"] = field(7, b"\x80")
    seeds["width-0"] = field(16, b"\0\0\0\0")
    seeds["tile-grid"] = field(28, b"\0\2")
    seeds["tile-64"] = field(24, b"\0\x40")
    seeds["length-inflated"] = field(30, b"\xff\xff\xff\xff")
    seeds["payload-out-of-range"] = field(34, b"\xff" * 64)
    seeds["other-model"] = field(8, b"\x01" * 8)
    # version 4: the picture coded at another size (the decoder resamples), and hostile coded sizes
    scaled = leechcodec.encode(images["rgb-70x90"], model, coder="ar", scale=0.6)
    seeds["rgb-70x90.scaled-ar"] = b"\0" + scaled
    seeds["coded-size-huge"] = b"\1" + scaled[:35] + b"\xff\xff\xff\xff" + scaled[39:]
    seeds["coded-size-zero"] = b"\1" + scaled[:39] + b"\0\0\0\0" + scaled[43:]
    seeds["scaled-stages-0"] = b"\1" + scaled[:34] + b"\0" + scaled[35:]
    for name, data in seeds.items():
        (folder / f"{name}.bin").write_bytes(data)


def main() -> None:
    torch.set_num_threads(1)
    model = tiny_model()
    if sys.argv[1:2] == ["--make-corpus"]:
        make_corpus(Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent / "corpus"), model)
        return
    model_id = bytes(model.model_id)

    def test_one_input(data: bytes) -> None:
        try:
            leechcodec.decode(prepare(data, model_id), model)
        except leechcodec.LeechError:
            pass

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
