"""filter_rows and derive_column: a safe expression language over columns (never eval)."""

from __future__ import annotations

import csv

import pyarrow as pa
import pytest
from pydantic import ValidationError

from forgeline.contracts.cleaners import CleanContext
from forgeline.contracts.loaders import LoadSource
from forgeline.errors import InvalidArgument
from forgeline.plugins.cleaners.expressions import parse
from forgeline.plugins.cleaners.tabular import DeriveColumn, FilterRows
from forgeline.plugins.loaders.files import CsvLoader
from forgeline.registry import PluginRegistry
from tests.conftest import shared_data

CTX = CleanContext(text_column="text", label_column="", seed=0)
ADULT = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income",
]  # fmt: skip


def people() -> pa.Table:
    return pa.table(
        {
            "race": ["White", "Black", "Asian", None, "White", "Other"],
            "age": pa.array([25, 40, None, 33, 70, 18], type=pa.int64()),
            "score": ["Low", "High", "Medium", "Low", None, "High"],
            "hours-per-week": [40.0, 38.5, 50.0, 20.0, 10.0, 45.0],
        }
    )


def _or_people(table: pa.Table | None) -> pa.Table:
    return people() if table is None else table


def keep(where: str, table: pa.Table | None = None) -> pa.Table:
    return FilterRows(FilterRows.Config(where=where)).clean(_or_people(table), CTX).table


def derive(column: str, expression: str, table: pa.Table | None = None, **config) -> pa.Table:
    cleaner = DeriveColumn(DeriveColumn.Config(column=column, expression=expression, **config))
    return cleaner.clean(_or_people(table), CTX).table


def test_filter_keeps_two_groups_and_drops_unknown_rows():
    cleaner = FilterRows(FilterRows.Config(where="race in ['White', 'Black']"))
    result = cleaner.clean(people(), CTX)
    assert result.table.column("race").to_pylist() == ["White", "Black", "White"]
    assert result.details == {"rows_kept": 3, "rows_dropped": 3, "rows_unknown": 1}
    # a table without a text column shows the columns the condition reads
    assert result.examples[0] == ("race='Asian'", "condition false")


def test_filter_conditions_combine_compare_and_handle_missing_values():
    assert keep("age >= 30 and age < 65").column("age").to_pylist() == [40, 33]
    assert keep("18 <= age < 30 or race == 'Asian'").column("age").to_pylist() == [25, None, 18]
    assert keep("not (race in ['White'])").column("race").to_pylist() == ["Black", "Asian", "Other"]
    assert keep("race not in ['White', 'Black']").num_rows == 2  # null race: unknown, dropped
    assert keep("race is None").column("age").to_pylist() == [33]
    assert keep("age is not None and lower(score) == 'low'").column("age").to_pylist() == [25, 33]
    assert keep("col('hours-per-week') / 2 > 20").column("age").to_pylist() == [None, 18]
    assert keep("len(race) > 4 and startswith(race, 'W')").column("age").to_pylist() == [25, 70]
    assert keep("contains(score, 'ig')").num_rows == 2
    unknown = FilterRows(FilterRows.Config(where="age > 30")).clean(people(), CTX)
    assert unknown.details["rows_unknown"] == 1
    assert "condition unknown (a missing value)" in [reason for _, reason in unknown.examples]


def test_derive_column_makes_predictions_numbers_and_text():
    table = derive("pred", "score != 'Low'")
    assert table.column_names[-1] == "pred"
    assert table.column("pred").to_pylist() == [False, True, True, False, None, True]
    assert derive("decade", "int(age / 10) * 10").column("decade").to_pylist() == [
        20, 40, None, 30, 70, 10,
    ]  # fmt: skip
    assert derive("tag", "upper(race) + '-' + str(age)").column("tag").to_pylist()[:2] == [
        "WHITE-25",
        "BLACK-40",
    ]
    assert derive("one", "1").column("one").to_pylist() == [1] * 6
    adult = derive("old", "if_else(age > 60, 'old', 'young')").column("old").to_pylist()
    assert adult == ["young", "young", None, "young", "old", "young"]


def test_derive_column_refuses_an_existing_name_unless_replacing():
    with pytest.raises(InvalidArgument) as error:
        derive("age", "age + 1")
    assert error.value.violations[0].field == "config.column"
    assert derive("age", "age + 1", replace=True).column("age").to_pylist()[:2] == [26, 41]


@pytest.mark.parametrize(
    ("expression", "token"),
    [
        ("__import__('os')", "'__import__' is not a function of the language"),
        ("__import__('os').system('true')", "attribute access"),
        ("race.upper()", "attribute access"),
        ("().__class__", "attribute access"),
        ("race[0]", "indexing"),
        ("lambda: 1", "lambda"),
        ("[x for x in race]", "a comprehension"),
        ("age ** 2", "'**'"),
        ("age // 2", "'//'"),
        ("open('x')", "'open'"),
        ("race = 'White'", "compare with =="),
        ("age > ", "not a valid expression"),
        ("race in score", "'score'"),
        ("race == None", "is None"),
        ("lower(race, 2)", "takes 1 arguments, not 2"),
        ("contains(race, score)", "must be a str literal"),
        ("f'{race}'", "an f-string"),
        ("b'x' == race", "b'x'"),
        ("-" * 1500 + "age", "nests more than 100 levels"),
        ("(" * 300 + "age" + ")" * 300, "not a valid expression"),
        ("age" + " + age" * 400, "at most 2000 characters"),
    ],
)
def test_anything_outside_the_language_is_refused_naming_field_and_token(expression, token):
    with pytest.raises(ValidationError) as error:
        FilterRows.Config(where=expression)
    problem = error.value.errors()[0]
    assert problem["loc"] == ("where",)
    assert token in problem["msg"]


def test_the_service_registry_names_the_request_field():
    with pytest.raises(InvalidArgument) as error:
        PluginRegistry().create("cleaners", "filter_rows", {"where": "race.x"}, "cleaners[2]")
    assert error.value.violations[0].field == "cleaners[2].config.where"
    assert "attribute access" in error.value.message


def test_evaluation_errors_name_the_field_the_column_and_the_types():
    with pytest.raises(InvalidArgument) as error:
        keep("rase == 'White'")
    assert error.value.violations[0].field == "config.where"
    assert "'rase' is not a column: columns are race, age" in error.value.message
    with pytest.raises(InvalidArgument) as error:
        keep("age == 'old'")
    assert "int64" in error.value.message and "age == 'old'" in error.value.message
    with pytest.raises(InvalidArgument) as error:
        keep("age in ['a', 'b']")
    assert "holds int64" in error.value.message
    with pytest.raises(InvalidArgument) as error:
        keep("age + 1")
    assert "gives int64 values, not true or false" in error.value.message
    with pytest.raises(InvalidArgument) as error:
        derive("n", "int(race)")
    assert error.value.violations[0].field == "config.expression"


def test_expressions_list_the_columns_they_read():
    assert parse("race in ['a'] and col('hours-per-week') > age", "f").columns() == [
        "race",
        "hours-per-week",
        "age",
    ]


def test_an_empty_table_stays_empty():
    empty = people().slice(0, 0)
    assert keep("race in ['White']", empty).num_rows == 0
    assert derive("pred", "score != 'Low'", empty).column("pred").to_pylist() == []


def test_adult_census_rows_filter_to_two_groups(tmp_path):
    path = shared_data("fairness/adult/adult.data")
    loader = CsvLoader(CsvLoader.Config(header=False, column_names=ADULT, trim_whitespace=True))
    table = loader.load(LoadSource(path=path))
    assert table.num_rows == 32561
    assert table.schema.field("age").type == pa.int64()
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh, skipinitialspace=True) if r]
    expected = sum(r[8] in ("White", "Black") for r in rows)
    kept = FilterRows(FilterRows.Config(where="race in ['White', 'Black']")).clean(table, CTX)
    assert kept.table.num_rows == expected == 30940
    derived = derive("high_income", "income == '>50K'", kept.table)
    positives = sum(r[8] in ("White", "Black") and r[14] == ">50K" for r in rows)
    assert derived.column("high_income").to_pylist().count(True) == positives
