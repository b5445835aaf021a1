"""`gemini-sft preflight` over real HTTP (google-cloud-storage, google-auth sessions) against the stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.preflight import CANNOT_CHECK, FAIL, PASS, REQUIRED_APIS
from gemini_sft.standin import cloud_project as project_routes
from gemini_sft.standin.cloud_project import StandInBucket, cloud_project

PROJECT = "my-project-dev"
BUCKET = "my-project-dev-gemini-sft"
SA = f"gemini-sft-pipelines@{PROJECT}.iam.gserviceaccount.com"
IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/gemini-sft/gemini-sft:0.1.0"


@pytest.fixture()
def project_standin(start_standin):
    server = start_standin(extra_routes=project_routes.routes())
    state = cloud_project(server)
    state.enabled_services = set(REQUIRED_APIS)
    state.buckets[BUCKET] = StandInBucket(
        location="US-CENTRAL1", versioning=True, bindings={"roles/storage.objectAdmin": [f"serviceAccount:{SA}"]}
    )
    state.service_account_bindings[SA] = {"roles/iam.serviceAccountUser": [f"serviceAccount:{SA}"]}
    state.caller_permissions = {"storage.buckets.get", "storage.objects.create", "storage.objects.get",
                                "iam.serviceAccounts.actAs"}
    state.images = {f"{PROJECT}/gemini-sft/gemini-sft:0.1.0"}
    return server


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(
        f"project: {PROJECT}\nregion: us-central1\npipeline_root: gs://{BUCKET}/pipeline-root\n"
        f"service_account: {SA}\nimage: {IMAGE}\nregistry_uri: gs://{BUCKET}/registry\n"
    )
    return path


def run(config_file: Path, server, capsys) -> tuple[int, dict]:
    code = main(["preflight", "--config", str(config_file), "--api-endpoint", server.base_url, "--json"])
    checks = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in checks["checks"]}


def test_a_ready_project_passes_every_check(project_standin, config_file, capsys) -> None:
    code, checks = run(config_file, project_standin, capsys)
    assert code == 0
    assert {name: c["status"] for name, c in checks.items() if c["status"] != PASS} == {}
    assert len(checks) == len(REQUIRED_APIS) + 3 + 3 + 2
    routes_called = {record.route for record in project_standin.requests}
    assert {"serviceusage.services.get", "storage.buckets.get", "storage.buckets.testIamPermissions",
            "iam.serviceAccounts.getIamPolicy", "artifactregistry.manifests.get"} <= routes_called


def test_each_problem_fails_its_check_with_the_command_that_fixes_it(project_standin, config_file, capsys) -> None:
    state = cloud_project(project_standin)
    state.enabled_services.discard("aiplatform.googleapis.com")
    state.buckets[BUCKET].versioning = False
    state.buckets[BUCKET].location = "EUROPE-WEST4"
    state.buckets[BUCKET].bindings = {"roles/storage.objectViewer": [f"serviceAccount:{SA}"]}
    state.service_account_bindings[SA] = {}
    state.caller_permissions.discard("iam.serviceAccounts.actAs")
    state.images = set()
    code, checks = run(config_file, project_standin, capsys)
    assert code == 1
    failed = {name: c["fix"] for name, c in checks.items() if c["status"] == FAIL}
    assert failed["api aiplatform.googleapis.com"] == f"gcloud services enable aiplatform.googleapis.com --project {PROJECT}"
    assert failed["pipeline bucket keeps object versions"] == f"gcloud storage buckets update gs://{BUCKET} --versioning"
    assert "--location=us-central1" in failed["pipeline bucket in the region"]
    assert "roles/storage.objectAdmin" in failed["service account reads and writes the pipeline root"]
    assert "roles/iam.serviceAccountUser" in failed["service account acts as itself"]
    assert "iam.serviceAccountUser" in failed["you may submit as the service account"]
    assert failed["component image in Artifact Registry"] == f"make image PROJECT={PROJECT} REGION=us-central1"
    assert checks["api storage.googleapis.com"]["status"] == PASS


def test_a_missing_bucket_fails_and_says_how_to_make_it(project_standin, config_file, capsys) -> None:
    del cloud_project(project_standin).buckets[BUCKET]
    code, checks = run(config_file, project_standin, capsys)
    assert code == 1
    assert checks["pipeline bucket exists"]["status"] == FAIL
    assert checks["pipeline bucket exists"]["fix"].startswith(f"gcloud storage buckets create gs://{BUCKET}")


def test_a_policy_it_may_not_read_is_reported_as_cannot_check(project_standin, config_file, capsys) -> None:
    cloud_project(project_standin).denied_routes = {"iam.serviceAccounts.getIamPolicy", "storage.buckets.get"}
    code, checks = run(config_file, project_standin, capsys)
    assert code == 0  # nothing failed; what could not be read is said, not guessed
    assert checks["service account acts as itself"]["status"] == CANNOT_CHECK
    assert "no permission to read the IAM policy of" in checks["service account acts as itself"]["detail"]
    assert checks["pipeline bucket keeps object versions"]["status"] == CANNOT_CHECK


def test_an_unknown_service_account_fails_closed(project_standin, config_file, capsys) -> None:
    cloud_project(project_standin).service_account_bindings.pop(SA)
    code, checks = run(config_file, project_standin, capsys)
    assert code == 1
    assert checks["service account acts as itself"]["status"] == FAIL


def test_a_region_without_tuning_fails_without_asking_the_cloud(project_standin, config_file, capsys) -> None:
    config_file.write_text(config_file.read_text().replace("region: us-central1", "region: africa-south1"))
    code, checks = run(config_file, project_standin, capsys)
    assert code == 1
    assert checks["africa-south1 tunes gemini-2.5-flash"]["status"] == FAIL


def test_the_text_report_lists_each_check_and_a_count(project_standin, config_file, capsys) -> None:
    code = main(["preflight", "--config", str(config_file), "--api-endpoint", project_standin.base_url])
    text = capsys.readouterr().out
    assert code == 0
    assert "PASS          pipeline bucket keeps object versions: object versioning is on" in text
    assert text.strip().endswith("passed, 0 failed, 0 could not be checked")


def test_without_credentials_it_says_what_to_run(config_file, capsys, monkeypatch, tmp_path) -> None:
    # A missing key file makes google-auth fail at once, before it would look for a metadata server.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    monkeypatch.delenv("VERTEX_API_ENDPOINT", raising=False)
    code = main(["preflight", "--config", str(config_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert "gcloud auth application-default login" in err
    assert "Traceback" not in err
