"""Change events as a Django signal.

``change_event`` is sent with ``sender`` the ``Licenzy`` of ``LICENZY["INSTANCE"]`` and
``event`` the :class:`~licenzy_embed.ChangeEvent` — the same events as ``lz.on("*", …)``,
connected when the instance is built (at ``AppConfig.ready()``)::

    from django.dispatch import receiver
    from licenzy_embed.integrations.django.signals import change_event

    @receiver(change_event)
    def on_change(sender, event, **kwargs):
        ...

At least once: a receiver that raises makes the outbox retry the event later (``event.id``
is stable, to dedupe on); ``manage.py licenzy_deliver_events`` delivers what is pending.
"""

from __future__ import annotations

import weakref

from django.dispatch import Signal

from licenzy_embed.events import LISTENING, ChangeEvent
from licenzy_embed.licenzy import Licenzy

change_event = Signal()
_bridged: weakref.WeakSet[Licenzy] = weakref.WeakSet()


def bridge(lz: Licenzy) -> None:
    """Send ``lz``'s change events to :data:`change_event`, once per instance."""
    if lz in _bridged:
        return
    _bridged.add(lz)

    def send_change_event(event: ChangeEvent) -> None:
        change_event.send(sender=lz, event=event)

    # No receiver connected (they may live in another process): not a listener, so the
    # outbox keeps the events pending instead of marking them delivered to nobody.
    setattr(send_change_event, LISTENING, lambda: change_event.has_listeners(lz))
    lz.on("*", send_change_event)
