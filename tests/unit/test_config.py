"""`config`: flags beat the environment, which beats defaults; bad values are refused by name."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest

from staystream import config as settings
from staystream.config import Config


def parse(*flags: str, environ: dict[str, str] | None = None) -> Config:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return settings.from_arguments(parser.parse_args(list(flags)), environ or {})


def test_defaults_without_flags_or_environment() -> None:
    config = parse()
    assert config == Config()
    assert (config.port, config.store, config.stream) == (8080, "embedded", "")
    assert config.database_path == Path("var") / "store.sqlite3"


def test_a_flag_beats_the_environment_which_beats_the_default() -> None:
    environ = {"STAYSTREAM_PORT": "9000", "STAYSTREAM_HORIZON_DAYS": "30"}
    config = parse("--port", "9001", environ=environ)
    assert config.port == 9001  # flag
    assert config.horizon_days == 30  # environment
    assert config.max_body_bytes == Config().max_body_bytes  # default


def test_values_are_cast_to_their_setting_types() -> None:
    config = parse("--data-dir", "/srv/stay", "--earliest-night", "2020-02-29", "--seed-sample",
                   "--stream", "nats://a:4222,nats://b:4222", "--role", "apply")
    assert config.data_dir == Path("/srv/stay") and config.database_path == Path("/srv/stay/store.sqlite3")
    assert config.earliest_night == dt.date(2020, 2, 29)
    assert config.seed_sample is True
    assert config.stream == "nats://a:4222,nats://b:4222" and config.role == "apply"


def test_the_nats_servers_are_the_stream_setting_not_log() -> None:
    assert parse(environ={"STAYSTREAM_STREAM": "nats://n:4222"}).stream == "nats://n:4222"
    # The old `--log nats://...` now abbreviates --log-level (argparse), which refuses it by name.
    with pytest.raises(SystemExit, match="Setting 'log_level' has value 'nats://n:4222'"):
        parse("--log", "nats://n:4222")


@pytest.mark.parametrize(("flags", "environ", "refusal"), [
    (["--port", "http"], {}, "Setting 'port' has value 'http'."),
    (["--workers", "0"], {}, "Setting 'workers' has value '0'."),
    ([], {"STAYSTREAM_MAX_BODY_BYTES": "-5"}, "Setting 'max_body_bytes' has value '-5'."),
    (["--store", "mysql://db"], {}, "Setting 'store' has value 'mysql://db'."),
    (["--stream", "http://nats:4222"], {}, "Setting 'stream' has value 'http://nats:4222'."),
    (["--role", "ingest,serve"], {}, "Setting 'role' has value 'ingest,serve'."),
    (["--earliest-night", "2020-02-30"], {}, "Setting 'earliest_night' has value '2020-02-30'."),
])
def test_a_value_that_does_not_parse_is_refused_naming_setting_and_value(
        flags: list[str], environ: dict[str, str], refusal: str) -> None:
    with pytest.raises(SystemExit) as refused:
        parse(*flags, environ=environ)
    assert str(refused.value).startswith(refusal)
