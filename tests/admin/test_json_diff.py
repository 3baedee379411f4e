"""The pure parts of a readable diff: which keys of a JSON object changed, and spacing of word diffs."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit_log_admin.json_diff import KeyChange, json_diff, json_path, same_json
from audit_log_admin.word_diff import TextSegment, spaced_segments, word_diff


def ops(changes):
    return [(json_path(change.path), change.op) for change in changes]


# --- json_diff --------------------------------------------------------------------------------


def test_json_diff_lists_added_removed_changed_and_equal_keys():
    changes = json_diff({"origin": "Kenya", "roast": "medium", "grams": 250}, {"origin": "Kenya", "grams": 500, "v": 2})
    assert changes == (
        KeyChange(("grams",), "changed", old=250, new=500),
        KeyChange(("origin",), "equal", old="Kenya", new="Kenya"),
        KeyChange(("roast",), "removed", old="medium"),
        KeyChange(("v",), "added", new=2),
    )


def test_json_diff_goes_into_objects_nested_in_both_by_path():
    old = {"dimensions": {"width": 10, "height": 5, "unit": {"name": "cm"}}, "tags": ["a"]}
    new = {"dimensions": {"width": 12, "height": 5, "unit": {"name": "mm"}}, "tags": ["a"]}
    assert ops(json_diff(old, new)) == [
        ("dimensions.height", "equal"),
        ("dimensions.unit.name", "changed"),
        ("dimensions.width", "changed"),
        ("tags", "equal"),
    ]


def test_json_diff_keeps_an_unchanged_or_one_sided_nested_object_whole():
    old = {"same": {"a": 1, "b": 2}, "gone": {"x": 1}, "flag": 1}
    new = {"same": {"a": 1, "b": 2}, "new": {"y": 2}, "flag": 2}
    assert ops(json_diff(old, new)) == [("flag", "changed"), ("gone", "removed"), ("new", "added"), ("same", "equal")]


def test_json_diff_lists_and_scalars_are_values_of_a_key():
    old, new = {"list": [1, 2], "obj": {"a": 1}}, {"list": [1, 3], "obj": [1]}
    assert ops(json_diff(old, new)) == [("list", "changed"), ("obj", "changed")]


@pytest.mark.parametrize(
    ("old", "new"),
    [([1, 2], [1, 3]), ("a", "b"), (1, 2), ({"a": 1}, [1]), (None, {"a": 1}), ({"a": 1}, "text")],
)
def test_json_diff_is_none_unless_both_values_are_objects(old, new):
    assert json_diff(old, new) is None


def test_json_diff_is_none_when_no_key_differs():
    assert json_diff({"a": 1, "b": {"c": 2}}, {"b": {"c": Decimal("2.0")}, "a": 1.0}) is None


def test_json_diff_true_is_not_one_and_null_is_not_missing():
    assert ops(json_diff({"a": True, "b": None}, {"a": 1})) == [("a", "changed"), ("b", "removed")]


def test_json_diff_gives_up_above_max_keys():
    old, new = {str(n): n for n in range(30)}, {str(n): n + 1 for n in range(30)}
    assert json_diff(old, new, max_keys=20) is None
    assert len(json_diff(old, new, max_keys=30)) == 30
    nested = {"a": {str(n): n for n in range(30)}}
    assert json_diff(nested, {"a": {"0": -1}}, max_keys=20) is None


def test_json_diff_compares_objects_below_max_depth_as_whole_values():
    old = {"a": {"b": {"c": {"d": 1, "e": 1}}}}
    new = {"a": {"b": {"c": {"d": 2, "e": 1}}}}
    assert ops(json_diff(old, new, max_depth=2)) == [("a.b", "changed")]
    assert ops(json_diff(old, new, max_depth=4)) == [("a.b.c.d", "changed"), ("a.b.c.e", "equal")]


def test_json_diff_of_values_nested_thousands_of_levels_deep_does_not_recurse():
    def deep(leaf):
        value = leaf
        for _ in range(20_000):
            value = [value]
        return value

    assert same_json(deep(1), deep(1))
    assert not same_json(deep(1), deep(2))
    assert ops(json_diff({"a": deep(1), "b": 1}, {"a": deep(2), "b": 1})) == [("a", "changed"), ("b", "equal")]


def test_json_path_quotes_keys_that_would_read_ambiguously():
    assert json_path(("dimensions", "width")) == "dimensions.width"
    assert json_path(("a.b", "", "with space", "x-y", "0", "<b>")) == '"a.b".""."with space".x-y.0."<b>"'


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=3), JSON, max_size=4), st.dictionaries(st.text(max_size=3), JSON, max_size=4))
def test_json_diff_every_top_level_key_is_accounted_for(old, new):
    changes = json_diff(old, new)
    if changes is None:
        assert same_json(old, new)
        return
    top = {change.path[0] for change in changes}
    assert top == set(old) | set(new)
    for change in changes:
        if change.op == "added" and len(change.path) == 1:
            assert change.path[0] not in old
        if change.op == "equal":
            assert same_json(change.old, change.new)


# --- word diff spacing --------------------------------------------------------------------------


def test_spaced_segments_keeps_a_removal_and_the_insertion_after_it_apart():
    segments = word_diff("a lemon tart", "a ripe peach tart")
    assert [s for s in segments if s.op != "equal"] == [
        TextSegment("delete", "lemon"),
        TextSegment("insert", "ripe peach"),
    ]
    assert [(segment.text, gap) for segment, gap in spaced_segments(segments)] == [
        ("a ", False),
        ("lemon", False),
        ("ripe peach", True),
        (" tart", False),
    ]


def test_spaced_segments_adds_no_space_where_whitespace_already_separates():
    pairs = spaced_segments([TextSegment("delete", "old "), TextSegment("insert", "new")])
    assert [gap for _, gap in pairs] == [False, False]
    pairs = spaced_segments([TextSegment("delete", "old"), TextSegment("insert", "\nnew")])
    assert [gap for _, gap in pairs] == [False, False]
    pairs = spaced_segments([TextSegment("equal", "x"), TextSegment("insert", "y"), TextSegment("delete", "z")])
    assert [gap for _, gap in pairs] == [False, False, False]
