"""Domain-free plumbing shared by every part. Imports no part."""
