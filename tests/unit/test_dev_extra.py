import pytest

from devenv import NEEDS_DEV_EXTRA, require_dev_extra


def test_dev_extra_installed_here() -> None:
    require_dev_extra()


def test_missing_dev_extra_is_one_line() -> None:
    with pytest.raises(SystemExit) as exited:
        require_dev_extra(("trustme", "clarion_not_installed_anywhere"))
    assert exited.value.code == NEEDS_DEV_EXTRA
    assert NEEDS_DEV_EXTRA == "the demo needs the dev extra: pip install -e '.[dev]'"
