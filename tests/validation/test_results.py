"""How failures read: root causes first, bounds and examples in plain words."""

from __future__ import annotations

from mtlrec.validation.results import Failure, _expected, fold

TYPE = "expect_column_values_to_be_of_type"


def test_checks_on_a_missing_column_are_left_to_the_schema_failure() -> None:
    schema = Failure("expect_table_columns_to_match_set", None, "missing ['position']")
    on_missing = Failure("expect_column_values_to_be_between", "position", "could not be ...")
    other = Failure("expect_column_values_to_not_be_null", "user_id", "3 of 400 rows")
    assert fold([schema, on_missing, other], ["user_id"]) == [schema, other]
    # without a schema failure nothing is dropped: the check itself is the only clue
    assert fold([on_missing], ["user_id"]) == [on_missing]


def test_unevaluable_checks_fold_into_the_dtype_failure_but_findings_stay() -> None:
    dtype = Failure(TYPE, "click", "observed object; expected int64")
    broken = Failure("expect_column_mean_to_be_between", "click", "could not be evaluated: x")
    pair = Failure(
        "expect_column_pair_values_a_to_be_greater_than_b",
        "click, purchase",
        "could not be evaluated: y",
    )
    finding = Failure("expect_column_values_to_not_be_null", "click", "2 of 400 rows")
    shown = fold([dtype, broken, pair, finding], ["click", "purchase"])
    assert [f.expectation for f in shown] == [TYPE, finding.expectation]
    assert shown[0].folded == 2
    assert shown[0].describe().endswith("(+2 checks on click that cannot run)")


def test_describe_names_the_expectation_column_rule_and_examples() -> None:
    failure = Failure(
        "expect_column_values_to_be_in_set",
        "scenario",
        "1 of 400 rows; expected in {search, feed}",
        ["row 3 (impression_id=imp-1): scenario=homepage"],
        rule="scenario in {search, feed}",
        rows=(3,),
    )
    assert failure.describe() == (
        "expect_column_values_to_be_in_set(scenario) [scenario in {search, feed}]: "
        "1 of 400 rows; expected in {search, feed}; "
        "e.g. row 3 (impression_id=imp-1): scenario=homepage"
    )
    assert failure.row_level and failure.as_json()["unexpected_rows"] == 1


def test_expected_bounds_in_words() -> None:
    between = "expect_column_values_to_be_between"
    assert _expected(between, {"min_value": 1}) == "; expected >= 1"
    assert _expected(between, {"max_value": 3, "strict_max": True}) == "; expected < 3"
    assert _expected(between, {"min_value": 0, "max_value": 6}) == "; expected >= 0 and <= 6"
    many = {"value_set": list(range(50))}
    assert (
        _expected("expect_column_values_to_be_in_set", many) == "; expected in a set of 50 values"
    )
    assert _expected("expect_column_values_to_not_be_in_set", {"value_set": [9]}) == (
        "; expected not in {9}"
    )
