"""Vision transformer (ViT) with FlexiViT patch-size resizing, on the shared transformer blocks.

    images [batch, h, w, c] -> patches -> linear patch embedding (+ class token)
      -> + position embedding -> blocks (pre-LN, non-causal) -> ln_final
      -> pool (class token or mean) -> class head -> logits [batch, class]

The blocks are `mechjax.models.transformer.TransformerBlock`, the same module as the decoder
LMs' (`ViTConfig.block_config` is a non-causal `TransformerConfig` without positional
embedding), so every block site (`blocks.{L}.attn.hook_pattern`, ...) and parameter
(`blocks_{L}.attn.W_Q[head, d_model, d_head]`, ...) has the LM's name and layout.

Parameters besides the blocks:

    W_patch [patch * patch * channels, d_model]   b_patch [d_model]
        patch pixels flattened in (row, column, channel) order: `W_patch.reshape(p, p, c,
        d_model)` is a conv kernel in HWIO layout (big_vision's), and the patch at grid cell
        (i, j) is `images[:, i*p:(i+1)*p, j*p:(j+1)*p, :].reshape(batch, p*p*c)`.
    cls_token [d_model]                            (class_token=True)
    W_pos [pos, d_model]                           the class token's row first, then the patch
                                                   grid in row-major order
    ln_final.{w, b}   W_U [d_model, class]   b_U [class]   (n_classes > 0, no head module)

FlexiViT (Beyer et al. 2023): one set of weights runs at any patch size. The weights are
stored at `cfg.patch_size`; `model.with_patch_size(8)` (the module field `patch_size`)
runs the same params with 8x8 patches: `W_patch` is PI-resized (`pi_resize`) and the
patch part of `W_pos` bilinearly resized (`resize_pos_embed`) to the new grid inside the
forward, so gradients reach the stored weights and training can draw the patch size per
step (as FlexiViT does). Nothing is learned by the resizing.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mechjax.hooks import NO_HOOKS
from mechjax.models import axes as A
from mechjax.models.config import ConfigIO, TransformerConfig
from mechjax.models.protocol import HookedModel, Readout, Stack
from mechjax.models.transformer import Norm, TransformerBlock, block_stack, dtype_of

_ACTS = ("gelu", "gelu_new", "relu", "silu")
_POOLS = ("cls", "mean")
_DTYPES = ("float32", "bfloat16", "float16")


def _hw(x, what: str) -> tuple[int, int]:
    """An int or an (h, w) pair -> (h, w) of positive ints."""
    hw = (x, x) if isinstance(x, (int, np.integer)) else tuple(x)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise ValueError(f"{what} must be a positive int or a pair (h, w) of them, got {x!r}")
    return int(hw[0]), int(hw[1])


@dataclasses.dataclass(frozen=True)
class ViTConfig(ConfigIO):
    """Every knob of :class:`mechjax.ViT`; frozen, hashable, JSON-serialisable.

    `image_size` is an int (square) or (height, width); `patch_size` the (square) patch side
    the weights are stored at. `n_classes=0` builds no class head: the model then returns the
    final-normed stream `[batch, pos, d_model]` (a feature extractor, e.g. HF `ViTModel`).
    `pool` reads the class head's input from the class token ("cls", needs class_token) or
    the mean over all positions ("mean"; the class token too, if there is one).
    """

    image_size: int | tuple[int, int]
    patch_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_classes: int
    n_channels: int = 3
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int | None = None  # default 4 * d_model
    pool: str = "cls"  # "cls" or "mean"
    class_token: bool = True
    act_fn: str = "gelu"  # gelu (exact, ViT's), gelu_new (tanh approx.), relu, silu
    eps: float = 1e-6
    init_range: float = 0.02
    dtype: str = "float32"  # activations
    param_dtype: str = "float32"
    name: str = ""  # free-form label (e.g. the HF architecture)

    def __post_init__(self):
        def bad(field, value, valid):
            raise ValueError(f"ViTConfig.{field}={value!r} is not valid; use one of {valid}.")

        if not isinstance(self.image_size, int):  # JSON gives lists; keep it hashable
            object.__setattr__(self, "image_size", _hw(self.image_size, "ViTConfig.image_size"))
        for f in ("patch_size", "d_model", "n_layers", "n_heads", "n_channels"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ViTConfig.{f} must be a positive int, got {v!r}")
        if not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(
                f"ViTConfig.n_classes must be an int >= 0 (0 = no class head), got "
                f"{self.n_classes!r}"
            )
        h, w = self.image_hw
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(
                f"ViTConfig: image_size {h}x{w} is not divisible by patch_size={p}; the patch "
                f"grid must tile the image exactly."
            )
        if self.pool not in _POOLS:
            bad("pool", self.pool, _POOLS)
        if self.pool == "cls" and not self.class_token:
            raise ValueError(
                "ViTConfig: pool='cls' reads the class token, but class_token=False; set "
                "class_token=True or pool='mean'."
            )
        if self.act_fn not in _ACTS:
            bad("act_fn", self.act_fn, _ACTS)
        for f in ("dtype", "param_dtype"):
            if getattr(self, f) not in _DTYPES:
                bad(f, getattr(self, f), _DTYPES)
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(
                f"ViTConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "set d_head explicitly."
            )
        if not self.eps > 0:
            raise ValueError(f"ViTConfig.eps must be > 0, got {self.eps!r}")

    # Resolved sizes ---------------------------------------------------------------------------
    @property
    def image_hw(self) -> tuple[int, int]:
        return _hw(self.image_size, "image_size")

    def grid(self, patch_size: int | None = None) -> tuple[int, int]:
        """The patch grid (rows, columns) at `patch_size` (default: the stored one)."""
        p = self.patch_size if patch_size is None else patch_size
        h, w = self.image_hw
        return h // p, w // p

    def n_pos(self, patch_size: int | None = None) -> int:
        """Stream length: class token (if any) + patches."""
        gh, gw = self.grid(patch_size)
        return int(self.class_token) + gh * gw

    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def mlp_dim(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def block_config(self) -> TransformerConfig:
        """The blocks' config: pre-LN, non-causal, no positional embedding inside the blocks.

        `d_input=d_model` only satisfies TransformerConfig's "some input" check: the blocks
        never read it (the ViT embeds patches itself).
        """
        return TransformerConfig(
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_head=self.d_head,
            d_mlp=self.mlp_dim,
            d_input=self.d_model,
            n_ctx=self.n_pos(),
            act_fn=self.act_fn,
            normalization_type="LN",
            positional_embedding_type="none",
            causal=False,
            eps=self.eps,
            init_range=self.init_range,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=self.name,
        )


# --------------------------------------------------------------------------------------------
# FlexiViT resizing (pure functions; used at call time and usable on stored params)
# --------------------------------------------------------------------------------------------


def bilinear_resize_matrix(old_hw, new_hw) -> np.ndarray:
    """B `[new_h * new_w, old_h * old_w]`: column k is the bilinear resize (jax.image.resize,
    antialias=False) of the k-th one-hot `old_hw` patch, so `vec(resize(x)) = B @ vec(x)`."""
    return _resize_matrices(_hw(old_hw, "old_hw"), _hw(new_hw, "new_hw"))[0]


@functools.partial(jax.jit, static_argnums=1)
def _resize_all(patches, new_hw):
    """Bilinear resize (no antialiasing) of each `[h, w]` patch in `[n, h, w]`."""
    return jax.vmap(lambda e: jax.image.resize(e, new_hw, "bilinear", antialias=False))(patches)


@functools.lru_cache(maxsize=64)
def _resize_matrices(old_hw, new_hw) -> tuple[np.ndarray, np.ndarray]:
    """(B, pinv(B^T)) for `old_hw -> new_hw`, as host constants (cached: they depend only on
    the two sizes, so a traced forward embeds them instead of recomputing an SVD)."""
    n_old = old_hw[0] * old_hw[1]
    basis = np.eye(n_old, dtype=np.float32).reshape(n_old, *old_hw)  # the one-hot patches
    with jax.ensure_compile_time_eval(), jax.default_device(jax.local_devices(backend="cpu")[0]):
        cols = _resize_all(basis, new_hw)  # [old_n, new_h, new_w]
    B = np.asarray(cols, np.float64).reshape(n_old, -1).T  # [new_n, old_n]
    # The pseudo-inverse in float64 on the host: exact enough that <x, w> = <Bx, w'> holds to
    # float32 rounding when upsampling (B has full column rank, so B^T pinv(B^T) = I).
    return B, np.linalg.pinv(B.T)


def pi_resize(kernel, new_hw):
    """FlexiViT's PI-resize of a patch-embedding kernel to patch size `new_hw`.

    Args:
      kernel: `[old_h, old_w, ...]` (e.g. `[p, p, channels, d_model]`, HWIO; see
        `W_patch` in the module docstring): the first two axes are the patch's rows and
        columns, any trailing axes (channels, outputs) are resized independently.
      new_hw: int or (h, w), the new patch size.

    Returns:
      `[new_h, new_w, ...]`: per trailing index, `w' = pinv(B^T) vec(w)` with B the bilinear
      resize matrix (`bilinear_resize_matrix`). Then `<x, w> = <resize(x), w'>` for every
      old-size patch x when upsampling (new >= old); when downsampling, w' is the
      least-squares solution. Identity if the size is unchanged. Differentiable in `kernel`.
    """
    kernel = jnp.asarray(kernel)
    old_hw, new_hw = tuple(kernel.shape[:2]), _hw(new_hw, "new_hw")
    if old_hw == new_hw:
        return kernel
    _, pinv = _resize_matrices(old_hw, new_hw)  # [new_n, old_n]
    rest = kernel.shape[2:]
    flat = kernel.reshape(old_hw[0] * old_hw[1], -1)  # [old_n, prod(rest)]
    dt = jnp.promote_types(kernel.dtype, jnp.float32)
    new = jnp.matmul(
        jnp.asarray(pinv, dt), flat.astype(dt), precision=jax.lax.Precision.HIGHEST
    )  # [new_n, prod(rest)]
    return new.reshape(*new_hw, *rest).astype(kernel.dtype)


def resize_pos_embed(pos_grid, new_hw):
    """Bilinear resize of a grid of position embeddings `[grid_h, grid_w, d]` -> `[h, w, d]`.

    As big_vision's FlexiViT (`jax.image.resize`, linear, antialiased when shrinking).
    Identity if the grid is unchanged.
    """
    pos_grid = jnp.asarray(pos_grid)
    new_hw = _hw(new_hw, "new_hw")
    if tuple(pos_grid.shape[:2]) == new_hw:
        return pos_grid
    dt = jnp.promote_types(pos_grid.dtype, jnp.float32)
    out = jax.image.resize(pos_grid.astype(dt), (*new_hw, *pos_grid.shape[2:]), "bilinear")
    return out.astype(pos_grid.dtype)


def patchify(images, patch_size: int):
    """`[batch, h, w, c]` -> `[batch, (h/p) * (w/p), p * p * c]`: patches in row-major grid
    order, each flattened in (row, column, channel) order (`W_patch`'s input order)."""
    b, h, w, c = images.shape
    p = patch_size
    x = images.reshape(b, h // p, p, w // p, p, c)  # [batch, grid_h, p, grid_w, p, c]
    x = x.transpose(0, 1, 3, 2, 4, 5)  # [batch, grid_h, grid_w, p, p, c]
    return x.reshape(b, (h // p) * (w // p), p * p * c)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class ViT(nn.Module, HookedModel):
    """Vision transformer with TransformerLens sites; FlexiViT patch size per call.

    Input: float images `[batch, height, width, channels]` (channels-last) of exactly
    `cfg.image_size`. Output: class logits `[batch, class]`; with `n_classes=0` the
    final-normed stream `[batch, pos, d_model]`; with a `head` module, `head(stream,
    hooks=...)` on that stream.

    Sites: `hook_embed` (patch embeddings with the class token, `[batch, pos, d_model]`),
    `hook_pos_embed`, `blocks.{L}.*` as in the LM, `ln_final.*`, `hook_pooled`
    `[batch, d_model]` and `hook_logits` `[batch, class]`. `pos` = class token, then the
    patches in row-major order.

    Fields:
      cfg: the `ViTConfig`.
      patch_size: run at this patch size (FlexiViT) with the same params; None = the
        stored `cfg.patch_size`. `model.with_patch_size(8)` sets it.
      head: optional head module on the final-normed stream (replaces pool + class head).
    """

    cfg: ViTConfig
    patch_size: int | None = None
    head: nn.Module | None = None

    @property
    def active_patch_size(self) -> int:
        return self.cfg.patch_size if self.patch_size is None else self.patch_size

    def with_patch_size(self, patch_size: int | None) -> ViT:
        """A copy of this (unbound) model that runs at `patch_size`; same params."""
        if patch_size is not None:
            if not isinstance(patch_size, (int, np.integer)) or patch_size <= 0:
                raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
            h, w = self.cfg.image_hw
            if h % patch_size or w % patch_size:
                valid = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
                raise ValueError(
                    f"patch_size={patch_size} does not tile the {h}x{w} images of this ViT; "
                    f"valid patch sizes: {valid}"
                )
            patch_size = int(patch_size)
        return self.clone(patch_size=patch_size)

    def setup(self):
        c = self.cfg
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        init = nn.initializers.normal(c.init_range)
        p = c.patch_size
        self.W_patch = self.param(
            "W_patch", nn.initializers.lecun_normal(), (p * p * c.n_channels, c.d_model), pd
        )
        self.b_patch = self.param("b_patch", nn.initializers.zeros, (c.d_model,), pd)
        if c.class_token:
            self.cls_token = self.param("cls_token", init, (c.d_model,), pd)
        self.W_pos = self.param("W_pos", init, (c.n_pos(), c.d_model), pd)
        block_cfg = c.block_config
        self.blocks = [TransformerBlock(block_cfg, i) for i in range(c.n_layers)]
        self.ln_final = Norm("LN", c.d_model, c.eps, "ln_final", dt, pd)
        if self.head is None and c.n_classes > 0:
            self.W_U = self.param("W_U", init, (c.d_model, c.n_classes), pd)
            self.b_U = self.param("b_U", nn.initializers.zeros, (c.n_classes,), pd)

    # -- the model protocol (see mechjax.models) ----------------------------------------------

    def check_inputs(self, inputs, attention_mask=None) -> None:
        """Host-side: float images `[batch, h, w, channels]` of `cfg.image_size`, tiled
        exactly by the active patch size; no attention mask."""
        c, p = self.cfg, self.active_patch_size
        H, W = c.image_hw
        want = f"[batch, {H}, {W}, {c.n_channels}]"
        if isinstance(inputs, dict):
            raise ValueError(f"ViT takes an image array {want}, got a dict with {sorted(inputs)}")
        shape = tuple(np.shape(inputs))
        if len(shape) != 4:
            hint = " (add a batch axis: images[None])" if len(shape) == 3 else ""
            raise ValueError(
                f"ViT takes images [batch, height, width, channels] (channels-last), i.e. "
                f"{want}; got shape {shape} (rank {len(shape)}){hint}."
            )
        if shape[-1] != c.n_channels:
            hint = (
                " It looks channels-first [batch, channels, h, w]: use "
                "images.transpose(0, 2, 3, 1)."
                if shape[1] == c.n_channels
                else ""
            )
            raise ValueError(
                f"images have {shape[-1]} channels (last axis of shape {shape}); this ViT takes "
                f"n_channels={c.n_channels}, channels-last {want}.{hint}"
            )
        dtype = jnp.result_type(inputs)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"images must be floats, got dtype {dtype}; convert first (e.g. "
                f"images.astype(np.float32) / 255 for uint8 pixels)."
            )
        h, w = shape[1:3]
        if h % p or w % p:
            raise ValueError(
                f"image size {h}x{w} is not divisible by the patch size {p}; at patch size {p} "
                f"this ViT takes {want} images."
            )
        if (h, w) != (H, W):
            gh, gw = c.grid(p)
            raise ValueError(
                f"image size {h}x{w} does not match this ViT's position grid: at patch size "
                f"{p} it has a {gh}x{gw} grid of positions, i.e. images {want}. Resize the "
                f"images to {H}x{W}."
            )
        if attention_mask is not None:
            raise ValueError(
                "ViT takes no attention_mask (every patch attends to every patch); pass None."
            )

    def example_inputs(self):
        h, w = self.cfg.image_hw
        return jnp.zeros((1, h, w, self.cfg.n_channels), jnp.float32)

    def layer_stacks(self) -> tuple[Stack, ...]:
        return (block_stack(self.cfg.block_config),)

    def resume(
        self,
        inputs,
        state,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        stack="blocks",
        layer=0,
        positions=None,
    ):
        """Runs blocks `layer, ...` and the readout from `state`; `positions` only restricts
        a per-position output (n_classes=0) and is ignored by the pooled class head."""
        return self.forward_from(
            state[f"blocks.{layer}.hook_resid_pre"], hooks, attention_mask, layer, positions
        )

    def readout(self) -> Readout:
        return Readout(
            stack="blocks",
            norm="ln_final",
            norm_type="LN",
            pool=self.cfg.pool if self.cfg.n_classes > 0 else None,
            site="hook_logits" if self.head is None and self.cfg.n_classes > 0 else None,
        )

    def readout_weights(self, params):
        """`(W_U [d_model, class], b_U [class])`, or None without a class head."""
        if self.head is not None or self.cfg.n_classes == 0:
            return None
        p = params.get("params", params)
        return jnp.asarray(p["W_U"]), jnp.asarray(p["b_U"])

    # -- forward ------------------------------------------------------------------------------

    def embed(self, images, hooks=NO_HOOKS):
        """Images -> the stream entering `blocks.0`, `[batch, pos, d_model]`."""
        c, dt, p = self.cfg, dtype_of(self.cfg.dtype), self.active_patch_size
        x = jnp.asarray(images).astype(dt)
        b, C, D = x.shape[0], c.n_channels, c.d_model
        W = self.W_patch
        if p != c.patch_size:  # FlexiViT: the stored kernel, PI-resized to this patch size
            P0 = c.patch_size
            W = pi_resize(W.reshape(P0, P0, C, D), p).reshape(p * p * C, D)
        emb = patchify(x, p) @ W.astype(dt) + self.b_patch.astype(dt)  # [batch, patches, d]
        if c.class_token:
            cls = jnp.broadcast_to(self.cls_token.astype(dt), (b, 1, D))
            emb = jnp.concatenate([cls, emb], axis=1)  # [batch, pos, d_model]
        emb = hooks("hook_embed", emb, A.RESID)
        pos = self.W_pos
        if p != c.patch_size:  # the patch rows of W_pos, bilinearly resized to the new grid
            n_cls = int(c.class_token)
            grid = pos[n_cls:].reshape(*c.grid(), D)  # [grid_h, grid_w, d_model]
            grid = resize_pos_embed(grid, c.grid(p)).reshape(-1, D)
            pos = jnp.concatenate([pos[:n_cls], grid], axis=0)  # [pos, d_model]
        pos = jnp.broadcast_to(pos.astype(dt)[None], emb.shape)
        return emb + hooks("hook_pos_embed", pos, A.RESID)

    def __call__(self, images, hooks=NO_HOOKS, attention_mask=None):
        return self.forward_from(self.embed(images, hooks), hooks, attention_mask)

    def forward_from(
        self, resid, hooks=NO_HOOKS, attention_mask=None, start_layer: int = 0, positions=None
    ):
        """Runs blocks `start_layer, ...`, the final norm and the readout on `resid`
        (the value entering `blocks.{start_layer}.hook_resid_pre`, `[batch, pos, d_model]`)."""
        for block in self.blocks[start_layer:]:
            resid = block(resid, hooks, attention_mask)
        x = self.ln_final(resid, hooks)  # [batch, pos, d_model]
        if self.head is not None:
            return self.head(x, hooks=hooks)
        if self.cfg.n_classes == 0:
            return x if positions is None else x[:, list(positions)]
        pooled = x[:, 0] if self.cfg.pool == "cls" else x.mean(axis=1)  # [batch, d_model]
        pooled = hooks("hook_pooled", pooled, A.POOLED)
        logits = pooled @ self.W_U.astype(pooled.dtype) + self.b_U.astype(pooled.dtype)
        return hooks("hook_logits", logits, A.CLASS_LOGITS)  # [batch, class]
