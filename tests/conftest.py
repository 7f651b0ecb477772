"""Fixtures many test files share: the tiny build (compiled once per session, :func:`test_runtime_engine.tiny_build`)
and a private copy of it a test may edit. A test file that needs another build defines its own ``build``."""

import shutil

import pytest
from test_runtime_engine import tiny_build


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The bert-tiny build with synthetic sst2 / mrpc / stsb packs (shared, never edit it: use ``copy``)."""
    return tiny_build(tmp_path_factory.getbasetemp())


@pytest.fixture()
def copy(build, tmp_path):
    """A copy of ``build`` in this test's folder, free to corrupt."""
    dst = tmp_path / "b"
    shutil.copytree(build, dst)
    return dst
