"""forgeline.paths: client paths resolve only inside the configured roots, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeline.errors import InvalidArgument, NotFound, PermissionDenied
from forgeline.paths import PathValidator


@pytest.fixture
def layout(tmp_path) -> dict[str, Path]:
    """Two roots with a file each, and a folder outside both with a secret."""
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    for folder in (first / "sub", second, outside):
        folder.mkdir(parents=True)
    (first / "sub" / "a.csv").write_text("text\nhello\n")
    (second / "b.csv").write_text("text\nworld\n")
    (outside / "secret.txt").write_text("password")
    return {"first": first, "second": second, "outside": outside}


@pytest.fixture
def paths(layout) -> PathValidator:
    return PathValidator([layout["first"], layout["second"]])


def test_a_relative_path_resolves_against_the_first_root(paths, layout):
    assert paths.resolve("sub/a.csv", "source") == (layout["first"] / "sub" / "a.csv").resolve()


def test_an_absolute_path_inside_any_root_is_accepted(paths, layout):
    target = layout["second"] / "b.csv"
    assert paths.resolve(str(target), "source") == target.resolve()


def test_dot_dot_is_refused_even_when_it_would_stay_inside(paths, layout):
    with pytest.raises(InvalidArgument) as caught:
        paths.resolve("sub/../sub/a.csv", "source")
    assert [v.field for v in caught.value.violations] == ["source"]
    assert "'..'" in caught.value.message
    with pytest.raises(InvalidArgument):
        paths.resolve(str(layout["first"]) + "/../outside/secret.txt", "source")


def test_an_absolute_path_outside_the_roots_is_permission_denied(paths, layout):
    with pytest.raises(PermissionDenied) as caught:
        paths.resolve(str(layout["outside"] / "secret.txt"), "source")
    assert caught.value.reason == "PATH_OUTSIDE_ROOTS"
    assert caught.value.metadata == {"field": "source"}
    assert "source:" in caught.value.message


def test_a_symlink_inside_a_root_pointing_outside_is_refused(paths, layout):
    (layout["first"] / "escape.txt").symlink_to(layout["outside"] / "secret.txt")
    (layout["first"] / "escape_dir").symlink_to(layout["outside"], target_is_directory=True)
    with pytest.raises(PermissionDenied):
        paths.resolve("escape.txt", "source")
    with pytest.raises(PermissionDenied):
        paths.resolve(str(layout["first"] / "escape_dir" / "secret.txt"), "source")


def test_a_symlink_between_roots_is_allowed(paths, layout):
    (layout["first"] / "link.csv").symlink_to(layout["second"] / "b.csv")
    assert paths.resolve("link.csv", "source") == (layout["second"] / "b.csv").resolve()


def test_a_missing_file_is_not_found_unless_it_need_not_exist(paths, layout):
    with pytest.raises(NotFound) as caught:
        paths.resolve("sub/missing.csv", "source")
    assert caught.value.reason == "PATH_NOT_FOUND"
    assert "missing.csv" in caught.value.message
    out = paths.resolve("sub/new.parquet", "output", must_exist=False)
    assert out == (layout["first"] / "sub" / "new.parquet").resolve()


@pytest.mark.parametrize("raw", ["sub/a.csv\x00.txt", "\x00"])
def test_a_nul_byte_is_refused(paths, raw):
    with pytest.raises(InvalidArgument) as caught:
        paths.resolve(raw, "source")
    assert "NUL" in caught.value.message


@pytest.mark.parametrize("raw", ["", "   "])
def test_an_empty_path_is_refused_naming_the_field(paths, raw):
    with pytest.raises(InvalidArgument) as caught:
        paths.resolve(raw, "loader.source")
    assert [v.field for v in caught.value.violations] == ["loader.source"]


def test_at_least_one_root_is_required():
    with pytest.raises(ValueError):
        PathValidator([])


def test_a_tilde_is_taken_literally_not_as_a_home_folder(paths, layout):
    (layout["first"] / "~user").mkdir()
    (layout["first"] / "~user" / "a.csv").write_text("text\nx\n")
    found = paths.resolve("~user/a.csv", "source")
    assert found == (layout["first"] / "~user" / "a.csv").resolve()
    with pytest.raises(NotFound):
        paths.resolve("~/a.csv", "source")


def test_an_over_long_path_is_invalid_without_echoing_it(paths):
    with pytest.raises(InvalidArgument) as caught:
        paths.resolve("a" * 5_000_000, "source")
    assert len(caught.value.message) < 200
    with pytest.raises(InvalidArgument):  # one component over NAME_MAX
        paths.resolve("b" * 300 + "/a.csv", "source")


def test_a_store_inside_a_root_is_refused(layout):
    store = layout["first"] / "home"
    (store / "artifacts").mkdir(parents=True)
    (store / "artifacts" / "catalog.db").write_bytes(b"SQLite format 3\x00")
    (layout["second"] / "catalog.db").symlink_to(store / "artifacts" / "catalog.db")
    paths = PathValidator([layout["first"], layout["second"]], stores=[store])
    for raw in ("home/artifacts/catalog.db", str(store), str(layout["second"] / "catalog.db")):
        with pytest.raises(PermissionDenied) as caught:
            paths.resolve(raw, "source")
        assert caught.value.reason == "PATH_IN_STORE"
    assert paths.resolve("sub/a.csv", "source").name == "a.csv"


def test_walking_a_folder_checks_every_entry(paths, layout):
    folder = layout["first"] / "sub"
    (folder / ".hidden").symlink_to(layout["outside"] / "secret.txt")  # skipped, never read
    assert paths.walk(folder, "source") == [folder / "a.csv"]
    (folder / "leak.csv").symlink_to(layout["outside"] / "secret.txt")
    with pytest.raises(PermissionDenied) as caught:
        paths.walk(folder, "source")
    assert "data root #1: sub/leak.csv" in caught.value.message
    assert str(layout["outside"]) not in caught.value.message


def test_messages_name_paths_relative_to_their_root(paths, layout):
    assert paths.display(layout["second"] / "b.csv") == "data root #2: b.csv"
    assert paths.display(layout["first"]) == "data root #1"
    text = f"{layout['first']}/sub/a.csv: line 3 has 2 fields"
    assert paths.redact(text) == "data root #1: sub/a.csv: line 3 has 2 fields"
