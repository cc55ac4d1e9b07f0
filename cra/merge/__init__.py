"""Database-level operations over whole tables: `cra merge` (merge.py) and provenance (machines.py)."""
