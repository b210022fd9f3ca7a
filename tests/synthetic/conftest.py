"""Shared departments for the synthetic-data tests (generated once per session: they are pure data)."""

import pytest

from portal.demo.synthetic import Department, generate_department


@pytest.fixture(scope="session")
def department() -> Department:
    """The size the demo uses: 2,000 studies, enough for every specialty, modality and category."""
    return generate_department(studies=2000, seed=1)


@pytest.fixture(scope="session")
def small_department() -> Department:
    """A quick department for checks that do not need the whole mix."""
    return generate_department(studies=60, seed=5)
