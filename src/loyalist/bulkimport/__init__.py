"""Bulk import of members, orders and carried balances from CSV or Excel (issue 13, item 5)."""
