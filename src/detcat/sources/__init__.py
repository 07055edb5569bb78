"""One module per vendor: files -> ``Rule`` objects.

Every module ``detcat.sources.<vendor>`` provides::

    VENDOR: str
    def read(root: Path, *, include_deprecated: bool = False) -> Iterator[Rule | Problem]

``root`` is the vendor's folder in the sources directory (``<sources>/sigma``).
A file that cannot be read at all yields a ``Problem``; a rule whose query fails
to parse is still yielded, with the failure in ``rule.problems`` and an
``Opaque`` stage standing for the query, so coverage counts it.
"""

VENDORS = ("sigma", "elastic", "splunk", "chronicle")
