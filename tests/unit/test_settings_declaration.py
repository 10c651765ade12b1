"""Every setting is declared once (gateway/config.py `SETTINGS`); parsing, validation, the
dataclass defaults and the documentation tables agree with that declaration."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from actors.config import ClusterConfig
from gateway.config import SETTINGS, Settings, settings_table_markdown

ROOT = Path(__file__).resolve().parents[2]
NOT_FROM_ENV = {"token_ttl_s"}  # Settings fields with no environment variable


def _section(path: Path, heading: str) -> list[str]:
    """The lines of one `## heading` section."""
    lines = path.read_text().splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _first_table(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_each_field_has_one_declaration_with_the_dataclass_default() -> None:
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs)), "an environment variable declared twice"
    assert all(name.startswith("ECE_") for name in envs)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    declared = [s.field for s in SETTINGS]
    assert len(declared) == len(set(declared)), "a field declared twice"
    assert set(declared) <= set(fields), "a declaration names no Settings field"
    assert set(fields) - set(declared) == NOT_FROM_ENV
    for s in SETTINGS:
        assert fields[s.field].default == s.default, s.env
        assert s.description and "\n" not in s.description and "|" not in s.description, s.env
        if s.default is not None:
            s.check(s.default)  # every default is within its own bounds
    assert Settings.from_env({}) == Settings(data_dir=Path("data").resolve())


def test_cluster_config_defaults_match_the_declaration() -> None:
    by_field = {s.field: s for s in SETTINGS}
    cluster = {f.name: f.default for f in dataclasses.fields(ClusterConfig)}
    for name in ("instance", "auctions_per_actor", "max_hosts", "batching"):
        assert cluster[name] == by_field[name].default, name


def test_architecture_table_is_generated_from_the_declaration() -> None:
    section = _section(ROOT / "docs" / "architecture.md", "## Configuration")
    table = "\n".join(_first_table(section)) + "\n"
    assert table == settings_table_markdown(), (
        "docs/architecture.md's configuration table is out of date; paste "
        "gateway.config.settings_table_markdown() in its place")


def test_readme_rows_show_the_declared_defaults() -> None:
    by_env = {s.env: s for s in SETTINGS}
    rows = _first_table(_section(ROOT / "README.md", "## Configuration"))[2:]
    seen: list[str] = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`(ECE_[A-Z_]+)`", cells[0])
        defaults = [d.strip().strip("`") for d in cells[1].split(" / ")]
        assert names and len(names) == len(defaults), row
        for name, default in zip(names, defaults, strict=True):
            assert name in by_env, f"README lists an undeclared setting {name}"
            assert default == by_env[name].default_text(), name
        seen += names
    assert len(seen) == len(set(seen))
    assert {"ECE_PORT", "ECE_DATA_DIR", "ECE_SECRET", "ECE_MONGODB_URI"} <= set(seen)


@pytest.mark.parametrize(("name", "value"), [
    ("ECE_PORT", "eighty"),  # int
    ("ECE_BOTS", "2.5"),  # int
    ("ECE_RATE_LIMIT", "fast"),  # float
    ("ECE_FRAME_RATE", "inf"),  # float, not finite
    ("ECE_CREATE_PER_MIN", "nan"),
    ("ECE_SEED", "maybe"),  # bool
    ("ECE_BATCHING", "2"),
    ("ECE_PORT", "70000"),  # bounded
    ("ECE_MAX_CONN_PER_IP", "0"),
    ("ECE_AUTH_USER_BURST", "0"),
    ("ECE_BOTS", "-1"),
    ("ECE_RAY_CPUS", "0"),
    ("ECE_SECRET", "short"),
    ("ECE_MINT", "everyone"),
    ("ECE_LOG_LEVEL", "LOUD"),
])
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_values_are_parsed_by_type() -> None:
    settings = Settings.from_env({
        "ECE_PORT": "9000", "ECE_RATE_LIMIT": "2.5", "ECE_SEED": "0", "ECE_BATCHING": "false",
        "ECE_ADMINS": "u1, u2,,", "ECE_DATA_DIR": "somewhere", "ECE_MONGODB_URI": "",
        "ECE_SECRET": "s" * 32, "ECE_MINT": "admin", "ECE_LOG_LEVEL": "WARNING",
        "ECE_RAY_CPUS": "4",
    })
    assert settings.port == 9000 and settings.rate_per_s == 2.5
    assert settings.seed is False and settings.batching is False
    assert settings.admins == ("u1", "u2")
    assert settings.data_dir == Path("somewhere").resolve()
    assert settings.mongodb_uri is None and settings.secret == "s" * 32
    assert settings.mint == "admin" and settings.log_level == "WARNING"
    assert settings.ray_cpus == 4


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="ECE_MAX_HOSTS"):
        Settings(max_hosts=0)
    with pytest.raises(ValueError, match="ECE_RATE_BURST"):
        Settings(rate_burst=float("inf"))
    assert Settings(rate_per_s=5.0, seed=False).rate_per_s == 5.0
