"""Shipping finished files to object storage: ``finemon run --upload s3://bucket/prefix``."""
