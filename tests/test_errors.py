"""User-facing errors survive the trip from a trial's process to the driver (Ray pickles them)."""

from __future__ import annotations

import copy
import pickle

import pytest

from lstm_ray.errors import ConfigError, DataError


@pytest.mark.parametrize("error", [ConfigError("model.proj_size", "must be below 8"), DataError("", "no rows")])
def test_errors_pickle_and_copy_with_their_key_and_message(error):
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(again) is type(error)
        assert (again.key, str(again)) == (error.key, str(error))
