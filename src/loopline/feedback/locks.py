"""Named locks with one holder each (one retrain at a time), taken over when stale or when the holding
process is known dead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopline.feedback.engine import StoreCore
from loopline.feedback.schema import LockRow, utc_now

logger = logging.getLogger(__name__)


class LockTable(StoreCore):
    """The ``locks`` table."""

    def acquire_lock(
        self,
        name: str,
        holder: str,
        stale_after: timedelta,
        holder_is_dead: Callable[[str], bool] | None = None,
    ) -> bool:
        """Take the lock ``name`` for ``holder``; False if someone holds it and it is not stale.

        Insert-or-fail on the lock's primary key; a lock older than ``stale_after``, or whose holder
        ``holder_is_dead`` says has died (a killed process), is taken over with a compare-and-swap
        update. Not re-entrant: a holder asking again while it holds the lock gets False too.
        """
        now = utc_now()
        try:
            with self._write() as session:
                current = session.get(LockRow, name)
                if current is None:
                    session.add(LockRow(name=name, holder=holder, acquired_at=now))
                    session.flush()
                    return True
                dead = holder_is_dead is not None and holder_is_dead(current.holder)
                if current.acquired_at > now - stale_after and not dead:
                    return False
                return _take_over_lock(session, current, holder, now)
        except IntegrityError:  # another holder inserted the lock concurrently
            return False

    def release_lock(self, name: str, holder: str) -> bool:
        """Release ``name`` if ``holder`` holds it; False (and a warning) if it did not."""
        with self._write() as session:
            result = session.execute(delete(LockRow).where(LockRow.name == name, LockRow.holder == holder))
        released = bool(result.rowcount)  # type: ignore[attr-defined]
        if not released:
            logger.warning("Lock %r was not held by %r (taken over as stale?)", name, holder)
        return released


def _take_over_lock(session: Session, current: LockRow, holder: str, now: datetime) -> bool:
    """Compare-and-swap a stale lock to ``holder``; False if someone else changed it first."""
    previous, acquired_at = current.holder, current.acquired_at
    result = session.execute(
        update(LockRow)
        .where(LockRow.name == current.name, LockRow.holder == previous, LockRow.acquired_at == acquired_at)
        .values(holder=holder, acquired_at=now)
        .execution_options(synchronize_session=False)
    )
    taken = bool(result.rowcount)  # type: ignore[attr-defined]
    if taken:
        logger.warning("Took over stale lock %r from %r (held since %s)", current.name, previous, acquired_at)
    return taken
