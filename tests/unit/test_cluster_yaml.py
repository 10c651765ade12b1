"""`cluster.yaml`, the operators' Ray cluster-launcher config, checked by Ray's own
validation (the schema `ray up` applies), and the commands it runs checked for the form the
gateway needs to join a cluster."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from gateway.config import SETTINGS

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def _config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_validation() -> None:
    validate_config(prepare_config(_config()))


def test_rays_validation_refuses_a_misspelt_key() -> None:
    """The check above can fail: the schema refuses what `ray up` would refuse."""
    bad = copy.deepcopy(_config())
    bad["max_workerz"] = bad.pop("max_workers")
    with pytest.raises(Exception, match="max_workerz"):
        validate_config(prepare_config(bad))


@pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_every_node_starts_a_gateway_that_joins_the_cluster(key: str) -> None:
    commands = " ".join(_config()[key])
    assert "ray start" in commands
    serve = [c for c in _config()[key] if "ece serve" in c]
    assert len(serve) == 1, f"{key}: one `ece serve` per node"
    assert "ECE_RAY_ADDRESS=auto" in serve[0]
    # Every ECE_* variable it sets is a real setting (a typo would be silently ignored).
    names = {s.env for s in SETTINGS}
    for name in re.findall(r"\b(ECE_[A-Z_]+)=", serve[0]):
        assert name in names, f"{key} sets unknown {name}"


def test_secrets_are_not_in_the_file() -> None:
    """The store URI and the token secret come from the operator's environment."""
    text = CLUSTER_YAML.read_text()
    assert "ECE_SECRET=" not in text
    assert "ECE_MONGODB_URI=" not in text
