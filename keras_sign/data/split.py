"""Deterministic train/val/test splits: stratified by class, or whole groups (signers) apart.

Frames of one signer's video look almost the same, so a random split puts
near-identical images on both sides and overstates accuracy. Where the data
has groups, `auto` therefore keeps every group on one side only.
"""

import collections
import logging

import numpy as np

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

SPLITS = ("train", "val", "test")


def choose_method(requested, table):
    """Resolve `auto` to `signer` when the table has groups, else `stratified`."""
    if requested == "auto":
        return "signer" if table.groups else "stratified"
    if requested == "signer" and not table.groups:
        raise KerasSignError(
            f"--split signer needs signer folders (ROOT/SIGNER/CLASS/image) but {table.root} has none; "
            "use --split stratified."
        )
    return requested


def _indices_by_class(labels):
    by_class = collections.defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    return [by_class[label] for label in sorted(by_class)]


def split_stratified(labels, val_fraction, test_fraction, seed):
    """Per class, shuffle with `seed` and cut test, then val, keeping at least one image for training."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=object)
    for indices in _indices_by_class(labels):
        members = rng.permutation(indices)
        n = len(members)
        n_test = min(round(n * test_fraction), max(n - 1, 0))
        n_val = min(round(n * val_fraction), max(n - 1 - n_test, 0))
        assignment[members[:n_test]] = "test"
        assignment[members[n_test:n_test + n_val]] = "val"
        assignment[members[n_test + n_val:]] = "train"
    return list(assignment)


def split_stratified_fold(labels, fold, folds, val_fraction, seed):
    """Fold `fold` (1-based) of a stratified `folds`-fold partition is test; val is drawn stratified from
    the rest. Every image is in exactly one fold's test split."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=object)
    for indices in _indices_by_class(labels):
        for position, index in enumerate(rng.permutation(indices)):
            assignment[index] = "test" if position % folds == fold - 1 else "train"
    rest = [i for i, split in enumerate(assignment) if split == "train"]
    inner = split_stratified([labels[i] for i in rest], val_fraction * len(labels) / max(len(rest), 1), 0.0, seed)
    assignment[rest] = inner
    return list(assignment)


def split_by_group(groups, labels, val_fraction, test_fraction, seed, test_groups=None):
    """Hold out whole groups for test (and for val when there are 4 or more groups).

    Each held-out split gets the groups that bring it closest to its share of
    the images, at least one group each, visited in a seeded random order so
    ties break differently for other seeds. With only 2 or 3 groups, holding
    out a validation signer too would leave one signer to learn from, so val
    is then drawn stratified from the training signers' images instead.
    `test_groups` names the test signers instead (leave-one-signer-out folds);
    val is then a signer only when 3 or more signers remain.
    """
    sizes = collections.Counter(groups)
    if len(sizes) < 2:
        raise KerasSignError(
            f"A split by signer needs at least 2 signers (found {len(sizes)}); use --split stratified."
        )
    order = list(np.random.default_rng(seed).permutation(sorted(sizes)))
    total = len(groups)
    chosen = {}
    if test_groups:
        unknown = sorted(set(test_groups) - set(sizes))
        if unknown or len(set(test_groups)) >= len(sizes):
            unknown_note = f" ({', '.join(unknown)} unknown)" if unknown else ""
            raise KerasSignError(f"--test-signers {','.join(test_groups)} must name some, not all, of the signers "
                                 f"{', '.join(sorted(sizes))}{unknown_note}.")
        chosen = {group: "test" for group in test_groups}
        held_out = ("val",) if len(sizes) - len(set(test_groups)) >= 3 else ()
    else:
        held_out = ("test", "val") if len(sizes) >= 4 else ("test",)
    for position, split in enumerate(held_out):
        target = (test_fraction if split == "test" else val_fraction) * total
        picked = 0
        # Leave at least one group for every split still to be filled, and for train.
        keep_free = len(held_out) - position
        while len(free := [g for g in order if g not in chosen]) > keep_free:
            best = min(free, key=lambda g: abs(picked + sizes[g] - target))
            if picked and abs(picked + sizes[best] - target) >= abs(picked - target):
                break
            chosen[best] = split
            picked += sizes[best]
    assignment = [chosen.get(group, "train") for group in groups]
    if "val" not in held_out:
        remaining = [i for i, s in enumerate(assignment) if s == "train"]
        share = val_fraction * total / len(remaining)
        inner = split_stratified([labels[i] for i in remaining], share, 0.0, seed)
        for index, split in zip(remaining, inner):
            assignment[index] = split  # "val" or "train": the inner test share is zero
        log.info("Only %d signers: test holds out a signer; val is drawn from the training signers.", len(sizes))
    return assignment


def make_split(table, method, val_fraction, test_fraction, seed, test_signers=None, fold=None):
    """Assign every record of `table` to train/val/test; report content shared across splits.

    `test_signers` (a list) fixes the test signers of a split by signer; `fold` ("i/k") makes the test
    split fold i of a stratified k-fold."""
    if test_signers and method != "signer":
        raise KerasSignError("--test-signers needs a split by signer (--split signer, and signer folders).")
    if fold and method != "stratified":
        raise KerasSignError("--fold needs --split stratified; for data with signers use --test-signers.")
    if method == "signer":
        groups = [r.group for r in table.records]
        assignment = split_by_group(groups, table.labels, val_fraction, test_fraction, seed, test_signers)
    elif fold:
        index, folds = (int(part) for part in fold.split("/"))
        assignment = split_stratified_fold(table.labels, index, folds, val_fraction, seed)
    else:
        assignment = split_stratified(table.labels, val_fraction, test_fraction, seed)
    for split in SPLITS:
        missing = set(table.class_names) - {r.label for r, s in zip(table.records, assignment) if s == split}
        if missing:
            log.warning("The %s split has no image of class(es) %s.", split, ", ".join(sorted(missing)))
    leaks = cross_split_duplicates(table.records, assignment)
    if leaks:
        examples = "; ".join(" = ".join(paths) for paths in leaks[:3])
        log.warning(
            "%d image(s) appear in more than one split with identical content (e.g. %s); "
            "remove the copies for an honest test score.", len(leaks), examples,
        )
    return assignment


def cross_split_duplicates(records, assignment):
    """Lists of paths whose files have identical content but sit in different splits."""
    by_hash = collections.defaultdict(list)
    for record, split in zip(records, assignment):
        by_hash[record.sha1].append((record.path, split))
    return [[p for p, _ in entries] for entries in by_hash.values() if len({s for _, s in entries}) > 1]
