"""The emulator's store: :class:`~.records.Records` that start from, and reset to, the seed data."""

from __future__ import annotations

from .records import Records
from .seed_data import populate


class EmulatorState(Records):
    """All emulated PostHog data, loaded with the seed (see :mod:`.seed`); attributes as :class:`Records`.

    :param api_key: the full-access personal API key to seed (``SEED.api_key`` by default).
    """

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__(api_key)
        self.reset()

    def reset(self) -> None:
        """Drop everything and load the seed data again."""
        with self.lock:
            self.clear()
            populate(self, self.now())
