"""Folder of images -> file table (path, class, group), checking every file once.

Two layouts are recognised: `ROOT/CLASS/image` and `ROOT/GROUP/CLASS/image`
(the group is usually the signer). Every candidate file is opened and fully
decoded here, so a corrupt, truncated or non-image file is skipped with a
warning now instead of crashing training mid-epoch. The scanner keeps exactly
what the pipeline decodes correctly: greyscale, RGBA, palette and CMYK images
become RGB there, while BMPs that TensorFlow's decoder gets wrong (palette or
1-bit) are skipped by name. Each file's EXIF orientation is read here, once,
so the pipeline can show every photo upright at tf.data speed.
"""

import collections
import concurrent.futures
import dataclasses
import fnmatch
import hashlib
import io
import logging
import os
import typing
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keras_sign.errors import KerasSignError
from keras_sign.progress import progress_bar

log = logging.getLogger("keras_sign")

# The formats tf.io.decode_image reads; anything else Pillow knows is reported, not guessed at.
# MPO is the multi-picture JPEG of many cameras and phones: its first picture is an ordinary JPEG.
DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"}
# Pillow's decompression-bomb limit (89.5 megapixels, about 270 MB decoded): above it an image is refused by
# name instead of Pillow's raw warning and a decode that keeps the memory for the rest of the process.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # `size_problem` says it in one line
EXIF_ORIENTATION = 0x0112  # 1 upright; 2-8 mirrored and/or rotated (6 and 8: a phone held upright)
LAYOUT_CLASSES = "class"
LAYOUT_GROUPS = "group/class"


@dataclasses.dataclass
class ImageRecord:
    """One usable image: its path relative to the scanned root, class, group and content hash."""

    path: str
    label: str
    group: str | None
    sha1: str
    width: int  # as displayed: after the EXIF orientation
    height: int
    mode: str
    orientation: int = 1  # EXIF orientation tag, applied by the pipeline


@dataclasses.dataclass
class FileTable:
    """The result of scanning a folder: usable images plus everything that was left out, and why."""

    root: Path
    layout: str
    class_names: list
    records: list
    skipped: list  # (relative path, reason)
    empty_classes: list
    stray_files: list  # files beside the class (or group) folders, e.g. LICENSE

    @property
    def labels(self):
        index = {name: i for i, name in enumerate(self.class_names)}
        return [index[r.label] for r in self.records]

    @property
    def groups(self):
        return sorted({r.group for r in self.records if r.group is not None})

    def limited(self, per_class):
        """The same table keeping the first `per_class` images (by path) of each class in each group."""
        seen = collections.Counter()
        kept = []
        for record in sorted(self.records, key=lambda r: r.path):
            seen[record.group, record.label] += 1
            if seen[record.group, record.label] <= per_class:
                kept.append(record)
        return dataclasses.replace(self, records=kept)


def scan_workers():
    """Threads for reading files: the work is I/O and decoding outside the GIL."""
    return min(16, 2 * (os.cpu_count() or 1))


def exif_orientation(image):
    """The EXIF orientation (1-8) of an open PIL image; 1 when it has none or an invalid one."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a damaged EXIF block leaves the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_orientation(path):
    """The EXIF orientation of an image file, reading its header only (1 when it has none)."""
    try:
        with Image.open(path) as image:
            return exif_orientation(image)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return 1


def read_orientations(paths):
    """EXIF orientations of many files, read in parallel threads (I/O bound)."""
    with concurrent.futures.ThreadPoolExecutor(scan_workers()) as pool:
        return list(pool.map(read_orientation, paths))


def _bmp_problem(data, mode):
    """Why TensorFlow's BMP decoder would get this file wrong, or None when it decodes it correctly.

    It reads 24- and 32-bit uncompressed pixels, and 8-bit ones as grey levels: right only for a grey
    palette (Pillow's mode L). A colour palette silently turns grey; 1- and 4-bit files fail mid-training.
    """
    header_size = int.from_bytes(data[14:18], "little")
    bits = int.from_bytes(data[28:30], "little") if header_size >= 40 else 0
    compression = int.from_bytes(data[30:34], "little") if header_size >= 40 else -1
    if compression == 0 and (bits in (24, 32) or (bits == 8 and mode == "L")):
        return None
    kind = f"{bits}-bit" + (" palette" if mode == "P" else "") + (" compressed" if compression not in (0, -1) else "")
    return f"{kind} BMP is not decoded correctly by TensorFlow; convert it to PNG"


class ImageCheck(typing.NamedTuple):
    """What `inspect_image` found: `problem` is None for an image the pipeline decodes correctly."""

    sha1: str
    width: int  # as displayed, after the EXIF orientation
    height: int
    mode: str
    orientation: int
    problem: str | None


def size_problem(width, height):
    """Why an image of this size is refused, or None."""
    if width * height > MAX_PIXELS:
        return (f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f}-megapixel "
                "limit; downscale it")
    return None


def inspect_image(path):
    """Check one file as the pipeline will read it; return an `ImageCheck`.

    Width and height are as displayed, after the EXIF orientation (a phone's portrait photo is
    stored landscape with orientation 6 or 8).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return ImageCheck("", 0, 0, "", 1, f"cannot be read ({error.strerror or error})")
    digest = hashlib.sha1(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mode, image_format = image.mode, image.format
            orientation = exif_orientation(image)
            if orientation >= 5:  # 5-8 turn the picture a quarter: width and height swap
                width, height = height, width
            problem = None
            if image_format not in DECODABLE_FORMATS:
                problem = f"{image_format} is not supported; convert it to PNG or JPEG"
            elif image_format == "BMP":
                problem = _bmp_problem(data, mode)
            problem = size_problem(width, height) or problem
            if problem:
                return ImageCheck(digest, width, height, mode, orientation, problem)
            # A JPEG is decoded at 1/8 scale: every byte is still read, so truncation is caught, 8x faster.
            image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
    except UnidentifiedImageError:
        return ImageCheck(digest, 0, 0, "", 1, "not an image")
    except Image.DecompressionBombError:  # over twice the limit: Pillow refuses to open it at all
        return ImageCheck(digest, 0, 0, "", 1, f"over the {MAX_PIXELS / 1e6:.0f}-megapixel limit; downscale it")
    except (OSError, SyntaxError, ValueError) as error:
        return ImageCheck(digest, 0, 0, "", 1, f"unreadable image ({error})")
    return ImageCheck(digest, width, height, mode, orientation, None)


def _visible_children(folder):
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def detect_layout(root):
    """`class` when the sub-folders hold images, `group/class` when they hold class folders."""
    subfolders = [p for p in _visible_children(root) if p.is_dir()]
    if not subfolders:
        raise KerasSignError(
            f"{root} has no sub-folders; put each class's images in a folder named after the class (ROOT/CLASS/image)."
        )
    nested = [sub for sub in subfolders if any(p.is_dir() for p in _visible_children(sub))]
    holding_files = [sub for sub in subfolders if any(p.is_file() for p in _visible_children(sub))]
    if nested and len(nested) >= len(holding_files):
        return LAYOUT_GROUPS
    return LAYOUT_CLASSES


def _candidate_files(root, layout, file_pattern, wanted_classes):
    """`(path, class, group)` of every file that might be an image, the class folders, the stray files
    and the broken links (a link whose target is gone is named, not silently passed over)."""
    stray = [p.name for p in _visible_children(root) if p.is_file()]
    groups = [(None, root)] if layout == LAYOUT_CLASSES else [
        (g.name, g) for g in _visible_children(root) if g.is_dir()
    ]
    candidates, class_folders, broken = [], collections.defaultdict(list), []
    for group, group_dir in groups:
        if group is not None:
            stray += [f"{group}/{p.name}" for p in _visible_children(group_dir) if p.is_file()]
        for class_dir in (p for p in _visible_children(group_dir) if p.is_dir()):
            if wanted_classes is not None and class_dir.name not in wanted_classes:
                continue
            class_folders[class_dir.name].append(class_dir)
            for file in _visible_children(class_dir):
                if not fnmatch.fnmatch(file.name, file_pattern):
                    continue
                if file.is_file():
                    candidates.append((file, class_dir.name, group))
                elif file.is_symlink():
                    broken.append((file.relative_to(root).as_posix(), "broken symbolic link: its target does not exist"))
    return candidates, class_folders, stray, broken


def scan_folder(root, grouped=None, file_pattern="*", classes=None, min_classes=2):
    """Scan `root` into a `FileTable`, skipping (with a warning) what cannot be used.

    Args:
        root: the folder holding class folders, or group folders of class folders.
        grouped: True / False to force the layout; None detects it.
        file_pattern: glob that image file names must match (e.g. `color_*`).
        classes: class names to keep, or None for every class folder.
        min_classes: fewer usable classes than this is an error (training needs 2; evaluation 1).

    Example:
        >>> table = scan_folder("../shared/data/massey_asl_hands")
        >>> table.layout, len(table.class_names), table.groups
        ('group/class', 36, ['hand1', 'hand2', 'hand3'])
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise KerasSignError(f"Data folder {root} does not exist; pass a folder of class folders with --data-dir.")
    if grouped is None:
        layout = detect_layout(root)
    else:
        layout = LAYOUT_GROUPS if grouped else LAYOUT_CLASSES
    wanted = set(classes) if classes is not None else None
    candidates, class_folders, stray, skipped = _candidate_files(root, layout, file_pattern, wanted)
    if wanted is not None and wanted - set(class_folders):
        missing = ", ".join(sorted(wanted - set(class_folders)))
        raise KerasSignError(f"No folder for class(es) {missing} in {root}; check the names given to --classes.")

    results = []
    with concurrent.futures.ThreadPoolExecutor(scan_workers()) as pool, \
            progress_bar(len(candidates), f"scanning {root.name}") as bar:
        for check in pool.map(lambda c: inspect_image(c[0]), candidates):
            results.append(check)
            bar.update(1)
    records = []
    for (path, label, group), check in zip(candidates, results):
        relative = path.relative_to(root).as_posix()
        if check.problem:
            skipped.append((relative, check.problem))
        else:
            records.append(ImageRecord(relative, label, group, check.sha1, check.width, check.height, check.mode,
                                       check.orientation))
    skipped.sort()

    present = sorted({r.label for r in records})
    empty = sorted(set(class_folders) - set(present))
    table = FileTable(root, layout, present, records, skipped, empty, stray)
    _warn_about_left_out(table)
    if len(present) < min_classes:
        found = f"only class '{present[0]}'" if present else "no usable images"
        raise KerasSignError(
            f"Found {found} in {root}; a classifier needs at least two class folders with images in them."
            if min_classes >= 2 else f"Found no usable images in {root}; put images in its class folders."
        )
    return table


def _warn_about_left_out(table):
    if table.skipped:
        examples = "; ".join(f"{path}: {reason}" for path, reason in table.skipped[:5])
        more = f" and {len(table.skipped) - 5} more" if len(table.skipped) > 5 else ""
        log.warning(
            "Skipped %d of %d files in %s: %s%s (run `keras-sign data validate %s` for the full list).",
            len(table.skipped), len(table.skipped) + len(table.records), table.root, examples, more, table.root,
        )
    if table.empty_classes:
        log.warning("Left out %d class folder(s) with no usable image: %s.", len(table.empty_classes),
                    summarised(table.empty_classes, f"`keras-sign data validate {table.root}` lists them all"))


def summarised(names, where_the_rest_are, shown=5):
    """`a, b, c, d, e and 9995 more (where_the_rest_are)`: a list that stays one readable line."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more ({where_the_rest_are})"
