"""Data: MNIST as in-memory tensors; pix2pix's sketch/color pairs, decoded once and augmented per
step; and the image preparation that training pairs and served sketches share (on_white,
square_on_white), so that the generator sees sketches prepared the one way.

MNIST fits in memory many times over, so training slices shuffled batches out of one tensor
instead of running a per-sample DataLoader (bench/run_all.py measures the difference).
"""

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# torchvision is imported inside the functions that use it: importing it pulls in torch._dynamo, a
# slow import, and the app's cold start needs none of it.

MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def mnist_tensors(root, train=True, download=False):
    """Images [N, 1, 28, 28] float in [-1, 1] and labels [N] int64 from a torchvision MNIST root.

    root holds MNIST/raw/ with either the four .gz archives (torchvision md5-checks and
    extracts them next to themselves, so root must be writable) or the extracted files.
    """
    import torchvision

    from .checkpoint import atomic_write

    raw = Path(root) / "MNIST" / "raw"
    have = [f for f in MNIST_FILES if (raw / f).is_file() or (raw / f"{f}.gz").is_file()]
    if len(have) < len(MNIST_FILES) and not download:
        raise FileNotFoundError(
            f"no MNIST under {root} (expected {raw}/{{train,t10k}}-*-ubyte[.gz]); copy a torchvision "
            f"MNIST root there: mkdir -p {Path(root).parent} && cp -r ../shared/data/mnist {root}"
        )
    try:
        # Extract the archives ourselves: torchvision's download=True would, on a corrupt archive,
        # go on to download MNIST from the internet and report that as the failure.
        for f in MNIST_FILES:
            if not (raw / f).is_file() and not download:
                try:
                    with gzip.open(raw / f"{f}.gz") as src:
                        data = src.read()
                except (OSError, EOFError, zlib.error) as e:
                    raise RuntimeError(f"{raw / f}.gz is corrupt ({e}); copy it again") from e
                # under torchrun every rank extracts: the file appears whole (a rename) or not at all,
                # so no rank reads another's half-written file
                atomic_write(raw / f, lambda tmp, data=data: Path(tmp).write_bytes(data))
        ds = torchvision.datasets.MNIST(str(root), train=train, download=download)
    except PermissionError as e:
        raise PermissionError(f"MNIST root {root} is not writable; torchvision extracts the archives there: copy it "
                              "somewhere writable") from e
    except RuntimeError as e:  # torchvision: md5 mismatch or corrupt archive
        raise RuntimeError(f"MNIST under {root} is unreadable: {e}") from e
    x = ds.data.unsqueeze(1).float().div_(127.5).sub_(1.0)  # uint8 [N,28,28] -> [N,1,28,28] in [-1,1]
    return x, ds.targets.clone()


def shuffled_batches(n, batch_size, generator):
    """Index tensors of a fresh permutation; the last partial batch is dropped so every step
    sees batch_size samples (BatchNorm, stable loss scale)."""
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n - batch_size + 1, batch_size):
        yield perm[i : i + batch_size]


# Pix2Pix pairs. Sketch2Pokemon stores each pair as one 512x256 JPG, sketch x on the left and
# color y on the right; pix2pix's datasets use the same "AB" layout. Separate A/ and B/ folders
# with matching file names work too. 722 pairs are 280 MB as uint8, so they are decoded once and
# kept in memory; only the augmentation runs per step.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def pair_augmentation(kind, size=256):
    """Joint augmentation for (x, y): one call draws one set of random parameters and applies it
    to every tv_tensors.Image passed, so sketch and color stay aligned pixel for pixel.

    tutorial: the TF tutorial's Sketch2Pokemon recipe: pad 30 (reflect or white, 50/50), random
              crop back to size, random horizontal and vertical flips, random rotation by k*90 deg.
    paper:    Isola et al. 2017, Sec. 6.2: resize to 286, random crop 256 ("random jitter"), mirror.
    none:     as loaded.
    """
    from torchvision.transforms import v2

    if kind == "none":
        return v2.Identity()
    if kind == "tutorial":
        return v2.Compose([
            v2.RandomChoice([v2.Pad(30, padding_mode="reflect"), v2.Pad(30, fill=255)]),  # white = paper
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            # rotation by a multiple of 90 degrees of a square image moves pixels, no interpolation
            v2.RandomChoice([v2.RandomRotation((a, a)) for a in (0, 90, 180, 270)]),
        ])
    if kind == "paper":
        jitter = round(size * 286 / 256)
        return v2.Compose([v2.Resize(jitter, antialias=True), v2.RandomCrop(size), v2.RandomHorizontalFlip()])
    raise ValueError(f"unknown augmentation {kind!r}; expected tutorial, paper or none")


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def on_white(image):
    """PIL image -> RGB, transparency composited on white: a drawing app's transparent canvas is
    paper, not black."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def square_on_white(image, size=256):
    """PIL image -> RGB size x size, on white, padded to a square with white (the aspect kept) and
    resized with Lanczos; and the box (left, top, right, bottom) of the image inside it, in the
    output's pixels, to undo it. condgen.sketchify makes the training pairs with it and
    condgen.colorize the generator's input."""
    rgb = on_white(image)
    side = max(rgb.size)
    canvas = Image.new("RGB", (side, side), "white")
    left, top = (side - rgb.width) // 2, (side - rgb.height) // 2
    canvas.paste(rgb, (left, top))
    box = tuple(v * size / side for v in (left, top, left + rgb.width, top + rgb.height))
    return canvas.resize((size, size), Image.LANCZOS), box


def _read_rgb(path):
    """uint8 [3, H, W]; any mode PIL can read, composited on white where it has transparency."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = on_white(im)
    except OSError as e:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"{path}: not a readable image ({e})") from e
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _fit(img, size):
    from torchvision.transforms import v2

    return img if img.shape[-2:] == (size, size) else v2.functional.resize(img, [size, size], antialias=True)


def load_pairs(root, size=256):
    """(x, y) as uint8 [N, 3, size, size] each, from a folder of side-by-side pairs (sketch left)
    or from root/A and root/B (same file names). Halves or images of another size are resized."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no pair folder at {root}")
    if (root / "A").is_dir() and (root / "B").is_dir():
        files_a, names_b = _image_files(root / "A"), {p.name for p in _image_files(root / "B")}
        missing = [p.name for p in files_a if p.name not in names_b]
        if missing:
            raise ValueError(f"{root}/B lacks the counterparts of {missing[:5]} in {root}/A")
        xs = [_fit(_read_rgb(p), size) for p in files_a]
        ys = [_fit(_read_rgb(root / "B" / p.name), size) for p in files_a]
    else:
        xs, ys = [], []
        for p in _image_files(root):
            ab = _read_rgb(p)
            h, w = ab.shape[-2:]
            if w != 2 * h:
                raise ValueError(f"{p}: {w}x{h} is not a side-by-side pair (width must be twice the height)")
            xs.append(_fit(ab[..., : w // 2], size))  # sketch: left half
            ys.append(_fit(ab[..., w // 2 :], size))  # color: right half
    if not xs:
        raise ValueError(f"{root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) and no A/ B/ folders")
    return torch.stack(xs), torch.stack(ys)


def rendering_folders(root, names=None):
    """The pair folders of a training set: root itself, or, when root holds no images but
    subfolders of pairs (condgen.sketchify --method all: one rendering of the sketches each, the
    same file names), each of those; with `names`, only those subfolders, in that order."""
    root = Path(root)
    names = names.split(",") if isinstance(names, str) else names
    subs = []
    if root.is_dir() and not _image_files(root) and not (root / "A").is_dir():
        subs = sorted(d for d in root.iterdir() if d.is_dir() and _image_files(d))
    if names:
        missing = [n for n in names if n not in {d.name for d in subs}]
        if missing:
            has = ", ".join(d.name for d in subs) or "none"
            raise ValueError(f"{root}: no rendering folder {', '.join(missing)} (it has: {has})")
        return [root / n for n in dict.fromkeys(names)]
    return subs or [root]


class PairDataset(torch.utils.data.Dataset):
    """In-memory pairs; item i is (x, y), float [3, size, size] in [-1, 1], jointly augmented.

    With several renderings (see rendering_folders) x holds every rendering of a sketch,
    [N, R, 3, size, size], and each draw picks one at random: the model sees each color image
    with a different kind of sketch from epoch to epoch. `renderings` names the subfolders to use;
    a name listed twice is drawn twice as often (it is loaded once).
    """

    def __init__(self, root, augment="none", size=256, subset=0, renderings=None):
        renderings = renderings.split(",") if isinstance(renderings, str) else renderings
        folders = rendering_folders(root, renderings)
        order = [f.name for f in folders]
        self.choices = torch.tensor([order.index(n) for n in renderings] if renderings else range(len(folders)))
        pairs = [load_pairs(f, size) for f in folders]
        xs, self.y = [x for x, _ in pairs], pairs[0][1]  # the color halves are the same in every folder
        if any(x.shape != xs[0].shape for x in xs):
            names = [f.name for f in folders]
            raise ValueError(f"{root}: the rendering folders {names} hold different numbers of pairs")
        self.x = torch.stack(xs, dim=1)  # (N, R, 3, H, W) uint8
        if subset:
            self.x, self.y = self.x[:subset], self.y[:subset]
        self.augment, self.size = augment, size
        self.transform = pair_augmentation(augment, size)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from torchvision import tv_tensors

        x = self.x[i, self.choices[torch.randint(len(self.choices), ())].item()]
        x, y = self.transform(tv_tensors.Image(x), tv_tensors.Image(self.y[i]))
        return to_tanh_range(x.as_subclass(torch.Tensor)), to_tanh_range(y.as_subclass(torch.Tensor))

    def to(self, device):
        """Keep the uint8 pairs on `device` (a GPU): batches are then cut and jittered there."""
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def batch(self, idx, device, memory_format=torch.contiguous_format):
        """(x, y) for the indices idx, float [B, 3, size, size] in [-1, 1] on device.

        The paper's jitter runs on the whole batch at once (one resize, B crops, B flips), on
        whatever device holds the pairs; the other augmentations go image by image on the CPU.
        Random numbers come from torch's CPU generator either way, so runs resume exactly.
        """
        n = len(idx)
        pick = self.choices[torch.randint(len(self.choices), (n,))]  # one rendering per image
        x, y = self.x[idx.to(self.x.device), pick.to(self.x.device)], self.y[idx.to(self.y.device)]
        if self.augment == "paper":
            x, y = paper_jitter(torch.cat([x, y], dim=1).to(device), self.size).split(3, dim=1)
        else:
            x, y = (torch.stack(t) for t in zip(*(self.transform(*_images(a, b)) for a, b in zip(x, y))))
            x, y = x.to(device), y.to(device)
        return tuple(to_tanh_range(t).contiguous(memory_format=memory_format) for t in (x, y))


def _images(*tensors):
    from torchvision import tv_tensors

    return [tv_tensors.Image(t) for t in tensors]


def paper_jitter(xy, size=256):
    """Isola et al. 2017, Sec. 6.2, batched: resize [B, C, size, size] to 286 (for 256), crop a
    random size x size window per image, mirror half of them. Sketch and color are stacked on C, so
    they share every random parameter. Returns float on xy's device, still on 0..255."""
    jitter = round(size * 286 / 256)
    n = len(xy)
    big = torch.nn.functional.interpolate(xy.float(), size=(jitter, jitter), mode="bilinear", align_corners=False,
                                          antialias=True)
    offsets = torch.randint(0, jitter - size + 1, (n, 2)).tolist()
    flips = (torch.rand(n) < 0.5).tolist()
    crops = [big[i, :, oy : oy + size, ox : ox + size] for i, (oy, ox) in enumerate(offsets)]
    return torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips)]).round_().clamp_(0, 255)


def to_tanh_range(img):
    """uint8 (or float) [0, 255] -> float [-1, 1], the range of the generator's tanh."""
    return img.float().div(127.5).sub(1.0)
