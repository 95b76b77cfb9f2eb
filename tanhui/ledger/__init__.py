"""The double-entry journal behind every balance on the platform."""
