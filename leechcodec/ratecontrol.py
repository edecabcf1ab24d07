"""``--bpp``: the coded size, stages and λ that give a picture the best quality at or under a rate.

Three knobs set a stream's size, best used in this order (measured on Kodak: README, "Scale"):

* the **coded size** (``scale``): the tokenizer sees the picture smaller or larger
  (format version 4); it costs bits roughly as ``scale^RATE_EXPONENT`` and beats both others
  over most of the range;
* **residual stages** (``stages``): above what one stage reaches at ``STAGE_SCALE[k]``, a
  k + 1st stage at a smaller size;
* **λ** (``lam``): trims tokens, the last few per cent (later-stage tokens first).

``search`` picks them per picture with few encodes: a prediction from Kodak's average rate
(``KODAK_BITS_PER_TOKEN``) places the first encode, each encode then predicts the next from
that picture's own bits per token (``TOKEN_EXPONENT``, or the secant of the last two sizes),
at most ``MAX_SIZES`` sizes; when none lands within ``BPP_TOLERANCE`` under the target, a λ
bisection on the tokens already computed (no more network runs) and one more size between the
closest under and over the target take the rest. ``search_lambda`` is that bisection, also
what ``--bpp`` does when ``--scale`` fixes the size.
"""

from __future__ import annotations

import math

from tqdm import tqdm

from . import container
from .container import MAX_SCALE
from .errors import RateError

BPP_TOLERANCE = 0.02  # what --bpp promises: at or under the target, and within 2 % of it
AIM = 0.99  # where the size search aims: 1 % under the target, the middle of the tolerance
MAX_SIZES = 4  # network encodes at different coded sizes, at most (three, mostly: README, "Rate knob and target size")
RATE_EXPONENT = 1.85  # bits of a picture ~ scale^1.85 at one stage and lambda 0 (Kodak: README, "Scale")
TOKEN_EXPONENT = RATE_EXPONENT - 2  # so bits per token ~ scale^-0.15
KODAK_BITS_PER_TOKEN = ((1, 10.03), (2, 27.7), (3, 45.3))  # (stages, mean bits per token at scale 1, lambda 0)
# the largest scale of each number of stages: one more stage pays where this one's top ends (bench sweep)
STAGE_SCALE = {1: 2.0, 2: 2.0, 3: 2.0, 4: 2.0}
MAX_SEARCH_STAGES = 4  # the most stages the search uses without --stages

LAMBDA_MAX = 0.3  # the knob's end: past ~0.2 the sizes only jitter (rdo.MAX_DIST bounds every move)
BPP_STEPS = 12  # bisection steps in log λ between 1e-4 and LAMBDA_MAX
BPP_MORE_STEPS = 8  # further steps, only while the best stream is more than BPP_TOLERANCE under the target
FIXED_BPP = 8 * 2251 / (256 * 256)  # 0.2748: one stage of the fixed coder (2,251 bytes per 256x256 tile)


def stages_for_bpp(bpp: float) -> int:
    """The most stages a ``bpp`` target is given at the picture's own size: one more than the whole
    fixed stages it could pay for, rounded up (0.28 bpp: 3); the rate knob leaves out what does not fit."""
    if not (math.isfinite(bpp) and bpp > 0):
        return 1
    return min(container.MAX_STAGES, 1 + math.ceil(bpp / FIXED_BPP))


def rate(data: bytes, pixels: int) -> float:
    return 8 * len(data) / pixels


# what a stream holds besides its tokens' bits: the version-4 header and CRC, the ar payload's prior id and index CRC
HEADER_BITS = 8 * (container.head_size(container.SCALED) + container.TRAILER.size + 12)


def tokens_of(size: tuple[int, int], patch: int) -> int:
    """The tokens a stream of one stage stores for a coded ``size`` (every patch that touches it)."""
    return math.prod(math.ceil(n / patch) for n in size)


def _secant(tokens0: int, bits0: float, tokens1: int, bits1: float, bits: float) -> float | None:
    """The tokens whose bits are ``bits`` on the line through two measured sizes in log bits over
    log tokens (bits per token ~ tokens^(slope − 1)), or None where the two give no sane slope."""
    if tokens0 == tokens1 or bits0 <= 0 or bits1 <= 0:
        return None
    slope = math.log(bits1 / bits0) / math.log(tokens1 / tokens0)
    return tokens1 * (bits / bits1) ** (1 / slope) if 0.5 < slope < 2.0 else None


def patch_size(width: int, height: int, tokens: float, patch: int) -> tuple[int, int]:
    """A coded size of whole patches, the picture's shape, with at most ``tokens`` tokens (at least
    one patch each way, or the picture's side times 2 where that is less; never over ``MAX_SCALE``
    times a side): the sizes the search tries, since a patch cut by the picture's edge costs a
    whole token. The columns and rows may each be one off the exact shape, for the closest count."""
    tokens = max(1.0, tokens)
    s = math.sqrt(tokens * patch * patch / (width * height))
    best = None
    for cols in {max(1, math.floor(width * s / patch) + d) for d in (-1, 0, 1)}:
        rows = max(1, min(math.floor(tokens / cols), math.ceil(height * s / patch) + 1))
        size = (min(MAX_SCALE * width, cols * patch), min(MAX_SCALE * height, rows * patch))
        shape = abs(math.log((size[0] / width) / (size[1] / height)))
        key = (cols * rows <= tokens, cols * rows if cols * rows <= tokens else -cols * rows, -shape)
        if best is None or key > best[0]:
            best = (key, size)
    return best[1]


def search(code_at, stream, target: float, size: tuple[int, int], patch: int, scale: float | None = None,
           stages: int | None = None, progress: bool = False) -> tuple[bytes, float]:
    """The stream at or under ``target`` bpp with the best predicted quality: (bytes, λ).

    Args:
        code_at: coded size → the picture's tokens there (``codec.encode``'s ``code_at``: the network).
        stream: (tokens, λ, stages) → .lq bytes (the coders only).
        target: bits per pixel of the picture (header included).
        size: the picture's (width, height).
        patch: pixels per token side.
        scale: a coded size fixed by the caller (``--scale``): only stages and λ are searched.
        stages: the most stages to use (``--stages``); None: up to ``MAX_SEARCH_STAGES``.

    Raises:
        RateError: ``target`` is below the smallest stream (one token: a 1x1 coded picture at the
            largest λ), or below what λ reaches at a fixed ``scale``.
    """
    w, h = size
    pixels = w * h
    if scale is not None:
        c = code_at(container.coded_size(w, h, scale))
        return _at_size(c, stream, target, pixels, stages, progress)
    top = min(stages or MAX_SEARCH_STAGES, container.MAX_STAGES)
    budget = target * pixels * AIM  # bits
    tried: list[tuple[bytes, int, object]] = []  # (stream, stages, tokens) of each size tried
    token_bits = budget - HEADER_BITS  # what the tokens of a stream at the budget may cost
    # the first size: Kodak's mean bits per token; then this picture's own
    k, bpt, at = _rung(budget, pixels, patch, top)
    bar = tqdm(total=MAX_SIZES, desc="rate search", unit="size", disable=not progress, leave=False)
    for _ in range(MAX_SIZES):
        coded = _size_for(w, h, patch, token_bits, bpt, at, k)
        if any(t[2].size == coded and t[1] == k for t in tried):  # the sizes' steps are too coarse here:
            last = tried[-1][2]  # one step more than the last size, which λ can then trim (below)
            coded = patch_size(w, h, last.tokens * (1 + 2 * BPP_TOLERANCE), patch)
            if tried[-1][1] != k or any(t[2].size == coded and t[1] == k for t in tried):
                break
        c = code_at(coded)
        data = stream(c, 0.0, k)
        bar.update(1)
        tried.append((data, k, c))
        r = rate(data, pixels)
        if (1 - BPP_TOLERANCE) * target <= r <= target:
            break
        s = coded[0] / w
        own = (8 * len(data) - HEADER_BITS) / c.tokens  # this picture's bits per token at this size
        largest = container.coded_size(w, h, STAGE_SCALE.get(k, MAX_SCALE))
        reach = HEADER_BITS + tokens_of(largest, patch) * own * (largest[0] / coded[0]) ** TOKEN_EXPONENT  # predicted
        if r < target and (coded == largest or reach < (1 - BPP_TOLERANCE / 2) * target * pixels):
            if k >= top:  # the largest picture of the most stages: as good as it gets
                if coded == largest:
                    break
            else:  # one more stage, without coding the largest size of this many: it cannot reach the target
                k, bpt, at = k + 1, own * _stage_ratio(k + 1, k), s
                continue
        bpt, at = own, s
        same = [t for t in tried if t[1] == k]
        if len(same) >= 2:  # two sizes of as many stages: the secant between them
            (d0, _, c0), (d1, _, c1) = same[-2:]
            want = _secant(c0.tokens, 8 * len(d0) - HEADER_BITS, c1.tokens, 8 * len(d1) - HEADER_BITS, token_bits)
            if want is not None:
                bpt, at = token_bits / want, math.sqrt(want * patch * patch / (w * h))
    bar.close()
    fits = [t for t in tried if rate(t[0], pixels) <= target]
    if fits:
        data, k, c = max(fits, key=lambda t: len(t[0]))
        if rate(data, pixels) >= (1 - BPP_TOLERANCE) * target:
            return data, 0.0
    over = [t for t in tried if rate(t[0], pixels) > target]
    if over:  # λ trims the smallest stream over the target, on its tokens (no more network runs)
        data, k, c = min(over, key=lambda t: len(t[0]))
        for kk in (k, 1) if k > 1 else (1,):  # later-stage tokens first, then stage 1's own
            try:
                lam, trimmed = search_lambda(lambda x: stream(c, x, kk), target, pixels, progress)
            except RateError:
                continue
            if not fits or len(trimmed) > max(len(t[0]) for t in fits):
                return trimmed, lam
            break
    if fits and over:  # one more size, between the largest under the target and the smallest over it
        (d0, k0, c0), (d1, k1, c1) = max(fits, key=lambda t: len(t[0])), min(over, key=lambda t: len(t[0]))
        if k0 == k1 and c0.tokens < c1.tokens:
            b0, b1 = 8 * len(d0) - HEADER_BITS, 8 * len(d1) - HEADER_BITS
            slope = math.log(b1 / b0) / math.log(c1.tokens / c0.tokens) if b0 > 0 and b1 > b0 else 1.0
            want = c0.tokens * (token_bits / b0) ** (1 / max(0.5, min(2.0, slope)))  # the secant, its slope bounded
            coded = patch_size(w, h, min(max(want, c0.tokens + 1), c1.tokens - 1), patch)
            if c0.tokens < tokens_of(coded, patch) < c1.tokens:
                data = stream(code_at(coded), 0.0, k0)
                if rate(data, pixels) <= target and len(data) > len(d0):
                    return data, 0.0
    if fits:
        return max(fits, key=lambda t: len(t[0]))[0], 0.0
    # every size tried is over the target, even with λ: smaller ones (a picture far from Kodak's
    # bits per token), down to a single token
    s = min(t[2].size[0] / w for t in tried)
    while True:
        s *= 0.5
        coded = (1, 1) if s * max(w, h) < 1 else container.coded_size(w, h, s)
        c = code_at(coded)
        try:
            lam, data = search_lambda(lambda x: stream(c, x, 1), target, pixels, progress)
            return data, lam
        except RateError:
            if coded == (1, 1):
                raise


def kodak_bits_per_token(k: int) -> float:
    """Kodak's mean bits per token of ``k`` stages at scale 1 and λ 0; past the table, each more
    stage as many bits as the table's last one added."""
    table = dict(KODAK_BITS_PER_TOKEN)
    last = max(table)
    return table[k] if k in table else table[last] + (k - last) * (table[last] - table[last - 1])


def _stage_ratio(k: int, j: int) -> float:
    """Kodak's bits per token of k stages over those of j stages (scale 1, λ 0)."""
    return kodak_bits_per_token(k) / kodak_bits_per_token(j)


def _rung(budget: float, pixels: int, patch: int, top: int) -> tuple[int, float, float]:
    """(stages, bits per token at scale 1, 1.0) where the search starts: the fewest stages whose
    largest size (``STAGE_SCALE``), by Kodak's bits per token, is worth the budget."""
    for k in range(1, top + 1):
        s = STAGE_SCALE.get(k, MAX_SCALE)
        tokens = pixels * s * s / (patch * patch)
        if tokens * kodak_bits_per_token(k) * s**TOKEN_EXPONENT >= budget or k == top:
            return k, kodak_bits_per_token(k), 1.0
    raise AssertionError("unreachable")


def _size_for(w: int, h: int, patch: int, bits: float, bpt: float, at: float, k: int) -> tuple[int, int]:
    """The coded size whose tokens cost ``bits`` at ``bpt`` bits per token measured at scale ``at``
    (bits per token ~ scale^TOKEN_EXPONENT), within the largest size of ``k`` stages."""
    s_max = STAGE_SCALE.get(k, MAX_SCALE)
    tokens = bits / bpt if math.isfinite(bits) else math.inf
    for _ in range(4):  # the bits per token depend on the size the tokens give: a few rounds settle it
        s = min(s_max, math.sqrt(max(tokens, 1.0) * patch * patch / (w * h)))
        tokens = bits / (bpt * (s / at) ** TOKEN_EXPONENT) if math.isfinite(bits) else math.inf
    cap = math.ceil(w * s_max / patch) * math.ceil(h * s_max / patch)
    return patch_size(w, h, min(tokens, cap), patch) if tokens < cap else container.coded_size(w, h, s_max)


def _at_size(c, stream, target: float, pixels: int, stages: int | None, progress: bool) -> tuple[bytes, float]:
    """At a fixed coded size: λ, and more stages where one stage at λ 0 leaves room (``stages``, at most)."""
    k = stages if stages is not None else stages_for_bpp(target * pixels / (c.size[0] * c.size[1]))
    one = stream(c, 0.0, 1)
    if k == 1 or rate(one, pixels) > target:
        lam, data = search_lambda(lambda x: stream(c, x, 1), target, pixels, progress)
    else:  # more stages only where one stage at λ 0 leaves room: they never take stage 1's tokens away
        lam, data = search_lambda(lambda x: stream(c, x, k), target, pixels, progress)
    return data, lam


def search_lambda(stream, target: float, pixels: int, progress: bool = False) -> tuple[float, bytes]:
    """The largest stream at or under ``target`` bpp that a bisection in log λ finds: (λ, bytes).

    ``BPP_STEPS`` steps, then up to ``BPP_MORE_STEPS`` more while the best stream is more than
    ``BPP_TOLERANCE`` under the target: the stream is within the tolerance of the target
    wherever the knob's sizes, as λ crosses the target, move in smaller steps than that (a
    picture of a few hundred bytes may not allow it: one token can cost more than 2 %).

    Raises:
        RateError: even λ = ``LAMBDA_MAX`` gives a stream over ``target``.
    """
    best = stream(0.0)
    if rate(best, pixels) <= target:  # the stream at λ 0 already fits
        return 0.0, best
    low_end = stream(LAMBDA_MAX)
    if rate(low_end, pixels) > target:
        raise RateError(f"the smallest stream the rate knob reaches on this image is {rate(low_end, pixels):.4f} bpp "
                        f"(lambda {LAMBDA_MAX:g}); {target:g} bpp is below it (at lambda 0: {rate(best, pixels):.4f} bpp)")
    lo, hi = math.log(1e-4), math.log(LAMBDA_MAX)  # rate(lo) may be above target, rate(hi) is not
    best_lam, best = LAMBDA_MAX, low_end
    bar = tqdm(total=BPP_STEPS, desc="rate search", unit="try", disable=not progress, leave=False)
    steps = 0
    while steps < BPP_STEPS or (steps < BPP_STEPS + BPP_MORE_STEPS and rate(best, pixels) < (1 - BPP_TOLERANCE) * target):
        mid = (lo + hi) / 2
        data = stream(math.exp(mid))
        if rate(data, pixels) <= target:
            hi = mid
            if len(data) > len(best):
                best_lam, best = math.exp(mid), data
        else:
            lo = mid
        steps += 1
        bar.update(1)
    bar.close()
    return best_lam, best
