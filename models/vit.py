"""ViT tokenizer: 256×256 RGB tile ⇄ 32×32 grid of 24-d Λ24 codewords.

Data flow::

    image (B, 3, 256, 256) in [0, 1]
      └─ stem: conv stem or linear 8×8 patch embed        → (B, 1024, D)
         + fixed 2-D sin-cos position embedding
         └─ encoder: pre-norm transformer blocks × depth   → (B, 1024, D)
            └─ LayerNorm → Linear(D, 24)                    → latents (B, 32, 32, 24)
               └─ quantize_ste: normalise, snap to Λ24      → codewords (B, 32, 32, 24)
    codewords
      └─ Linear(24, D) + position embedding
         └─ decoder: pre-norm transformer blocks × dec_depth
            └─ LayerNorm → head: linear unpatchify (+ optional 3×3 conv refinement)
               → image (B, 3, 256, 256)

The configuration is a frozen dataclass saved beside the weights (see ``models.io``), so a
weights file alone rebuilds its model. It and the presets (``PRESETS``) live in the torch-free
``models.config``; ``models.export_onnx`` exports these networks for ``models.runtime``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from leechcodec import lattice
from leechcodec.quantizer import normalize, quantize_ste
from leechcodec.stages import gains
from leechcodec.tokenizer import ConfiguredTokenizer

from .config import DEFAULT_PRESET, POS_SCALE, PRESETS, TokenizerConfig  # noqa: F401  (re-exported: torch-free now)
from .loop import adamw, no_mark


_POS_CACHE: dict = {}


def pos_embed(grid_h: int, grid_w: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """``POS_SCALE`` × the sin-cos table on ``like``'s device and dtype, built once per shape
    (rebuilding it in float64 on the host and copying it every forward made a GPU wait)."""
    key = (grid_h, grid_w, dim, like.device, like.dtype)
    t = _POS_CACHE.get(key)
    if t is None:
        t = _POS_CACHE[key] = (POS_SCALE * sincos_pos_embed(grid_h, grid_w, dim)).to(like)
    return t


def sincos_pos_embed(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding, (grid_h*grid_w, dim); ``models.config`` has its
    numpy twin for the ONNX graphs (bit-identical, tests/test_onnx_runtime.py)."""
    if dim % 4:
        raise ValueError(f"position embedding width {dim} is not divisible by 4")
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float64) / q))
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij"
    )
    oy = ys.reshape(-1, 1) * omega
    ox = xs.reshape(-1, 1) * omega
    return torch.cat([oy.sin(), oy.cos(), ox.sin(), ox.cos()], 1).float()


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, H, N, D/H)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def run_blocks(blocks: nn.ModuleList, h: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The transformer blocks, their matrix products in ``dtype`` (autocast) if given.

    The residual stream and the layer norms stay float32, and so do the layers around the
    blocks (stem, output projection, linear skip, the head's refinement): in bf16 those move
    the encoder's latents enough to pick other tokens (−0.26 dB on Kodak), the blocks alone do
    not. The decoder's overlapping head (a transposed convolution as costly as a block) follows
    the blocks: −0.0004 dB on 8 Kodak images, 12 % faster decoding.
    """
    if dtype is None:
        for blk in blocks:
            h = blk(h)
        return h
    with torch.autocast(h.device.type, dtype=dtype):
        for blk in blocks:
            h = blk(h)
    return h.float()


class ConvStem(nn.Module):
    """3×3/s2 → 3×3/s2 → 2×2/s2 convolutions: (B, 3, H, W) → (B, D, H/8, W/8)."""

    def __init__(self, dim: int):
        super().__init__()
        c1, c2 = max(dim // 4, 16), max(dim // 2, 32)
        self.net = nn.Sequential(
            nn.Conv2d(3, c1, 3, 2, 1), nn.GELU(),
            nn.Conv2d(c1, c2, 3, 2, 1), nn.GELU(),
            nn.Conv2d(c2, dim, 2, 2),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.stem == "conv":
            self.stem = ConvStem(cfg.width)
        else:
            self.stem = nn.Conv2d(3, cfg.width, cfg.patch, cfg.patch)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, cfg.latent_dim)
        self.skip = nn.Conv2d(3, cfg.latent_dim, cfg.patch, cfg.patch) if cfg.skip == "linear" else None

    def forward(
        self, x: torch.Tensor, block_dtype: torch.dtype | None = None, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pos``: the (N, D) position table (``pos_embed``), given by the ONNX export, which
        takes it as a graph input (``models.export_onnx``)."""
        B, C, H, W = x.shape
        p = self.cfg.patch
        if C != 3 or H % p or W % p:
            raise ValueError(f"expected (B, 3, H, W) with H, W multiples of {p}, got {tuple(x.shape)}")
        x = x * 2.0 - 1.0
        h = self.stem(x)  # (B, D, H/p, W/p)
        gh, gw = h.shape[-2:]
        h = h.flatten(2).transpose(1, 2)  # (B, N, D)
        h = h + (pos_embed(gh, gw, self.cfg.width, h) if pos is None else pos)
        h = run_blocks(self.blocks, h, block_dtype)
        z = self.out(self.norm(h)).view(B, gh, gw, self.cfg.latent_dim)  # (B, gh, gw, 24)
        if self.skip is not None:
            z = z + self.skip(x).permute(0, 2, 3, 1)
        return z


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.latent_dim, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth))
        self.norm = nn.LayerNorm(cfg.width)
        p, p2 = cfg.patch, cfg.patch * cfg.patch
        if cfg.head == "overlap":
            # each token paints a 2p×2p footprint centred on its own p×p patch: no block edges
            c = cfg.head_channels
            self.out = nn.ConvTranspose2d(cfg.width, c, 2 * p, p, p // 2)
            self.refine = nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, 1, 1), nn.GELU(), nn.Conv2d(c, 3, 3, 1, 1))
        elif cfg.head == "conv":
            c = cfg.head_channels
            self.out = nn.Linear(cfg.width, c * p2)
            self.refine = nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, 1, 1), nn.GELU(), nn.Conv2d(c, 3, 3, 1, 1))
        else:
            self.out = nn.Linear(cfg.width, 3 * p2)
            self.refine = None
        self.skip = None
        if cfg.skip == "linear":
            if cfg.head == "overlap":
                self.skip = nn.ConvTranspose2d(cfg.latent_dim, 3, 2 * p, p, p // 2)
            else:
                self.skip = nn.Linear(cfg.latent_dim, 3 * p2)

    def forward(
        self, q: torch.Tensor, block_dtype: torch.dtype | None = None, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pos``: as in ``Encoder.forward``."""
        B, gh, gw, _ = q.shape
        h = self.inp(q * math.sqrt(self.cfg.latent_dim)).flatten(1, 2)  # unit-variance entries, (B, N, D)
        h = h + (pos_embed(gh, gw, self.cfg.width, h) if pos is None else pos)
        h = run_blocks(self.blocks, h, block_dtype)
        h = self.norm(h)
        if self.cfg.head == "overlap":  # the transposed convolution is the head's bulk: with the blocks' dtype
            x = h.transpose(1, 2).reshape(B, -1, gh, gw)
            if block_dtype is None:  # (an outer autocast, as in GPU training, applies as it is)
                h = self.out(x)  # (B, C, H, W)
            else:
                with torch.autocast(h.device.type, dtype=block_dtype):
                    h = self.out(x).float()
        else:
            h = _unpatchify(self.out(h), B, gh, gw, self.cfg.patch)  # (B, C, H, W)
        if self.refine is not None:
            h = self.refine(h)
        if isinstance(self.skip, nn.ConvTranspose2d):
            h = h + self.skip(q.permute(0, 3, 1, 2))
        elif self.skip is not None:
            h = h + _unpatchify(self.skip(q).flatten(1, 2), B, gh, gw, self.cfg.patch)
        return h * 0.5 + 0.5  # (B, 3, H, W), nominally [0, 1]


def _unpatchify(h: torch.Tensor, B: int, gh: int, gw: int, p: int) -> torch.Tensor:
    """(B, gh*gw, C*p*p) → (B, C, gh*p, gw*p)."""
    c = h.shape[-1] // (p * p)
    return h.view(B, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, c, gh * p, gw * p)


class LeechTokenizer(ConfiguredTokenizer, nn.Module):
    """ViT autoencoder with a Λ24 bottleneck.

    A ``leechcodec.tokenizer.Tokenizer`` with torch tensors in and out: ``analysis``/``synthesis``
    are what the codec (``leechcodec.codec``, through ``torch_nets``) calls; ``forward``
    is the training path (straight-through quantization).
    """

    runtime = "torch"  # what runs the networks (``models.runtime.OnnxTokenizer``: "onnxruntime")

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.model_id = b"\0" * 8  # set by models.io when weights are loaded
        self.prior = None  # leechcodec.exact_prior.ExactPrior for the ar coder (models.files.attach_prior)
        if not self.decoder.norm.weight.is_meta:  # on the meta device (shapes only) there is nothing to fill,
            self.apply(_init_weights)  # and torch's meta init functions import torch._dynamo (0.9 s)

    def analysis(self, x: torch.Tensor, block_dtype: torch.dtype | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → latents (B, H/8, W/8, 24), not yet normalised.
        ``block_dtype``: e.g. torch.bfloat16 for the transformer blocks (``run_blocks``)."""
        return self.encoder(x, block_dtype)

    def synthesis(self, q: torch.Tensor, block_dtype: torch.dtype | None = None) -> torch.Tensor:
        """Unit codeword vectors (B, h, w, 24) → image (B, 3, 8h, 8w), unclamped."""
        return self.decoder(q, block_dtype)

    def forward(self, x: torch.Tensor, mix: float = 0.0, generator: torch.Generator | None = None, stages: int = 1,
                split: bool = False, method: str = "auto", mark=no_mark) -> torch.Tensor:  # fmt: skip
        """Training path (``models.train`` and the shot, ``models.loop``): the latents normalised in
        float32 and quantized with a straight-through gradient (``quantize_ste``, search ``method``).

        ``mix``: fraction of tokens handed to the decoder unquantized (normalised only), drawn
        with ``generator`` (where it lives); 0 is the plain straight-through model. ``stages`` > 1:
        quantizer dropout over residual stages (``later_stages``). ``split``: the encoder sees the
        four quarter tiles of ``x`` on their own (as the codec encodes 256-px tiles) and the
        decoder the joined token grid. ``mark(phase)`` is called at the end of the encoder,
        search and decoder phases (``models.shot.Profiler``).
        """
        z = normalize((self._split_analysis(x) if split else self.analysis(x)).float())  # (B, h, w, 24)
        mark("encoder")
        q = quantize_ste(z, method)
        if stages > 1:
            q = q + later_stages(z.detach(), q.detach(), stages, self.cfg, generator)
        if mix > 0:
            dev = generator.device if generator is not None else z.device  # draws where the generator lives
            keep = torch.rand(z.shape[:-1] + (1,), generator=generator, device=dev) < mix  # (B, h, w, 1)
            q = torch.where(keep.to(z.device), z, q)
        mark("search")
        y = self.synthesis(q)
        mark("decoder")
        return y

    def _split_analysis(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of the four quarter tiles of ``x``, each encoded on its own, joined into one grid."""
        B, _, H, W = x.shape
        h, w = H // 2, W // 2
        quarters = x.view(B, 3, 2, h, 2, w).permute(0, 2, 4, 1, 3, 5).reshape(4 * B, 3, h, w)
        z = self.analysis(quarters)  # (4B, h/p, w/p, 24)
        gh, gw = z.shape[1:3]
        return z.view(B, 2, 2, gh, gw, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * gh, 2 * gw, -1)

    def configure_optimizers(self, weight_decay: float, lr: float, betas=(0.9, 0.95), fused: bool = False):
        """AdamW with weight decay on the matrices and kernels only (``models.loop.adamw``)."""
        return adamw(self, weight_decay, lr, betas, fused)


ONE_STAGE = 0.5  # share of training crops with one stage in later_stages (uniform 1 … 3 cost K = 1 0.26 dB: training-log)


@torch.no_grad()
def later_stages(z: torch.Tensor, first: torch.Tensor, stages: int, cfg: TokenizerConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantizer dropout over residual stages (as SoundStream and DAC train residual VQ): each
    sample of the batch keeps one stage with probability ``ONE_STAGE`` (what most files hold:
    fine-tuning must not cost them quality) and otherwise a number drawn uniformly from
    2 … ``stages``, and gets
    the sum of its stages 2 … K as the codec makes them (``leechcodec.stages.later_tokens`` at
    λ = 0: a token where it lowers the distance to ``z``), to add to its stage-1 codewords
    ``first``. (B, h, w, 24) in and out; no gradient (the straight-through path is stage 1's).
    """
    g = gains(cfg, stages)
    dev = generator.device if generator is not None else z.device  # draws where the generator lives
    more = torch.randint(2, stages + 1, (z.shape[0], 1, 1), generator=generator, device=dev)
    one = torch.rand((z.shape[0], 1, 1), generator=generator, device=dev) < ONE_STAGE
    keep_k = torch.where(one, torch.ones_like(more), more).to(z.device)
    rec, extra = first.float(), torch.zeros_like(first, dtype=torch.float32)
    for k in range(1, stages):
        r = z.float() - rec
        idx = lattice.nearest(r.reshape(-1, r.shape[-1])).reshape(r.shape[:-1])
        step = float(g[k]) * lattice.vectors(idx, check=False).float()
        better = 2 * (r * step).sum(-1) - (step * step).sum(-1) > 0
        step = step * (better & (keep_k > k))[..., None]
        rec, extra = rec + step, extra + step
    return extra.to(z.dtype)


# The constant coordinate of the PCA initialisation: the sphere keeps only a direction, so a
# fixed component gives the other 23 a reference and a flat patch a stable codeword.
PCA_ANCHOR = 2.0


@torch.no_grad()
def pca_init(model: "LeechTokenizer", images: torch.Tensor) -> None:
    """Start the linear skip path as whitened PCA of 8×8 patches of ``images`` (B, 3, H, W).

    Encoder skip: 23 whitened principal components plus the constant ``PCA_ANCHOR`` in the
    last coordinate; decoder skip: the matching reconstruction from a unit vector. Before any
    training, every latent dimension then carries signal (a randomly initialised transformer
    spends its first thousands of steps coding little more than a colour per patch).
    """
    enc, dec = model.encoder.skip, model.decoder.skip
    if enc is None or dec is None:
        raise ValueError("pca_init needs a model with skip='linear'")
    p = model.cfg.patch
    x = images * 2.0 - 1.0
    patches = F.unfold(x.double(), p, stride=p).transpose(1, 2).reshape(-1, 3 * p * p)  # (N, 3pp), c-major
    mean = patches.mean(0)
    cov = torch.cov((patches - mean).T)
    lam, vec = torch.linalg.eigh(cov)  # ascending
    k = model.cfg.latent_dim - 1
    lam, vec = lam.flip(0)[:k].clamp_min(1e-8), vec.flip(1)[:, :k]  # (k,), (3pp, k)
    w_enc = vec.T / lam.sqrt()[:, None]  # (k, 3pp): whitened components
    enc.weight.zero_()
    enc.bias.zero_()
    enc.weight[:k] = w_enc.view(k, 3, p, p).to(enc.weight)
    enc.bias[:k] = (-(w_enc @ mean)).to(enc.bias)
    enc.bias[k] = PCA_ANCHOR
    scale = math.sqrt(k + PCA_ANCHOR**2)  # typical |z|: a unit vector times this undoes the normalisation
    w_dec = vec * lam.sqrt() * scale  # (3pp, k): unit vector → patch
    dec.weight.zero_()
    if isinstance(dec, nn.ConvTranspose2d):  # (24, 3, 2p, 2p): the patch in the centre of the footprint
        o = p // 2
        dec.weight[:k, :, o : o + p, o : o + p] = w_dec.T.reshape(k, 3, p, p).to(dec.weight)
        dec.bias.copy_(mean.view(3, p * p).mean(1).to(dec.bias))
    else:
        dec.weight[:, :k] = w_dec.to(dec.weight)
        dec.bias.copy_(mean.to(dec.bias))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build(preset_or_cfg: str | TokenizerConfig) -> LeechTokenizer:
    """A fresh tokenizer from a preset name or a config."""
    if isinstance(preset_or_cfg, str):
        if preset_or_cfg not in PRESETS:
            raise ValueError(f"unknown preset {preset_or_cfg!r}; choose from {', '.join(PRESETS)}")
        preset_or_cfg = PRESETS[preset_or_cfg]
    return LeechTokenizer(preset_or_cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
