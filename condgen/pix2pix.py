"""Pix2Pix: image-to-image translation with a conditional GAN (sketch x -> color y).

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
https://arxiv.org/abs/1611.07004. Architecture from the paper's Appendix 6.1.1 and 6.1.2, whose
strings are kept below: `Ck` is Conv-BatchNorm-ReLU with k filters, `CDk` adds Dropout 0.5; all
convolutions are 4x4 with stride 2 (the discriminator's last two have stride 1); the encoder uses
LeakyReLU 0.2, the decoder ReLU. Official code: https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix

Where we part from the TensorFlow tutorial (https://www.tensorflow.org/tutorials/generative/pix2pix)
this project grew out of:
- Both generators end in tanh, as the paper says ("followed by a Tanh function"); the tutorial's
  U-Net ends in a bare transposed convolution, so its output is not bounded to [-1, 1].
- The discriminator returns logits, trained with BCE-with-logits; the tutorial applies a sigmoid
  and then BCE on probabilities, which saturates (log(0)) and is numerically worse.
- No BatchNorm on the innermost (1x1) encoder layer, as in the official code: at batch size 1 a
  1x1 map has one value per channel and PyTorch's BatchNorm refuses to normalize it.

One variant, not the paper's, for the encoder-decoder only: `bottleneck=8` stops its encoder after
five layers, an 8x8 code instead of the paper's 1x1 vector, still with no skips (see
EncoderDecoderGenerator). Variants that were tried and not shipped (resize-convolutions, a
multi-scale D, other code sizes, no dropout) are in docs/variants.md with the commit that had them.
"""

import copy

import torch
from torch import nn

from .hints import CHANNELS as HINT_CHANNELS
from .hub import HubMixin

# Appendix 6.1.1. Channel counts are for ngf=64 (ndf=64); other widths scale them by ngf/64.
ENCODER = "C64-C128-C256-C512-C512-C512-C512-C512"
DECODER = "CD512-CD512-CD512-C512-C256-C128-C64"
# The U-Net's decoder string counts each up-convolution's *input* channels: the previous decoder
# output concatenated with the mirrored encoder layer (512 + 512 = 1024), the last one being the
# output convolution's input (64 + 64 = 128). Its output widths are those of DECODER.
UNET_DECODER = "CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128"
# Appendix 6.1.2: the 70x70 PatchGAN. After C512 a convolution maps to 1 channel; the last two
# convolutions have stride 1, which is what makes the receptive field 70 and the map 30x30.
DISCRIMINATOR = "C64-C128-C256-C512"
# Sec. 4.4 varies the patch size; its 1x1 "PixelGAN" has two 1x1 Ck layers (official code:
# PixelDiscriminator, ndf and 2 ndf filters), then a 1x1 convolution to 1 channel.
PIXELGAN = "C64-C128"
BOTTLENECKS = (1, 8)  # EncoderDecoderGenerator(bottleneck=...): the code's size at 256x256 (paper: 1)
PATCH_SIZES = (70, 1)  # Discriminator(patch=...): the 70x70 PatchGAN (default) or the 1x1 PixelGAN
DROPOUT = 0.5  # the CDk layers' rate: the paper's noise z
# config.json keys of checkpoints saved before the variants were removed, with the one value kept
GENERATOR_RETIRED = {"upsample": "transpose", "dropout": DROPOUT}


class Pix2PixModel(HubMixin):
    """Loads checkpoints saved before a variant was removed: a config.json key in RETIRED holding
    the value every model now has is dropped; any other value is an error naming the variant."""

    RETIRED = {}

    @classmethod
    def _from_pretrained(cls, *, model_id, config=None, **kwargs):
        # config: the whole config.json (the mixin passes it to a _from_pretrained that asks for it);
        # kwargs hold only the keys __init__ takes, so a retired key would otherwise pass unseen
        from .hub import CheckpointError

        for key, kept in cls.RETIRED.items():
            if key in (config or {}) and config[key] != kept:
                raise CheckpointError(f"{model_id}: saved with {key} {config[key]}, not {kept}: a variant removed "
                                      "from condgen; docs/variants.md names the commit that can still load it")
        return super()._from_pretrained(model_id=model_id, **kwargs)


def parse_spec(spec, width=64):
    """'CD512-C256' -> [(512 * width // 64, True), (256 * width // 64, False)]: (channels, dropout)."""
    return [(int(tok.lstrip("CD")) * width // 64, tok.startswith("CD")) for tok in spec.split("-")]


class EncodeBlock(nn.Sequential):
    """Ck in the encoder: Conv 4x4 stride 2 (halves H and W) -> BatchNorm -> LeakyReLU 0.2."""

    def __init__(self, in_channels, out_channels, norm=True, stride=2):
        # A conv followed by BatchNorm needs no bias (BN's beta replaces it).
        layers = [nn.Conv2d(in_channels, out_channels, 4, stride, 1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


def up(in_channels, out_channels, bias=True):
    """The decoder's 2x up-convolution: ConvTranspose 4x4 stride 2 (doubles H and W)."""
    return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=bias)


class DecodeBlock(nn.Sequential):
    """Ck / CDk in the decoder: ConvTranspose 4x4 stride 2 (doubles H and W) -> BatchNorm ->
    Dropout 0.5 (CDk only: the paper's only source of noise z) -> ReLU."""

    def __init__(self, in_channels, out_channels, dropout=False):
        layers = [up(in_channels, out_channels, bias=False), nn.BatchNorm2d(out_channels)]
        if dropout:
            layers.append(nn.Dropout(DROPOUT))
        layers.append(nn.ReLU())
        super().__init__(*layers)


def _encoder(in_channels, ngf, layers=8):
    blocks, c = [], in_channels
    spec = parse_spec(ENCODER, ngf)[:layers]
    for i, (k, _) in enumerate(spec):
        # Paper: no BatchNorm on the first C64. Official code: none on the innermost 1x1 layer.
        blocks.append(EncodeBlock(c, k, norm=0 < i < len(spec) - 1))
        c = k
    return nn.ModuleList(blocks)


def _check_size(x):
    # Eight stride-2 layers: the U-Net's skips only line up when H and W are multiples of 256.
    if x.dim() != 4 or x.shape[-1] % 256 or x.shape[-2] % 256:
        raise ValueError(f"expected input [N, C, H, W] with H and W multiples of 256, got {list(x.shape)}")


def _with_hints(G, x, hints):
    """G's input: the sketch x, and for a generator built with hints=True the hint map beside it
    (condgen.hints: 3 colors + 1 mask; none given: no hints, all zeros)."""
    _check_size(x)
    if not G.hints:
        if hints is not None:
            raise ValueError(f"this {type(G).__name__} was built without a hint input (hints=False); "
                             "condgen.hints.apply still colors the hinted regions after it")
        return x
    if hints is None:
        return torch.cat([x, x.new_zeros(len(x), HINT_CHANNELS, *x.shape[2:])], dim=1)
    if hints.shape != (len(x), HINT_CHANNELS, *x.shape[2:]):
        raise ValueError(f"expected hints [N, {HINT_CHANNELS}, H, W] beside x {list(x.shape)}, got {list(hints.shape)}")
    return torch.cat([x, hints.to(x.dtype)], dim=1)


def add_hint_input(G):
    """A copy of a generator built without hints, taking them: the first convolution gets the hint
    map's input channels with zero weights, so the new G paints exactly what G did until trained."""
    new = type(G)(**{**G._hub_mixin_config, "hints": True})
    state = G.state_dict()
    first = "encoder.0.0.weight"
    w = state[first]  # (ngf, 3, 4, 4)
    state[first] = torch.cat([w, w.new_zeros(w.shape[0], HINT_CHANNELS, *w.shape[2:])], dim=1)
    new.load_state_dict(state)
    return new


def decoder_spec(ngf, bottleneck=1):
    """The encoder-decoder's decoder layers for a code of bottleneck x bottleneck (paper: 1): the
    last ones of DECODER, one per encoder layer after the first, as (channels, dropout) pairs."""
    if bottleneck not in BOTTLENECKS:
        raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, got {bottleneck}")
    return parse_spec(DECODER, ngf)[bottleneck.bit_length() - 1:]  # a code of 2^k x 2^k cuts the first k


class EncoderDecoderGenerator(nn.Module, Pix2PixModel, tags=["pix2pix", "image-to-image"]):
    """x [N, 3, H, W] in [-1, 1] -> y [N, 3, H, W] in [-1, 1] through a 1x1 bottleneck, no skips.

    `bottleneck`: the code's height and width for a 256x256 input (paper: 1, all eight encoder
    layers). A documented variant, not the paper's: 8 keeps the first five encoder layers
    (C64-C128-C256-C512-C512, an 8x8x8ngf code) and the decoder's last four (C512-C256-C128-C64),
    still with no skips. On our 722 images the paper's 1x1 code learns a cream silhouette even on
    its training sketches: a code of one vector has to say where every line is. An 8x8 code keeps
    the layout (each cell sees 94x94 pixels), so G can spend its training on color; lines still
    pass through the bottleneck, which is the difference from the U-Net the app shows."""

    RETIRED = GENERATOR_RETIRED

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, bottleneck: int = 1,
                 hints: bool = False):
        super().__init__()
        self.bottleneck, self.hints = bottleneck, hints
        spec = decoder_spec(ngf, bottleneck)
        layers = len(spec) + 1  # each encoder layer halves 256 -> ... -> bottleneck; the decoder mirrors all but one
        self.encoder = _encoder(in_channels + HINT_CHANNELS * hints, ngf, layers)
        blocks, c = [], parse_spec(ENCODER, ngf)[layers - 1][0]
        for k, cd in spec:
            blocks.append(DecodeBlock(c, k, cd))
            c = k
        self.decoder = nn.ModuleList(blocks)
        self.out = up(c, out_channels)  # "a convolution ... to 3 channels"
        init_weights(self)

    def forward(self, x, hints=None):
        x = _with_hints(self, x, hints)
        for block in self.encoder:  # (N, 3, 256, 256) -> ... -> (N, 8ngf, 1, 1) (bottleneck 1)
            x = block(x)
        for block in self.decoder:  # (N, 8ngf, 1, 1) -> ... -> (N, ngf, 128, 128)
            x = block(x)
        return torch.tanh(self.out(x))


class UNetGenerator(nn.Module, Pix2PixModel, tags=["pix2pix", "image-to-image"]):
    """The encoder-decoder with skips: encoder layer i is concatenated to decoder layer n - i, so
    low-level information (here: where the lines are) bypasses the bottleneck."""

    RETIRED = GENERATOR_RETIRED

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, hints: bool = False):
        super().__init__()
        self.hints = hints
        self.encoder = _encoder(in_channels + HINT_CHANNELS * hints, ngf)
        skips = [k for k, _ in parse_spec(ENCODER, ngf)][-2::-1]  # mirrored: 512, 512, ..., 128, 64
        outs = [k for k, _ in parse_spec(DECODER, ngf)]
        ins = parse_spec(UNET_DECODER, ngf)
        # The paper's string must equal what the skips produce: previous output + mirrored skip.
        assert [k for k, _ in ins[1:]] == [o + s for o, s in zip(outs, skips)], "UNET_DECODER does not match"
        self.decoder = nn.ModuleList(DecodeBlock(i, o, cd) for (i, cd), o in zip(ins, outs))
        self.out = up(ins[-1][0], out_channels)
        init_weights(self)

    def forward(self, x, hints=None):
        x = _with_hints(self, x, hints)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips = skips[-2::-1]  # innermost first; the bottleneck itself is not a skip
        for block, skip in zip(self.decoder, skips):
            x = torch.cat([block(x), skip], dim=1)  # (N, out_i, h, w) + (N, skip_i, h, w)
        return torch.tanh(self.out(x))


class Discriminator(nn.Module, Pix2PixModel, tags=["pix2pix", "patchgan"]):
    """The 70x70 PatchGAN: (sketch x, image y) -> logits [N, 1, 30, 30] for 256x256 inputs.

    Each logit judges one 70x70 patch of concat(x, y) as real or fake (Sec. 2.2.2); D is
    conditional, it sees the sketch too.

    `patch=1` is the paper's 1x1 PixelGAN instead (Sec. 4.4, Fig. 6: it "encourages greater color
    diversity but has no effect on spatial statistics"): logits [N, 1, H, W], one per pixel, from
    1x1 convolutions (PIXELGAN; as the official code's PixelDiscriminator). It judges each pixel's
    color given the sketch's pixel there, so it cannot ask for texture, where a PatchGAN that wins
    outright against a generator unable to draw detail (the encoder-decoder) makes its transposed
    convolutions paint a checkerboard. Tried on the encoder-decoder it stayed near chance: beige is
    a plausible color for any one pixel (docs/variants.md).
    """

    RETIRED = {"scales": 1}  # pix2pixHD's multi-scale D, removed: docs/variants.md

    def __init__(self, in_channels: int = 6, ndf: int = 64, patch: int = 70):
        super().__init__()
        if patch not in PATCH_SIZES:
            raise ValueError(f"patch must be one of {PATCH_SIZES} (70x70 PatchGAN, 1x1 PixelGAN), got {patch}")
        self.patch = patch
        self.net = self._patchgan(in_channels, ndf, patch)
        init_weights(self)

    @staticmethod
    def _patchgan(in_channels, ndf, patch):
        spec = parse_spec(DISCRIMINATOR if patch == 70 else PIXELGAN, ndf)
        blocks, c = [], in_channels
        for i, (k, _) in enumerate(spec):
            if patch == 70:  # C64-C128-C256 with stride 2, C512 with stride 1; no BatchNorm on C64 (as the encoder)
                blocks.append(EncodeBlock(c, k, norm=i > 0, stride=2 if i < len(spec) - 1 else 1))
            else:  # the same Ck, with 1x1 convolutions
                blocks.append(nn.Sequential(nn.Conv2d(c, k, 1, bias=i == 0),
                                            *([nn.BatchNorm2d(k)] if i > 0 else []), nn.LeakyReLU(0.2)))
            c = k
        blocks.append(nn.Conv2d(c, 1, 4, 1, 1) if patch == 70 else nn.Conv2d(c, 1, 1))  # logits for BCE-with-logits
        return nn.Sequential(*blocks)

    def forward(self, x, y):
        return self.net(torch.cat([x, y], dim=1))  # (N, 6, 256, 256) -> (N, 1, 30, 30), PixelGAN (N, 1, 256, 256)


def init_weights(module):
    """Weights from N(0, 0.02) (paper Sec. 6.2, following DCGAN); BatchNorm scale from N(1, 0.02)."""
    if next(module.parameters()).is_meta:
        return  # built to be loaded (condgen.hub); meta normal_ would also import torch._dynamo (slow)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def at_test_time(G, stochastic=False):
    """G at test time: eval mode (BatchNorm's running statistics); with stochastic, dropout stays on,
    the paper's noise z ("we provide noise only in the form of dropout, applied ... at both training
    and test time", Sec. 2.2). Returns G, changed in place."""
    G.eval()
    if stochastic:
        for m in G.modules():
            if isinstance(m, nn.Dropout):
                m.train()
    return G


def fold_batchnorm(G):
    """An inference copy of G with each eval-mode BatchNorm folded into the convolution before it
    (w' = w * gamma / sigma, b' = beta + (b - mu) * gamma / sigma): the same function with one pass
    over each activation map fewer. Eval mode only: dropout stays off, statistics stay frozen."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    G = copy.deepcopy(G).eval()
    for block in G.modules():
        if isinstance(block, (EncodeBlock, DecodeBlock)) and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1], transpose=isinstance(block[0], nn.ConvTranspose2d))
            block[1] = nn.Identity()
    return G.requires_grad_(False)


GENERATOR_CLASSES = {"unet": UNetGenerator, "encoder-decoder": EncoderDecoderGenerator}  # --generator NAME


def load_generator(path):
    """A saved pix2pix generator of either architecture: a folder, a training run's folder or a Hub id."""
    from .hub import load_first

    return load_first(GENERATOR_CLASSES.values(), path, "pix2pix generator")
