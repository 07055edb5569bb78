"""One parser per query language: text -> ``Expr`` / ``Stage`` (see model.py).

Each parser raises ``model.QueryError`` (message, line, column) for text it
cannot read at all, and emits ``model.Opaque`` nodes for parts it reads but
cannot express as predicates. Parsers fill ``Predicate.field_raw`` only.
"""
