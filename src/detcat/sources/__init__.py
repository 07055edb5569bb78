"""One module per vendor: files -> ``Rule`` objects, and the vendor's facts.

Each module ``detcat.sources.<vendor>`` defines a ``registry.Vendor`` subclass
(``Sigma``, ``Elastic``, ``Splunk``, ``Chronicle``) registered in the entry-point
group ``detcat.vendors`` (see ``pyproject.toml``); ``registry`` lists them for
every layer above. A file that cannot be read at all yields a ``Problem``; a rule
whose query fails to parse is still yielded, with the failure in
``rule.problems`` and an ``Opaque`` stage standing for the query, so coverage
counts it.
"""
