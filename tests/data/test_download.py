"""Named datasets: install from a local archive standing in for Kaggle, then find and scan them."""

import io
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import SAMPLE, copy_subset
from keras_sign.data.catalog import dataset_location, scan_dataset
from keras_sign.data.download import download_dataset
from keras_sign.errors import KerasSignError


def _zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder).as_posix())
    return archive


def test_alphabet_archive_installs_and_defaults_to_the_study_classes(tmp_path, alphabet):
    # Kaggle's layout: asl_alphabet_train/asl_alphabet_train/<class>/*.jpg beside a flat test folder.
    staged = tmp_path / "kaggle"
    copy_subset(alphabet, staged / "asl_alphabet_train" / "asl_alphabet_train", ["A", "B", "del", "nothing", "space"], 4)
    (staged / "asl_alphabet_test" / "asl_alphabet_test").mkdir(parents=True)
    shutil.copy(next((alphabet / "A").iterdir()), staged / "asl_alphabet_test" / "asl_alphabet_test" / "A_test.jpg")
    archive = _zip_folder(staged, tmp_path / "asl-alphabet.zip")

    cache = tmp_path / "cache"
    root = download_dataset("alphabet", cache_dir=cache, archive=archive)
    assert root == cache / "alphabet" / "asl_alphabet_train" / "asl_alphabet_train"
    assert dataset_location("alphabet", cache) == root
    table = scan_dataset("alphabet", cache_dir=cache)
    assert table.class_names == ["del", "nothing", "space"] and len(table.records) == 12
    assert len(scan_dataset("alphabet", classes="all", cache_dir=cache).class_names) == 5
    assert not list(cache.glob(".alphabet.partial-*"))


def test_fingerspelling_layout_keeps_signers_and_ignores_depth(tmp_path, massey):
    staged = tmp_path / "kaggle" / "dataset5"
    for signer, source in [("A", "hand1"), ("B", "hand2"), ("C", "hand3")]:
        for letter in ["a", "b", "c"]:
            (staged / signer / letter).mkdir(parents=True)
            for i, image in enumerate(sorted((massey / source / letter).iterdir())[:2]):
                shutil.copy(image, staged / signer / letter / f"color_{i}.png")
                shutil.copy(image, staged / signer / letter / f"depth_{i}.png")
    archive = shutil.make_archive(str(tmp_path / "fingerspelling"), "gztar", tmp_path / "kaggle")
    download_dataset("fingerspelling", cache_dir=tmp_path / "cache", archive=archive)
    table = scan_dataset("fingerspelling", cache_dir=tmp_path / "cache")
    assert table.groups == ["A", "B", "C"] and table.class_names == ["a", "b", "c"]
    assert len(table.records) == 18 and all("color_" in r.path for r in table.records)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(KerasSignError, match="keras-sign data download fingerspelling"):
        dataset_location("fingerspelling", tmp_path)
    with pytest.raises(KerasSignError, match="Unknown dataset 'letters'"):
        dataset_location("letters", tmp_path)


def test_a_wrong_archive_leaves_nothing_behind(tmp_path):
    staged = copy_subset(SAMPLE, tmp_path / "staged", ["0", "1"], 2)
    archive = _zip_folder(staged, tmp_path / "digits.zip")
    with pytest.raises(KerasSignError, match="has no folder of its class folders"):
        download_dataset("alphabet", cache_dir=tmp_path / "cache", archive=archive)
    assert list((tmp_path / "cache").iterdir()) == []
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(KerasSignError, match="Could not unpack"):
        download_dataset("alphabet", cache_dir=tmp_path / "cache", archive=tmp_path / "broken.zip")


def test_a_zip_saved_without_its_suffix_installs(tmp_path):
    staged = copy_subset(SAMPLE, tmp_path / "staged", ["0", "1"], 2)
    archive = _zip_folder(staged, tmp_path / "numbers-download")
    root = download_dataset("numbers", cache_dir=tmp_path / "cache", archive=archive)
    assert sorted(p.name for p in root.iterdir()) == ["0", "1"]


def test_missing_and_corrupt_archives_say_what_to_pass(tmp_path):
    with pytest.raises(KerasSignError, match="does not exist; pass the .zip"):
        download_dataset("numbers", cache_dir=tmp_path / "cache", archive=tmp_path / "absent.zip")
    staged = copy_subset(SAMPLE, tmp_path / "staged", ["0", "1"], 2)
    whole = shutil.make_archive(str(tmp_path / "numbers"), "gztar", staged)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(Path(whole).read_bytes()[:-200])
    with pytest.raises(KerasSignError, match="Could not unpack .*pass a .zip, .tar"):
        download_dataset("numbers", cache_dir=tmp_path / "cache", archive=truncated)
    assert list((tmp_path / "cache").iterdir()) == []


def test_members_leaving_the_folder_are_refused_or_kept_inside(tmp_path):
    cache = tmp_path / "deep" / "cache"  # "../../escaped.txt" from the staging folder lands in tmp_path/deep
    staged = copy_subset(SAMPLE, tmp_path / "staged", ["0", "1"], 2)
    zipped = _zip_folder(staged, tmp_path / "numbers.zip")
    with zipfile.ZipFile(zipped, "a") as zf:
        zf.writestr("../../escaped.txt", "outside")
        zf.writestr("/absolute.txt", "outside")
    download_dataset("numbers", cache_dir=cache, archive=zipped)  # zip: the bad members are skipped

    tarred = tmp_path / "numbers.tar.gz"
    with tarfile.open(tarred, "w:gz") as tf:
        tf.add(staged, arcname=".")
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(b"outside")
        tf.addfile(member, io.BytesIO(b"outside"))
    with pytest.raises(KerasSignError, match="Could not unpack .*outside the destination"):
        download_dataset("numbers", cache_dir=cache, archive=tarred, force=True)
    assert not [p for p in tmp_path.rglob("*") if p.name in ("escaped.txt", "absolute.txt")]
    assert not list(cache.glob(".numbers.partial-*"))


def test_without_kagglehub_the_error_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # makes `import kagglehub` fail
    with pytest.raises(KerasSignError, match="pip install kagglehub.*--archive"):
        download_dataset("numbers", cache_dir=tmp_path)


def test_embedded_dataset_needs_no_download():
    with pytest.raises(KerasSignError, match="ships with keras-sign"):
        download_dataset("digits")
