"""ATT&CK analytics' log-source references -> catalog events.

An analytic names a log source (``WinEventLog:Sysmon``, ``auditd:SYSCALL``) and a
channel, which is an event id list (``EventCode=3, 22``), an operation
(``CreateAccessKey``, ``ES_EVENT_TYPE_NOTIFY_EXEC``) or prose. The name gives a
catalog provider (``[attack]`` in event_sources.toml, else the event
dictionary's provider spellings, as for Splunk's ``WinEventLog:Security``), the
channel its event ids; some names are one catalog event whatever the channel
(``[attack_events]``). A reference whose channel names no catalog event stays
unmapped (an empty list), and is counted so.
"""

from __future__ import annotations

import re
from functools import cache

from detcat.normalize.events import catalog_id, provider_key
from detcat.normalize.tables import EVENT_SOURCES, load

_CODE = re.compile(r"\b(?:EventCode|EventID|Event ID)\s*=?\s*", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:,|\||/|\bor\b|\band\b)\s*")


@cache
def _tables() -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    src = load(EVENT_SOURCES)
    return src["attack"], src["attack_events"], src["attack_channel_prefix"]


def log_source_events(name: str, channel: str) -> list[str]:
    """The catalog events an analytic's log-source reference names (maybe none)."""
    providers, fixed, prefixes = _tables()
    if name in fixed:
        return list(fixed[name])
    provider = providers.get(name) or provider_key(name)
    if provider is None:
        return []
    ids = _CODE.sub("", channel.split(":", 1)[0])  # prose after a colon describes it
    prefix = prefixes.get(provider, "")
    out = []
    for token in _SPLIT.split(ids.strip()):
        token = token.removeprefix(prefix) if prefix else token
        if token and (eid := catalog_id(f"{provider}:{token}")):
            out.append(eid)
    return list(dict.fromkeys(out))
