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


def validate_report(path, file_pattern="*", hand_models=None, hand_cache_dir=None):
    """Scan `path` and return `(table, report text)`; with `hand_models` ("full" or "lite") the report also
    counts, per class, the photos in which the hand stage finds a hand (`keras_sign.hands`, cached)."""
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
    with_hand = hands_per_class(table, hand_models, hand_cache_dir) if hand_models else None
    lines.append("images per class" + (f" (with a hand the {hand_models} hand stage finds)" if with_hand else "") + ":")
    lines += [f"  {name:>12} {per_class[name]:6d}" + (f" {with_hand[name]:6d} ({with_hand[name] / per_class[name]:.0%})"
                                                     if with_hand else "") for name in table.class_names]
    if with_hand:
        found = sum(with_hand.values())
        lines.append(f"photos with a hand: {found} of {len(table.records)} ({found / max(len(table.records), 1):.1%})")
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


def hands_per_class(table, hand_models, cache_dir=None):
    """`{class: photos with a hand}` of a scanned table, through the hand cache."""
    from keras_sign.hands.cache import HandCache
    from keras_sign.hands.detector import HandDetector

    hands = HandCache(HandDetector(hand_models), cache_dir).hands_of(
        [table.root / r.path for r in table.records], [r.sha1 for r in table.records], "finding the hands")
    counts = collections.Counter({name: 0 for name in table.class_names})
    counts.update(record.label for record, found in zip(table.records, hands) if found)
    return counts
