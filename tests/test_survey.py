"""The survey's taxonomy as data: it loads, it is checked, and its tables count what the survey counts."""
import pytest

from diffrep_lib import survey

GOOD = """
methods:
  - {key: a2023, name: A, title: T, authors: "A et al.", venue: ICCV, year: 2023, arxiv: "2301.00001",
     place: {part: for_representation, group: Joint diffusion models, tasks: [Classification]}}
"""


def test_the_taxonomy_loads_and_matches_the_survey_counts():
    methods = survey.load()
    t2 = survey.table2(methods)
    assert len({m.key for m in methods if m.part == "for_representation"}) == 30
    assert sum(1 for row in t2.values() for ms in row.values() if ms) == 15
    assert [len(v) for v in survey.table_guidance(methods).values()] == [6, 4, 4]
    assert [r["approach"] for r in survey.table1(methods)][-1] == "Online guidance"
    assert sum(survey.by_year(methods).values()) == 30 + 14 + 1


def test_a_valid_entry_loads_and_links():
    (m,) = survey.load(GOOD)
    assert m.url == "https://arxiv.org/abs/2301.00001" and survey.link(m) == "[A](https://arxiv.org/abs/2301.00001)"
    assert survey.link(survey.Method(**{**m.__dict__, "chapter": "notebooks/02_backbones"})) == "[A](02_backbones.ipynb)"


@pytest.mark.parametrize("change,message", [
    ('arxiv: "2301.00001"', 'arxiv: "23-01"'),
    ("part: for_representation", "part: elsewhere"),
    ("tasks: [Classification]", "tasks: [Juggling]"),
    ("key: a2023, ", ""),
])
def test_bad_entries_are_clear_errors(change, message):
    with pytest.raises(survey.TaxonomyError):
        survey.load(GOOD.replace(change, message))
    with pytest.raises(survey.TaxonomyError, match="listed twice"):
        survey.load(GOOD + GOOD.split("methods:")[1])
