"""cluster.yaml must be a config the Ray autoscaler accepts, shaped as the design says."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

REPO = Path(__file__).resolve().parents[1]


def _load() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_ray_schema() -> None:
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(_load(), schema)  # raises ValidationError naming the bad key


def test_cluster_has_cpu_head_and_autoscaling_gpu_workers() -> None:
    config = _load()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["max_workers"] == 0, "the head type must not be scaled as a worker"
    assert "GPU" not in head["resources"] and "g5" not in head["node_config"]["InstanceType"]
    gpu = types["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    assert config["max_workers"] >= gpu["max_workers"]
    assert config["idle_timeout_minutes"] > 0


def test_setup_installs_this_project_after_its_torch() -> None:
    commands = _load()["setup_commands"]
    install_project = [i for i, c in enumerate(commands) if "pip install -e" in c]
    install_torch = [i for i, c in enumerate(commands) if "torch==" in c]
    assert install_project, "setup_commands must install the project"
    assert install_torch and install_torch[0] < install_project[0]
