"""`keras_sign.data.split`: stratified, by signer, leave-one-signer-out and stratified folds, and duplicates
across splits."""

import collections

import pytest

from keras_sign.data.catalog import scan_dataset
from keras_sign.data.scan import scan_folder
from keras_sign.data.split import (
    choose_method,
    cross_split_duplicates,
    make_split,
    split_by_group,
    split_stratified,
    split_stratified_fold,
)
from keras_sign.errors import KerasSignError


def test_stratified_split_is_seeded_and_keeps_class_shares():
    labels = [c for c in range(10) for _ in range(40)]
    first = split_stratified(labels, 0.1, 0.1, seed=1)
    assert first == split_stratified(labels, 0.1, 0.1, seed=1)
    assert first != split_stratified(labels, 0.1, 0.1, seed=2)
    per_class = collections.Counter((label, split) for label, split in zip(labels, first))
    assert all(per_class[(c, "train")] == 32 and per_class[(c, "test")] == 4 for c in range(10))


def test_tiny_classes_keep_an_image_for_training():
    split = split_stratified([0, 1, 1], 0.5, 0.5, seed=0)
    assert split[0] == "train"


def test_signer_split_keeps_every_signer_on_one_side(massey):
    table = scan_folder(massey)
    assert choose_method("auto", table) == "signer"
    assignment = make_split(table, "signer", 0.1, 0.1, seed=0)
    test_signers = {r.group for r, s in zip(table.records, assignment) if s == "test"}
    other_signers = {r.group for r, s in zip(table.records, assignment) if s != "test"}
    assert test_signers and not test_signers & other_signers
    # With 3 signers, val comes from the training signers so two are left to learn from.
    assert collections.Counter(assignment)["val"] > 0 and len(other_signers) == 2


def test_with_enough_signers_val_is_held_out_by_signer_too():
    groups = [g for g in "ABCDE" for _ in range(50)]
    labels = list(range(250))
    assignment = split_by_group(groups, labels, 0.1, 0.1, seed=3)
    sides = collections.defaultdict(set)
    for group, split in zip(groups, assignment):
        sides[group].add(split)
    assert all(len(s) == 1 for s in sides.values())
    assert sorted(collections.Counter(next(iter(s)) for s in sides.values()).items()) == [
        ("test", 1), ("train", 3), ("val", 1)
    ]


def test_signer_split_needs_signers():
    table = scan_dataset("digits")
    assert choose_method("auto", table) == "stratified"
    with pytest.raises(KerasSignError, match="--split stratified"):
        choose_method("signer", table)


def test_identical_content_across_splits_is_reported():
    from keras_sign.data.scan import ImageRecord

    records = [ImageRecord(f"{i}.jpg", "a", None, sha, 1, 1, "RGB") for i, sha in enumerate("xxyz")]
    assert cross_split_duplicates(records, ["train", "test", "train", "val"]) == [["0.jpg", "1.jpg"]]
    assert cross_split_duplicates(records, ["train", "train", "val", "val"]) == []


def _signers(count, per_signer=30, classes=3):
    groups = [f"s{g}" for g in range(count) for _ in range(per_signer)]
    labels = [i % classes for _ in range(count) for i in range(per_signer)]
    return groups, labels


@pytest.mark.parametrize("count", [3, 5])
def test_each_signer_is_tested_once_by_a_model_that_never_saw_them(count):
    groups, labels = _signers(count)
    tested = []
    for signer in sorted(set(groups)):
        assignment = split_by_group(groups, labels, 0.1, 0.1, seed=0, test_groups=[signer])
        by_split = collections.defaultdict(set)
        for group, split in zip(groups, assignment):
            by_split[split].add(group)
        assert by_split["test"] == {signer} and signer not in by_split["train"] | by_split["val"]
        if count >= 4:  # enough signers left to hold one out for validation too
            assert len(by_split["val"]) == 1 and not by_split["val"] & by_split["train"]
        else:
            assert by_split["val"] <= by_split["train"]  # val drawn from the training signers' images
        tested.append(signer)
    assert sorted(tested) == sorted(set(groups))


def test_test_signers_must_exist_and_leave_someone_to_learn_from():
    groups, labels = _signers(3)
    with pytest.raises(KerasSignError, match="unknown"):
        split_by_group(groups, labels, 0.1, 0.1, 0, test_groups=["nobody"])
    with pytest.raises(KerasSignError, match="some, not all"):
        split_by_group(groups, labels, 0.1, 0.1, 0, test_groups=["s0", "s1", "s2"])


def test_stratified_folds_partition_the_images():
    labels = [i % 4 for i in range(103)]
    tests = []
    for fold in range(1, 6):
        assignment = split_stratified_fold(labels, fold, 5, 0.1, seed=3)
        tests.append({i for i, split in enumerate(assignment) if split == "test"})
        assert {split for split in assignment} == {"train", "val", "test"}
        counts = collections.Counter(labels[i] for i in tests[-1])
        assert max(counts.values()) - min(counts.values()) <= 1  # stratified
    assert sum(len(t) for t in tests) == 103 and set().union(*tests) == set(range(103))
