"""detcat: a cross-vendor catalog of detection rules.

Importing the package has no side effects; see ``detcat.cli`` for the command
line and ``detcat.guide.technique_guide`` for the main query.
"""

__version__ = "0.1.0"
