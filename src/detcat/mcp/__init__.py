"""``detcat mcp``: the catalog for agents over the Model Context Protocol.

``server`` registers the tools on the official SDK; ``answers`` computes what they
return, within a size budget.
"""
