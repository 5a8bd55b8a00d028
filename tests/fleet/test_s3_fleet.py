"""A fleet whose shared blob store is S3 (moto's server), as on several machines: workers
read inputs and write outputs in the bucket, and the replica leaves no temporary object."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from fleetservers import S3, s3_server
from inferencefleet import Fleet, inference_fleet
from servers import start_server


@pytest.fixture(scope="module")
def s3_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, S3, str]]:
    with s3_server() as s3, pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env().items():  # for the workers and the replica alike
            patch.setenv(name, value)
        bucket = s3.new_bucket()
        data_dir = tmp_path_factory.mktemp("s3-fleet-data")
        logs = tmp_path_factory.mktemp("s3-fleet-logs")
        try:
            with inference_fleet(
                data_dir, logs, workers=1, blob_url=f"s3://{bucket}/alphacut"
            ) as fleet:
                yield fleet, s3, bucket
        except RuntimeError as exc:
            pytest.fail(str(exc))


def test_removals_through_an_s3_store(s3_fleet: tuple[Fleet, S3, str], photo: Path) -> None:
    fleet, s3, bucket = s3_fleet
    server = start_server(fleet.settings())
    try:
        secret = server.new_key()
        with server.client(secret) as api:
            uploaded = api.post(
                "/v1/images/upload",
                data={"name": "car"},
                files={"image": ("car.jpg", photo.read_bytes())},
            )
            assert uploaded.status_code == 201, uploaded.text
            cut = api.post(
                f"/v1/images/{uploaded.json()['id']}/remove-background", json={"model": "fast"}
            )
            assert cut.status_code == 201, cut.text
            assert (cut.json()["width"], cut.json()["height"]) == (480, 360)
            batch = api.post(
                "/removebg/fast/removebg",
                headers={"authorization": f"Token {secret}"},
                json={
                    "records": [{"_base64": base64.b64encode(photo.read_bytes()).decode()}],
                    "binary_mask": True,
                },
            )
            assert batch.status_code == 200, batch.text
            (record,) = batch.json()["records"]
            assert record["_status"]["code"] == 200, record
            assert api.get(record["_output_url_mask"]).status_code == 200
    finally:
        server.stop()
    client = boto3.client("s3", endpoint_url=s3.endpoint)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="alphacut/")
    names = [item["Key"] for item in listed.get("Contents", [])]
    assert names, "the images are in the bucket"
    assert not [name for name in names if "/inference/" in name], names
