"""Prompt-file rules and the spanned file, on exact inputs and random ones."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pku_aigi.data.prompts import lookup_prompt, parse_prompts, prompt_id
from pku_aigi.data.splitzip import SpannedFile
from pku_aigi.errors import DatasetError


@pytest.mark.parametrize(
    "data,lines",
    [
        (b"a\n\nc", ["a", "", "c"]),  # blank line kept, no final newline
        (b"a\n\nc\n", ["a", "", "c"]),  # a final newline adds no line
        (b"a\r\nb\r\n", ["a", "b"]),  # CRLF
        ("\ufeffa b \n c\u2028d".encode(), ["a b", "c\u2028d"]),  # BOM; U+2028 is no break
        (b"x; y; z", ["x; y; z"]),  # MOD: several captions on one line
        (b"", []),
    ],
)
def test_parse_prompts(data, lines):
    assert parse_prompts(data, "P.txt") == lines


def test_bad_prompt_file_and_names():
    with pytest.raises(DatasetError, match=r"P\.txt is not UTF-8 \(line 2\)"):
        parse_prompts(b"ok\n\xff\xfe", "P.txt")
    assert prompt_id("MJ/0012_3.png") == 12
    assert prompt_id("test/MJ/7.png") == 7
    assert prompt_id("SD21/000016_2.PNG") == 16
    with pytest.raises(DatasetError, match="does not start with a prompt number"):
        prompt_id("MJ/cover.png")
    assert lookup_prompt(None, 5, "x.png", "none") is None
    assert lookup_prompt(["a", "b"], 2, "0002_1.png", "P.txt") == "b"
    with pytest.raises(DatasetError, match=r"needs line 3 of the prompt file P\.txt"):
        lookup_prompt(["a", "b"], 3, "0003_1.png", "P.txt")
    with pytest.raises(DatasetError, match="needs line 0"):
        lookup_prompt(["a"], 0, "0000_1.png", "P.txt")


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=6),
    reads=st.lists(st.tuples(st.integers(0, 250), st.integers(0, 90)), max_size=8),
)
def test_spanned_file_reads_like_the_concatenation(tmp_path_factory, chunks, reads):
    folder = tmp_path_factory.mktemp("span")
    segments, whole = [], b""
    for i, chunk in enumerate(chunks):
        if i % 2:
            segments.append(chunk)
        else:  # a byte range in the middle of a file
            path = folder / f"{i}.bin"
            path.write_bytes(b"<<" + chunk + b">>")
            segments.append((str(path), 2, len(chunk)))
        whole += chunk
    reference = io.BytesIO(whole)
    with SpannedFile(segments) as spanned:
        for offset, size in reads:
            assert spanned.seek(offset) == reference.seek(offset)
            assert spanned.read(size) == reference.read(size)
            assert spanned.tell() == reference.tell()
        back = min(3, len(whole))
        assert spanned.seek(-back, io.SEEK_END) == reference.seek(-back, io.SEEK_END)
        assert spanned.read() == reference.read()
        with pytest.raises(OSError):
            spanned.seek(-1 - len(whole), io.SEEK_END)
