"""cra/jsonl.py: the JSONL reader the pairs import, `cra reward score` and eval share."""

import pytest

from cra.errors import InputFormatError
from cra.jsonl import numbered_rows


def test_rows_come_with_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n   \n["b"]\n"é"\n', encoding="utf-8")
    assert list(numbered_rows(path)) == [(1, {"a": 1}), (4, ["b"]), (5, "é")]


def test_a_bad_line_raises_the_callers_error_with_its_number(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    rows = numbered_rows(path, lambda m: InputFormatError(f"{path}: {m}"))
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(InputFormatError, match=r"rows.jsonl: line 2 is not JSON \(Expecting value"):
        next(rows)
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        list(numbered_rows(path))
