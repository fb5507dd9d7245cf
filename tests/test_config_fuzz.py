"""Whatever a user puts in the config file, check-config answers 0 or 78 and never a traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli import main
from bridge.config import CwaConfig, LightConfig, MqttConfig, ScheduleConfig, Settings, WatchEntry

KEYS = sorted(
    {
        *Settings.model_fields,
        *(name for model in (CwaConfig, WatchEntry, MqttConfig, LightConfig) for name in model.model_fields),
        *(field.alias or name for name, field in ScheduleConfig.model_fields.items()),
    }
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["sip:bob@example.org", "mqtt://h:1", "https://cwa.example.org", "#FF0000", "08:00", "busy"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), VALUES, max_size=8)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


def _check(path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "-c", str(path)])
    return code, err.getvalue()


@settings(max_examples=150)
@given(document=DOCUMENTS)
def test_random_mappings_give_0_or_78(config_path: Path, document: dict[str, object]) -> None:
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    code, err = _check(config_path)
    assert code in (0, 78), err
    assert "Traceback" not in err
    if code == 78:
        assert err.startswith("cwa2mqtt: invalid configuration (")


@settings(max_examples=100)
@given(text=st.text(max_size=200))
def test_random_text_gives_0_or_78(config_path: Path, text: str) -> None:
    config_path.write_text(text, encoding="utf-8")
    code, err = _check(config_path)
    assert code in (0, 78), err
    assert "Traceback" not in err
