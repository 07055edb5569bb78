"""Vendor terms -> canonical terms: fields, operators/values, events."""
