"""Tanhui (碳惠): an open-source carbon inclusion (碳普惠) platform."""

__version__ = "0.1.0"
