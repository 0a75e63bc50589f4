"""The emulator's store: :class:`~.records.Records` that start from, and reset to, the seed data."""

from __future__ import annotations

from .records import Records
from .seed_data import populate
from .switches import Switches


class EmulatorState(Records):
    """All emulated PostHog data, loaded with the seed (see :mod:`.seed`); attributes as :class:`Records`.

    :param api_key: the full-access personal API key to seed (``SEED.api_key`` by default).
    :param switches: the switches to start with, and to restore on :meth:`reset` (today's PostHog
        by default).
    :param backdate_pauses: seconds every pause is recorded earlier (:meth:`Records.backdate_pauses`).
    """

    def __init__(
        self, api_key: str | None = None, switches: Switches | None = None, backdate_pauses: float = 0.0
    ) -> None:
        self._start_switches = (switches or Switches()).copy()
        self._start_backdate = backdate_pauses
        super().__init__(api_key, self._start_switches.copy())
        self.reset()

    def reset(self) -> None:
        """Drop everything, restore the starting switches and load the seed data again."""
        with self.lock:
            self.clear()
            self.switches = self._start_switches.copy()
            if self._start_backdate:
                self.pause_backdates[None] = self._start_backdate
            populate(self, self.now())
