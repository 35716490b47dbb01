"""API keys rotated without a restart: a keys file read again when it changes, several keys valid at once."""

import os
import time

import boto3
import botocore.exceptions
import pytest

from personalize_torch.errors import InputError
from personalize_torch.serving.http.api_keys import ApiKeys
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import serving

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rewrite(path, text: str) -> None:
    """Replace the file's content (a new inode, as editors and `mv` do) and make sure its mtime moves."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    new = path.with_suffix(".new")
    new.write_text(text)
    new.replace(path)
    if path.stat().st_mtime_ns == before:
        later = before + 1_000_000
        os.utime(path, ns=(later, later))


def test_keys_file_is_read_again_when_it_changes(tmp_path):
    keys_file, clock = tmp_path / "keys", Clock()
    keys_file.write_text("# rotated monthly\n  alpha  \n\nbeta\n")
    keys = ApiKeys("fixed", keys_file, clock=clock)
    assert keys.required and all(keys.accepts(k) for k in (b"alpha", b"beta", b"fixed"))
    assert not keys.accepts(b"gamma") and not keys.accepts(None) and not keys.accepts(b"# rotated monthly")
    rewrite(keys_file, "gamma\n")
    assert keys.accepts(b"alpha")                  # not looked at again within a second
    clock.now += 1.5
    assert keys.accepts(b"gamma") and not keys.accepts(b"alpha") and keys.accepts(b"fixed")
    keys_file.unlink()                             # being replaced: the keys read before stay
    clock.now += 1.5
    assert keys.accepts(b"gamma")
    keys_file.write_text("\n")                     # no key: every request refused, never an open server
    clock.now += 1.5
    assert not keys.accepts(b"gamma") and keys.accepts(b"fixed")


def test_a_missing_or_empty_keys_file_is_an_error_at_start(tmp_path):
    with pytest.raises(InputError, match="api_keys_file"):
        ApiKeys(keys_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("# no keys yet\n")
    with pytest.raises(InputError, match="no key"):
        ApiKeys(keys_file=tmp_path / "empty")
    assert not ApiKeys().required and ApiKeys().accepts(None) is False


def test_rotating_a_key_while_the_server_runs(trained_solution, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("old-key\n")
    predictor = Predictor.from_dir(trained_solution["solution"])
    user = predictor.solution.user_vocab.ids[0]
    with serving(create_app({"shop": predictor}, api_keys_file=keys_file)) as url:
        def recommend(key: str) -> str:
            client = boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=key, aws_secret_access_key="anything")
            try:
                client.get_recommendations(campaignArn=ARN, userId=user, numResults=2)
                return "ok"
            except botocore.exceptions.ClientError as err:
                return err.response["Error"]["Code"]

        def within_seconds(key: str, expected: str, seconds: float = 5.0) -> bool:
            deadline = time.monotonic() + seconds
            while recommend(key) != expected:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)
            return True

        assert recommend("old-key") == "ok" and recommend("new-key") == "UnrecognizedClientException"
        rewrite(keys_file, "new-key\nold-key\n")                  # both valid while clients move over
        assert within_seconds("new-key", "ok") and recommend("old-key") == "ok"
        rewrite(keys_file, "new-key\n")                           # the old one retired
        assert within_seconds("old-key", "UnrecognizedClientException") and recommend("new-key") == "ok"
