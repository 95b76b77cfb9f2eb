"""Methodologies (方法学): versioned data files that turn a behaviour into a reduction.

The engine (`expr`, `loader`, `engine`) is pure: it parses TOML, checks units with Pint and
compiles each formula to closures over `Decimal` once, so a calculation never parses or touches
Pint. The `service` adds operator uploads and scenario assignments stored in the database.
"""
