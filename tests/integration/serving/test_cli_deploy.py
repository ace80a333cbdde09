"""`forgeline deploy model|list|predict|stop` against a real serving service (and the safety
service holding its audit log): a tiny classifier deployed behind a policy file, texts labelled
and one refused by its rule, and bad input named."""

from __future__ import annotations

import json

from tests.cli_runner import forgeline

POLICY = """
input_filters:
  - name: no-secrets
    filter: {name: blocklist, config: {words: [password]}}
    action: block
    message: no passwords here
"""


def cli(serving_service, *args: str):
    return forgeline({"serving": serving_service.address}, "deploy", *args)


def test_a_model_is_deployed_used_listed_and_stopped(serving_service, models, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    deployed = cli(
        serving_service, "model", "cli-reviews", models.hf.id, "--policy", str(policy), "--json"
    )
    assert deployed.returncode == 0, deployed.stderr
    deployment = json.loads(deployed.stdout)["deployment"]
    assert deployment["state"] == "DEPLOYMENT_STATE_SERVING"
    assert deployment["labels"] == ["neg", "pos"] and deployment["model_id"] == models.hf.id

    labelled = cli(serving_service, "predict", "cli-reviews", "good food", "awful taste")
    assert labelled.returncode == 0, labelled.stderr
    lines = labelled.stdout.strip().splitlines()
    assert lines[0].endswith("good food") and lines[1].endswith("awful taste")
    assert all(line.split()[0] in ("neg", "pos") for line in lines)

    refused = cli(serving_service, "predict", "cli-reviews", "good food", "my password is x")
    assert refused.returncode == 1
    assert "refused" in refused.stdout and "no passwords here" in refused.stdout

    listed = cli(serving_service, "list")
    assert listed.returncode == 0 and "cli-reviews" in listed.stdout and "SERVING" in listed.stdout

    stopped = cli(serving_service, "stop", "cli-reviews")
    assert stopped.returncode == 0 and "stopped cli-reviews" in stopped.stdout
    assert "cli-reviews" not in cli(serving_service, "list").stdout


def test_bad_input_is_refused_naming_the_option_or_field(serving_service, models, tmp_path):
    adapter = cli(serving_service, "model", "x", models.hf.id, "--adapter", "only-a-name")
    assert adapter.returncode == 1
    assert (
        "INVALID_ARGUMENT" in adapter.stderr
        and "--adapter[0]: write NAME=ADAPTER" in adapter.stderr
    )

    missing = cli(
        serving_service, "model", "x", models.hf.id, "--policy", str(tmp_path / "no.yaml")
    )
    assert missing.returncode == 1 and "--policy: cannot read" in missing.stderr

    bad_name = cli(serving_service, "model", "Not A Name", models.hf.id)
    assert bad_name.returncode == 1
    assert bad_name.stderr.count("INVALID_ARGUMENT") == 1 and "  - name: " in bad_name.stderr

    unknown = cli(serving_service, "predict", "no-such-deployment", "hello")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    assert "Traceback" not in adapter.stderr + missing.stderr + bad_name.stderr + unknown.stderr
