"""Folder of images -> file table (path, class, group), checking every file once.

Two layouts are recognised: `ROOT/CLASS/image` and `ROOT/GROUP/CLASS/image`
(the group is usually the signer). Every candidate file is opened and fully
decoded here, so a corrupt, truncated or non-image file is skipped with a
warning now instead of crashing training mid-epoch. Greyscale, RGBA, palette
and CMYK images are kept: the pipeline decodes every one of them to RGB.
"""

import collections
import concurrent.futures
import dataclasses
import fnmatch
import hashlib
import io
import logging
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

# The formats tf.io.decode_image reads; anything else Pillow knows is reported, not guessed at.
DECODABLE_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}
LAYOUT_CLASSES = "class"
LAYOUT_GROUPS = "group/class"


@dataclasses.dataclass
class ImageRecord:
    """One usable image: its path relative to the scanned root, class, group and content hash."""

    path: str
    label: str
    group: str | None
    sha1: str
    width: int
    height: int
    mode: str


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


def inspect_image(path):
    """Return `(sha1, width, height, mode, None)` for a decodable image, or `(sha1, .., reason)`."""
    data = Path(path).read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mode, image_format = image.mode, image.format
            if image_format not in DECODABLE_FORMATS:
                return digest, width, height, mode, f"{image_format} is not supported; convert it to PNG or JPEG"
            # A JPEG is decoded at 1/8 scale: every byte is still read, so truncation is caught, 8x faster.
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError:
        return digest, 0, 0, "", "not an image"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return digest, 0, 0, "", f"unreadable image ({error})"
    return digest, width, height, mode, None


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
    """Yield `(path, class, group)` for every file that might be an image, and the stray files."""
    stray = [p.name for p in _visible_children(root) if p.is_file()]
    groups = [(None, root)] if layout == LAYOUT_CLASSES else [
        (g.name, g) for g in _visible_children(root) if g.is_dir()
    ]
    candidates, class_folders = [], collections.defaultdict(list)
    for group, group_dir in groups:
        if group is not None:
            stray += [f"{group}/{p.name}" for p in _visible_children(group_dir) if p.is_file()]
        for class_dir in (p for p in _visible_children(group_dir) if p.is_dir()):
            if wanted_classes is not None and class_dir.name not in wanted_classes:
                continue
            class_folders[class_dir.name].append(class_dir)
            for file in _visible_children(class_dir):
                if file.is_file() and fnmatch.fnmatch(file.name, file_pattern):
                    candidates.append((file, class_dir.name, group))
    return candidates, class_folders, stray


def scan_folder(root, grouped=None, file_pattern="*", classes=None):
    """Scan `root` into a `FileTable`, skipping (with a warning) what cannot be used.

    Args:
        root: the folder holding class folders, or group folders of class folders.
        grouped: True / False to force the layout; None detects it.
        file_pattern: glob that image file names must match (e.g. `color_*`).
        classes: class names to keep, or None for every class folder.

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
    candidates, class_folders, stray = _candidate_files(root, layout, file_pattern, wanted)
    if wanted is not None and wanted - set(class_folders):
        missing = ", ".join(sorted(wanted - set(class_folders)))
        raise KerasSignError(f"No folder for class(es) {missing} in {root}; check the names given to --classes.")

    workers = min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda c: inspect_image(c[0]), candidates))
    records, skipped = [], []
    for (path, label, group), (digest, width, height, mode, problem) in zip(candidates, results):
        relative = path.relative_to(root).as_posix()
        if problem:
            skipped.append((relative, problem))
        else:
            records.append(ImageRecord(relative, label, group, digest, width, height, mode))

    present = sorted({r.label for r in records})
    empty = sorted(set(class_folders) - set(present))
    table = FileTable(root, layout, present, records, skipped, empty, stray)
    _warn_about_left_out(table)
    if len(present) < 2:
        found = f"only class '{present[0]}'" if present else "no usable images"
        raise KerasSignError(
            f"Found {found} in {root}; a classifier needs at least two class folders with images in them."
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
        log.warning("Left out class folder(s) with no usable image: %s.", ", ".join(table.empty_classes))
