"""`keras-sign data validate PATH`: what a folder holds and what is wrong with it, before training."""

import collections

from keras_sign.data.scan import scan_folder


def duplicate_groups(records):
    """Sets of records with byte-identical content, split into within-class and across-class sets."""
    by_hash = collections.defaultdict(list)
    for record in records:
        by_hash[record.sha1].append(record)
    copies = [group for group in by_hash.values() if len(group) > 1]
    within = [g for g in copies if len({r.label for r in g}) == 1]
    across = [g for g in copies if len({r.label for r in g}) > 1]
    return within, across


def validate_report(path, file_pattern="*"):
    """Scan `path` and return `(table, report text)`."""
    table = scan_folder(path, file_pattern=file_pattern)
    lines = [f"{table.root}: layout {table.layout}, {len(table.class_names)} classes, {len(table.records)} images"]
    per_class = collections.Counter(r.label for r in table.records)
    if table.groups:
        per_group = collections.defaultdict(collections.Counter)
        for record in table.records:
            per_group[record.group][record.label] += 1
        lines.append(f"groups ({len(table.groups)}): " + ", ".join(
            f"{g} {sum(per_group[g].values())} images / {len(per_group[g])} classes" for g in table.groups
        ))
    lines.append("images per class:")
    lines += [f"  {name:>12} {per_class[name]:6d}" for name in table.class_names]
    sizes = collections.Counter((r.width, r.height) for r in table.records)
    widths = [r.width for r in table.records]
    heights = [r.height for r in table.records]
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
    lines.append(f"image sizes (upright): {min(widths)}-{max(widths)} x {min(heights)}-{max(heights)}; "
                 f"most common {common}")
    rotated = collections.Counter(r.orientation for r in table.records if r.orientation != 1)
    lines.append(f"stored rotated or mirrored (EXIF orientation, turned upright when read): {sum(rotated.values())}"
                 + (" (" + ", ".join(f"orientation {o}: {n}" for o, n in sorted(rotated.items())) + ")" if rotated else ""))
    modes = collections.Counter(r.mode for r in table.records)
    lines.append("colour modes: " + ", ".join(f"{m} {n}" for m, n in modes.most_common())
                 + ("" if set(modes) == {"RGB"} else " (all decoded to RGB)"))
    lines.append(f"unreadable or unsupported: {len(table.skipped)}")
    lines += [f"  {path}: {reason}" for path, reason in table.skipped]
    if table.empty_classes:
        lines.append(f"class folders with no usable image ({len(table.empty_classes)}): " + ", ".join(table.empty_classes))
    if table.stray_files:
        lines.append("ignored files beside the class folders: " + ", ".join(table.stray_files))
    within, across = duplicate_groups(table.records)
    lines.append(f"exact duplicates: {len(within)} set(s) within a class, {len(across)} set(s) across classes")
    for group in across + within:
        lines.append("  " + " = ".join(f"{r.path}" for r in group))
    return table, "\n".join(lines)
