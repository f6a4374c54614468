"""The model holder and the alias watcher, on a scripted model source (no registry): what is swapped in, what is
kept, what is retried, and what the callback sees."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from forecaster.errors import UsageError
from serving.models import AliasWatcher, LoadedModel, ModelHolder, ModelLoadError, ModelRef, Target, champion_uri


class ScriptedSource:
    """Resolves to ``self.version``; loading a version in ``self.broken`` fails. Counts loads."""

    def __init__(self) -> None:
        self.ref = ModelRef.parse("models:/m@champion")
        self.version = "1"
        self.broken: set[str] = set()
        self.unreachable = False
        self.loads: list[str] = []

    def resolve(self) -> Target:
        if self.unreachable:
            raise ModelLoadError("cannot resolve models:/m@champion in the registry: connection refused")
        return Target(f"models:/m/{self.version}", "m", self.version, f"run-{self.version}")

    def load(self, target: Target) -> LoadedModel:
        self.loads.append(target.version)
        if target.version in self.broken:
            raise ModelLoadError(f"version {target.version} of m failed to load: UnpicklingError: bad")
        return LoadedModel(target, self.ref.uri, object(), dt.datetime.now(dt.UTC))


@pytest.fixture
def source():
    return ScriptedSource()


def test_first_load_swap_and_unchanged(source):
    seen = []
    holder = ModelHolder(source, on_reload=lambda report, current: seen.append((report.outcome, current.version)))
    assert holder.get() is None
    assert holder.refresh().outcome == "loaded" and holder.get().version == "1"
    assert holder.refresh().outcome == "unchanged" and source.loads == ["1"]
    first = holder.get()
    source.version = "2"
    report = holder.refresh()
    assert (report.outcome, report.previous_version, report.model_version) == ("swapped", "1", "2")
    assert holder.get().version == "2" and first.version == "1"  # a snapshot taken before keeps its model
    assert seen == [("loaded", "1"), ("unchanged", "1"), ("swapped", "2")]


def test_a_failed_version_keeps_the_old_one_and_is_not_retried_until_forced(source):
    holder = ModelHolder(source)
    holder.refresh()
    source.version, source.broken = "2", {"2"}
    report = holder.refresh()
    assert report.outcome == "failed" and report.model_version == "1" and report.target_version == "2"
    assert holder.get().version == "1" and "UnpicklingError" in holder.last_error
    assert holder.refresh().outcome == "failed" and source.loads == ["1", "2"]  # not loaded again on a poll
    assert holder.refresh(force=True).outcome == "failed" and source.loads == ["1", "2", "2"]
    source.version = "3"  # the alias moved on: the new version is tried, and it loads
    assert holder.refresh().outcome == "swapped" and holder.last_error is None and holder.get().version == "3"


def test_back_on_the_serving_version_clears_the_error(source):
    holder = ModelHolder(source)
    holder.refresh()
    source.version, source.broken = "2", {"2"}
    holder.refresh()
    source.version = "1"
    assert holder.refresh().outcome == "unchanged" and holder.last_error is None


def test_nothing_loaded_retries_every_time_and_registry_failures_are_kept(source):
    source.broken = {"1"}
    holder = ModelHolder(source)
    assert holder.refresh().outcome == "failed" and holder.refresh().outcome == "failed"
    assert source.loads == ["1", "1"] and holder.get() is None
    source.broken = set()
    assert holder.refresh().outcome == "loaded"
    source.unreachable = True
    report = holder.refresh()
    assert report.outcome == "failed" and "connection refused" in holder.last_error and holder.get().version == "1"


def test_unexpected_errors_never_escape(source):
    holder = ModelHolder(source)

    def explode(target):
        raise KeyError("bug")

    source.load = explode
    report = holder.refresh()
    assert report.outcome == "failed" and "unexpected error while reloading: KeyError" in report.error


def test_watcher_polls_and_stops(source):
    holder = ModelHolder(source)
    holder.refresh()
    swapped = threading.Event()
    holder.on_reload = lambda report, current: report.outcome == "swapped" and swapped.set()
    watcher = AliasWatcher(holder, poll_seconds=0.01)
    watcher.start()
    try:
        source.version = "2"
        assert swapped.wait(30), "the watcher did not swap in version 2"
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive() and holder.get().version == "2"
    with pytest.raises(UsageError, match="poll_seconds must be > 0"):
        AliasWatcher(holder, poll_seconds=0)


@pytest.mark.parametrize(
    ("uri", "name", "alias", "version", "watchable"),
    [
        ("models:/drift-forecaster-x@champion", "drift-forecaster-x", "champion", None, True),
        ("models:/drift-forecaster-x/7", "drift-forecaster-x", None, "7", False),
        ("runs:/abc/model", None, None, None, False),
        ("/tmp/some/model", None, None, None, False),
    ],
)
def test_model_uris(uri, name, alias, version, watchable):
    ref = ModelRef.parse(uri)
    assert (ref.name, ref.alias, ref.version, ref.watchable) == (name, alias, version, watchable)


def test_champion_uri_of_a_spec():
    assert champion_uri("sim_intraday") == "models:/drift-forecaster-sim_intraday@champion"
