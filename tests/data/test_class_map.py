"""`keras_sign.data.class_map`: the class mapping of cross-dataset evaluation."""

import pytest

from keras_sign.data.class_map import map_classes, read_class_map
from keras_sign.errors import KerasSignError


def test_class_names_match_exactly_then_ignoring_case_then_by_the_map(tmp_path):
    model = ["0", "1", "a", "b", "space", "nothing"]
    mapped, left = map_classes(["A", "b", "0", "del", "SPACE"], model)
    assert mapped == {"A": "a", "b": "b", "0": "0", "SPACE": "space"} and left == ["del"]
    (tmp_path / "map.yaml").write_text("blank: nothing\nA: null\n'0': a\n")
    explicit = read_class_map(tmp_path / "map.yaml")
    mapped, left = map_classes(["A", "blank", "0"], model, explicit)
    assert mapped == {"blank": "nothing", "0": "a"} and left == ["A"]
    with pytest.raises(KerasSignError, match="None of the class folders"):
        map_classes(["x", "y"], model)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(KerasSignError, match="must hold a mapping"):
        read_class_map(tmp_path / "list.yaml")
